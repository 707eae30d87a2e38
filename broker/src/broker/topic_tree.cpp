#include "topic_tree.hpp"

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

bool TopicTree::insert(std::string_view filter, Session* session,
                       const Subscription& subscription) {
  thread_local std::vector<std::string_view> levels;
  split_topic_levels(filter, levels);
  Node* node = &root_;
  for (auto level : levels) {
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
    }
    node = it->second.get();
  }
  auto [it, inserted] = node->subscribers.insert_or_assign(session, subscription);
  return inserted;
}

bool TopicTree::erase(std::string_view filter, Session* session) {
  thread_local std::vector<std::string_view> levels;
  split_topic_levels(filter, levels);
  return erase_below(root_, levels, 0, session);
}

bool TopicTree::erase_below(Node& node, const std::vector<std::string_view>& levels,
                            std::size_t index, Session* session) {
  if (index == levels.size()) return node.subscribers.erase(session) > 0;
  auto it = node.children.find(levels[index]);
  if (it == node.children.end()) return false;
  bool erased = erase_below(*it->second, levels, index + 1, session);
  // Prune so that unsubscribed filters do not keep costing memory and match time.
  if (it->second->children.empty() && it->second->subscribers.empty()) node.children.erase(it);
  return erased;
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
      out.push_back({session, subscription});
    }
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
