#include "credmq/broker/topic_rules.hpp"

#include <stdexcept>

#include "credmq/mqtt/codec.hpp"

namespace credmq::broker {

namespace {

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::vector<std::string_view> levels(std::string_view topic) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(topic.substr(start));
      return out;
    }
    out.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
}

// A value that may stand in a pattern: non-empty, and neither a wildcard nor a separator.
bool usable(std::string_view value) {
  return !value.empty() && value.find_first_of("+#/") == std::string_view::npos;
}

// The pattern with %c, %g and %d replaced; false if a value used is not usable.
bool substitute(std::string_view pattern, std::string_view client_id, std::string& out) {
  out.clear();
  std::string_view group;
  std::string_view device;
  if (const auto at = client_id.find("@@@"); at != std::string_view::npos) {
    group = client_id.substr(0, at);
    device = client_id.substr(at + 3);
  }
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    std::string_view value;
    switch (pattern[++i]) {
      case 'c':
        value = client_id;
        break;
      case 'g':
        value = group;
        break;
      case 'd':
        value = device;
        break;
      default:  // parse_topic_rule accepts no other
        return false;
    }
    if (!usable(value)) return false;
    out.append(value);
  }
  return true;
}

}  // namespace

TopicRule parse_topic_rule(std::string_view text) {
  const auto parts = words(text);
  if (parts.size() != 3) {
    throw std::invalid_argument(
        "expected 3 words after the instance, 'allow|deny publish|subscribe|pubsub PATTERN', "
        "not " +
        std::to_string(parts.size()));
  }
  TopicRule rule;
  if (parts[0] == "allow") {
    rule.allow = true;
  } else if (parts[0] == "deny") {
    rule.allow = false;
  } else {
    throw std::invalid_argument("'" + std::string(parts[0]) + "' is neither allow nor deny");
  }
  if (parts[1] == "publish") {
    rule.access = RuleAccess::publish;
  } else if (parts[1] == "subscribe") {
    rule.access = RuleAccess::subscribe;
  } else if (parts[1] == "pubsub") {
    rule.access = RuleAccess::both;
  } else {
    throw std::invalid_argument("'" + std::string(parts[1]) +
                                "' is not publish, subscribe or pubsub");
  }
  rule.pattern = std::string(parts[2]);
  // Placeholders stand for literal text: check the pattern with a literal in their place.
  std::string probe;
  for (std::size_t i = 0; i < rule.pattern.size(); ++i) {
    if (rule.pattern[i] != '%') {
      probe.push_back(rule.pattern[i]);
      continue;
    }
    const char next = i + 1 < rule.pattern.size() ? rule.pattern[i + 1] : '\0';
    if (next != 'c' && next != 'g' && next != 'd') {
      throw std::invalid_argument("'%' must be followed by c, g or d in the pattern");
    }
    probe.push_back('x');
    ++i;
  }
  if (probe.starts_with("$share/")) {
    throw std::invalid_argument("'" + rule.pattern +
                                "' is a shared subscription; a rule's pattern is the topic "
                                "filter alone (it applies to $share/GROUP/filter too)");
  }
  if (!mqtt::valid_topic_filter(probe)) {
    throw std::invalid_argument("'" + rule.pattern + "' is not a valid topic filter");
  }
  return rule;
}

TopicRules::TopicRules(std::vector<TopicRule> rules) : rules_(std::move(rules)) {}

bool TopicRules::may_publish(std::string_view client_id, std::string_view topic) const {
  return allowed(Check::publish, client_id, topic);
}

bool TopicRules::may_subscribe(std::string_view client_id, std::string_view filter) const {
  return allowed(Check::subscribe, client_id, filter);
}

bool TopicRules::may_receive(std::string_view client_id, std::string_view topic) const {
  return allowed(Check::receive, client_id, topic);
}

bool TopicRules::allowed(Check check, std::string_view client_id, std::string_view subject) const {
  if (rules_.empty()) return true;
  const auto wanted = check == Check::publish ? RuleAccess::publish : RuleAccess::subscribe;
  thread_local std::string pattern;
  for (const auto& rule : rules_) {
    if ((static_cast<std::uint8_t>(rule.access) & static_cast<std::uint8_t>(wanted)) == 0) {
      continue;
    }
    if (!substitute(rule.pattern, client_id, pattern)) {
      // The value cannot be used safely: allow nothing with it, deny with it (fail closed).
      if (rule.allow) continue;
      return false;
    }
    const bool matches = check == Check::subscribe ? covers(pattern, subject)
                                                   : mqtt::topic_matches(pattern, subject);
    if (matches) return rule.allow;
  }
  return false;
}

bool TopicRules::covers(std::string_view pattern, std::string_view filter) {
  const auto p = levels(pattern);
  const auto f = levels(filter);
  std::size_t i = 0;
  std::size_t j = 0;
  while (true) {
    if (j < p.size() && p[j] == "#") {
      // Matches the rest, the parent level included; but a leading wildcard never matches
      // a topic starting with '$' [MQTT-4.7.2-1].
      return !(j == 0 && i < f.size() && f[0].starts_with('$'));
    }
    if (i == f.size()) return j == p.size();
    if (j == p.size() || f[i] == "#") return false;
    if (p[j] == "+") {
      if (f[i] != "+" && j == 0 && f[i].starts_with('$')) return false;
    } else if (p[j] != f[i]) {
      return false;  // a literal level covers only the same literal, not '+'
    }
    ++i;
    ++j;
  }
}

}  // namespace credmq::broker
