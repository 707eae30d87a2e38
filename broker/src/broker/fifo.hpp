// A FIFO queue on a std::vector with a head index. Unlike std::deque (libstdc++ allocates a
// 512-byte node and its map on construction), an empty queue owns no memory, which matters
// for the per-connection and per-session queues of idle clients. Once drained, the vector
// keeps a small capacity for the next burst (no allocation per message) and gives back a
// large one.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace credmq::broker::detail {

template <class T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  std::size_t capacity() const { return items_.capacity(); }

  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }

  void push_back(T&& item) {
    if (items_.capacity() == 0) {
      items_.reserve(kFirstCapacity);
    } else {
      compact();
    }
    items_.push_back(std::move(item));
  }

  void pop_front() {
    if (head_ + 1 == items_.size()) {
      clear();  // drained
      return;
    }
    items_[head_++] = T();  // release what the item holds now, not when the slot is reused
  }

  void clear() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > kKeptCapacity) std::vector<T>().swap(items_);
  }

  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }

 private:
  // Capacity kept after draining (about 4 KiB): a usual burst reuses it without allocating,
  // while an idle queue does not hold on to a large one.
  static constexpr std::size_t kKeptCapacity = sizeof(T) >= 256 ? 16 : 4096 / sizeof(T);
  // Skips the smallest growth steps of a queue's first use.
  static constexpr std::size_t kFirstCapacity = kKeptCapacity < 8 ? kKeptCapacity : 8;

  // Before growing, reuse the consumed prefix when it is at least half of the vector: each
  // live item is moved at most once per consumed one, so push/pop stay amortized O(1) even
  // for a queue that never drains.
  void compact() {
    if (head_ == 0 || items_.size() < items_.capacity() || head_ * 2 < items_.size()) return;
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }

  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace credmq::broker::detail
