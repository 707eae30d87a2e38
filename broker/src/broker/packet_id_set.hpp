// A set of MQTT packet ids as a sorted vector: 24 bytes and no allocation while empty (an
// std::unordered_set is 56 bytes and allocates a node per insert, i.e. per QoS 2 message).
// It holds at most the client's unacknowledged QoS 2 PUBLISHes, usually a handful, and ids
// mostly arrive in increasing order, so inserts append.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace credmq::broker::detail {

class PacketIdSet {
 public:
  using const_iterator = std::vector<std::uint16_t>::const_iterator;

  bool empty() const { return ids_.empty(); }
  std::size_t size() const { return ids_.size(); }
  bool contains(std::uint16_t id) const { return std::binary_search(ids_.begin(), ids_.end(), id); }

  // True if it was not there.
  bool insert(std::uint16_t id) {
    auto at = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (at != ids_.end() && *at == id) return false;
    ids_.insert(at, id);
    return true;
  }

  // How many were removed (0 or 1), as std::set::erase.
  std::size_t erase(std::uint16_t id) {
    auto at = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (at == ids_.end() || *at != id) return 0;
    ids_.erase(at);
    if (ids_.empty() && ids_.capacity() > kKeptCapacity) std::vector<std::uint16_t>().swap(ids_);
    return 1;
  }

  void clear() { std::vector<std::uint16_t>().swap(ids_); }

  const_iterator begin() const { return ids_.begin(); }
  const_iterator end() const { return ids_.end(); }

 private:
  static constexpr std::size_t kKeptCapacity = 64;
  std::vector<std::uint16_t> ids_;
};

}  // namespace credmq::broker::detail
