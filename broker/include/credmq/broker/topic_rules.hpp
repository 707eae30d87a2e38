// Per-instance topic rules (authorization): which topics a client may publish to and which
// filters it may subscribe to (and so which messages it may receive). docs/security.md,
// "Authorization (topic rules)".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace credmq::broker {

enum class RuleAccess : std::uint8_t { publish = 1, subscribe = 2, both = 3 };

// One rule: "allow|deny publish|subscribe|pubsub PATTERN". PATTERN is a topic filter in
// which %c, %g and %d stand for one whole or partial level: the client id, and its group id
// and device id (the parts before and after the first "@@@" of "<GroupId>@@@<DeviceId>").
struct TopicRule {
  bool allow = true;
  RuleAccess access = RuleAccess::both;
  std::string pattern;
};

// Parses one rule, 'allow|deny publish|subscribe|pubsub PATTERN'; throws std::invalid_argument
// saying what is wrong with it (the caller names the rule and where it came from).
TopicRule parse_topic_rule(std::string_view text);

// The rules of one instance, in order. With no rule everything is allowed. Otherwise the
// first rule whose access and pattern match decides, and nothing matching means deny.
//
// A substituted value that is empty (%g/%d of a client id without "@@@") or contains '+',
// '#' or '/' could widen the pattern, so it never does: an allow rule using it does not
// match, and a deny rule using it matches (fails closed).
class TopicRules {
 public:
  TopicRules() = default;
  explicit TopicRules(std::vector<TopicRule> rules);

  bool empty() const { return rules_.empty(); }
  const std::vector<TopicRule>& rules() const { return rules_; }

  // PUBLISH (and a will) to `topic`.
  bool may_publish(std::string_view client_id, std::string_view topic) const;
  // SUBSCRIBE to `filter` (for a shared subscription, the filter after $share/<group>/): a
  // subscribe rule decides when its pattern covers every topic the filter matches.
  bool may_subscribe(std::string_view client_id, std::string_view filter) const;
  // Delivery of a message on `topic`, checked per message (retained ones too): a subscribe
  // rule decides when its pattern matches the topic.
  bool may_receive(std::string_view client_id, std::string_view topic) const;

  // Whether every topic matched by `filter` is matched by `pattern` (both valid filters).
  static bool covers(std::string_view pattern, std::string_view filter);

 private:
  enum class Check { publish, subscribe, receive };
  bool allowed(Check check, std::string_view client_id, std::string_view subject) const;

  std::vector<TopicRule> rules_;
};

}  // namespace credmq::broker
