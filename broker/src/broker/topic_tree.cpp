#include "topic_tree.hpp"

#include <algorithm>

#include "credmq/mqtt/codec.hpp"

namespace credmq::broker::detail {

void split_topic_levels(std::string_view topic, std::vector<std::string_view>& levels) {
  levels.clear();
  std::size_t start = 0;
  while (true) {
    auto slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(topic.substr(start));
      return;
    }
    levels.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
}

bool parse_shared_filter(std::string_view filter, std::string_view& group,
                         std::string_view& topic_filter, bool& valid) {
  constexpr std::string_view kPrefix = "$share/";
  if (!filter.starts_with(kPrefix)) return false;
  const auto rest = filter.substr(kPrefix.size());
  const auto slash = rest.find('/');
  valid = false;
  if (slash == std::string_view::npos) return true;
  group = rest.substr(0, slash);
  topic_filter = rest.substr(slash + 1);
  valid = !group.empty() && group.find_first_of("+#") == std::string_view::npos &&
          mqtt::valid_topic_filter(topic_filter);
  return true;
}

bool TopicTree::insert(std::string_view filter, Session* session,
                       const Subscription& subscription) {
  thread_local std::vector<std::string_view> levels;
  std::string_view group;
  std::string_view topic_filter = filter;
  bool valid = true;
  const bool is_shared = parse_shared_filter(filter, group, topic_filter, valid);
  split_topic_levels(topic_filter, levels);
  Node* node = &root_;
  for (auto level : levels) {
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
  }
  if (!is_shared) {
    auto [it, inserted] = node->subscribers.insert_or_assign(session, subscription);
    return inserted;
  }
  auto& shared = node->shared[std::string(group)];
  if (!shared) shared = std::make_shared<SharedGroup>(std::string(filter));
  for (auto& [member, existing] : shared->members) {
    if (member == session) {
      existing = subscription;
      return false;
    }
  }
  shared->members.emplace_back(session, subscription);
  return true;
}

bool TopicTree::erase(std::string_view filter, Session* session) {
  thread_local std::vector<std::string_view> levels;
  std::string_view group;
  std::string_view topic_filter = filter;
  bool valid = true;
  const bool is_shared = parse_shared_filter(filter, group, topic_filter, valid);
  if (!valid) return false;
  split_topic_levels(topic_filter, levels);
  return erase_below(root_, levels, 0, session, group, is_shared);
}

bool TopicTree::erase_below(Node& node, const std::vector<std::string_view>& levels,
                            std::size_t index, Session* session, std::string_view group,
                            bool is_shared) {
  if (index == levels.size()) {
    if (!is_shared) return node.subscribers.erase(session) > 0;
    auto it = node.shared.find(group);
    if (it == node.shared.end()) return false;
    auto& members = it->second->members;
    auto member = std::find_if(members.begin(), members.end(),
                               [session](const auto& m) { return m.first == session; });
    if (member == members.end()) return false;
    members.erase(member);
    if (members.empty()) node.shared.erase(it);
    return true;
  }
  auto it = node.children.find(levels[index]);
  if (it == node.children.end()) return false;
  bool erased = erase_below(*it->second, levels, index + 1, session, group, is_shared);
  // Prune so that unsubscribed filters do not keep costing memory and match time.
  if (it->second->empty()) node.children.erase(it);
  return erased;
}

std::shared_ptr<SharedGroup> TopicTree::shared_group(std::string_view filter) const {
  thread_local std::vector<std::string_view> levels;
  std::string_view group;
  std::string_view topic_filter;
  bool valid = false;
  if (!parse_shared_filter(filter, group, topic_filter, valid) || !valid) return nullptr;
  split_topic_levels(topic_filter, levels);
  const Node* node = &root_;
  for (auto level : levels) {
    auto it = node->children.find(level);
    if (it == node->children.end()) return nullptr;
    node = it->second.get();
  }
  auto it = node->shared.find(group);
  return it == node->shared.end() ? nullptr : it->second;
}

void TopicTree::match(std::string_view topic, std::vector<Match>& out) const {
  thread_local std::vector<std::string_view> levels;
  split_topic_levels(topic, levels);
  match_below(root_, levels, 0, !topic.empty() && topic.front() == '$', out);
}

void TopicTree::match_below(const Node& node, const std::vector<std::string_view>& levels,
                            std::size_t index, bool dollar_topic, std::vector<Match>& out) {
  auto add_all = [&out](const Node& from) {
    for (const auto& [session, subscription] : from.subscribers) {
      out.push_back({session, subscription, nullptr});
    }
    for (const auto& [name, group] : from.shared) out.push_back({nullptr, {}, &group});
  };
  if (index == levels.size()) {
    add_all(node);
    // "a/#" also matches "a" (the parent level).
    if (auto hash = node.children.find("#"); hash != node.children.end()) add_all(*hash->second);
    return;
  }
  // Topics starting with '$' are not matched by a wildcard in the first level.
  const bool wildcards_allowed = !(index == 0 && dollar_topic);
  if (wildcards_allowed) {
    if (auto hash = node.children.find("#"); hash != node.children.end()) add_all(*hash->second);
    if (auto plus = node.children.find("+"); plus != node.children.end()) {
      match_below(*plus->second, levels, index + 1, dollar_topic, out);
    }
  }
  if (auto exact = node.children.find(levels[index]); exact != node.children.end()) {
    match_below(*exact->second, levels, index + 1, dollar_topic, out);
  }
}

}  // namespace credmq::broker::detail
