// Subscription index of one instance: a trie over topic levels, so matching a topic costs
// O(levels x wildcard branches) instead of O(subscriptions). Shared subscriptions
// ("$share/<group>/<filter>") hang off the node of <filter>, one SharedGroup per group name.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "credmq/mqtt/packets.hpp"

namespace credmq::broker::detail {

struct Session;

// One session's subscription to one filter.
struct Subscription {
  mqtt::SubscribeOptions options;
  std::uint32_t identifier = 0;  // MQTT 5 Subscription Identifier; 0 = none
};

// The members of one shared subscription; each message goes to one of them. Members change
// under the instance's exclusive lock; `cursor` advances under its shared (routing) lock.
// Deliveries keep the group alive, so a message can be redelivered to another member when
// its session ends.
struct SharedGroup {
  explicit SharedGroup(std::string shared_filter) : filter(std::move(shared_filter)) {}
  const std::string filter;  // "$share/<group>/<filter>"
  std::vector<std::pair<Session*, Subscription>> members;
  std::atomic<std::size_t> cursor{0};
};

// Splits "$share/<group>/<filter>". False if `filter` is not a shared subscription; sets
// `valid` to whether it is a well-formed one (non-empty group without wildcards, a filter).
bool parse_shared_filter(std::string_view filter, std::string_view& group,
                         std::string_view& topic_filter, bool& valid);

class TopicTree {
 public:
  struct Match {
    Session* session;  // null for a shared subscription
    Subscription subscription;
    const std::shared_ptr<SharedGroup>* group;  // for a shared subscription; valid under lock
  };

  // Adds or replaces `session`'s subscription to `filter` (shared or not, well-formed).
  // Returns true if it is new.
  bool insert(std::string_view filter, Session* session, const Subscription& subscription);
  // Returns true if the subscription existed.
  bool erase(std::string_view filter, Session* session);
  // The group of a shared subscription filter, if it has members.
  std::shared_ptr<SharedGroup> shared_group(std::string_view filter) const;
  // Appends every subscription whose filter matches `topic` (one entry per filter; one per
  // shared group).
  void match(std::string_view topic, std::vector<Match>& out) const;
  bool empty() const { return root_.empty(); }

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    std::unordered_map<Session*, Subscription> subscribers;
    std::map<std::string, std::shared_ptr<SharedGroup>, std::less<>> shared;
    bool empty() const { return children.empty() && subscribers.empty() && shared.empty(); }
  };
  static bool erase_below(Node& node, const std::vector<std::string_view>& levels,
                          std::size_t index, Session* session, std::string_view group,
                          bool is_shared);
  static void match_below(const Node& node, const std::vector<std::string_view>& levels,
                          std::size_t index, bool dollar_topic, std::vector<Match>& out);

  Node root_;
};

// Splits "a/b/c" into {"a","b","c"}; "" levels are kept ("/a" -> {"", "a"}).
void split_topic_levels(std::string_view topic, std::vector<std::string_view>& levels);

}  // namespace credmq::broker::detail
