// Subscription index of one instance: a trie over topic levels, so matching a topic costs
// O(levels x wildcard branches) instead of O(subscriptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "credmq/mqtt/packets.hpp"

namespace credmq::broker::detail {

struct Session;

// One session's subscription to one filter.
struct Subscription {
  mqtt::SubscribeOptions options;
  std::uint32_t identifier = 0;  // MQTT 5 Subscription Identifier; 0 = none
};

class TopicTree {
 public:
  struct Match {
    Session* session;
    Subscription subscription;
  };

  // Adds or replaces `session`'s subscription to `filter`. Returns true if it is new.
  bool insert(std::string_view filter, Session* session, const Subscription& subscription);
  // Returns true if the subscription existed.
  bool erase(std::string_view filter, Session* session);
  // Appends every subscription whose filter matches `topic` (one entry per filter).
  void match(std::string_view topic, std::vector<Match>& out) const;
  bool empty() const { return root_.children.empty() && root_.subscribers.empty(); }

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    std::unordered_map<Session*, Subscription> subscribers;
  };
  static bool erase_below(Node& node, const std::vector<std::string_view>& levels,
                          std::size_t index, Session* session);
  static void match_below(const Node& node, const std::vector<std::string_view>& levels,
                          std::size_t index, bool dollar_topic, std::vector<Match>& out);

  Node root_;
};

// Splits "a/b/c" into {"a","b","c"}; "" levels are kept ("/a" -> {"", "a"}).
void split_topic_levels(std::string_view topic, std::vector<std::string_view>& levels);

}  // namespace credmq::broker::detail
