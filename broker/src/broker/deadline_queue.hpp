// One timer per I/O thread for the deadlines of all its connections (CONNECT timeout, keep
// alive, close timeout). A steady_timer per connection costs its object (72-120 bytes) plus a
// pending wait operation (about 130 bytes) for the connection's whole life; here a connection
// holds a DeadlineHook (16 bytes) and a 16-byte slot in a binary heap.
//
// An io_context service, so each io_context (run by one thread) has its own queue and the
// queue needs no lock. While scheduled, an owner is kept alive by the queue (as a pending
// timer wait keeps its handler's shared_ptr), and a scheduled deadline keeps the io_context's
// run() going, as a pending wait does.
//
// Owner: has a public-or-friend member `DeadlineHook deadline_hook_` and `void on_deadline()`,
// called on the io_context's thread once the deadline has passed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace credmq::broker::detail {

struct DeadlineHook {
  static constexpr std::uint32_t kNotScheduled = std::numeric_limits<std::uint32_t>::max();
  std::chrono::steady_clock::time_point when{};
  std::uint32_t slot = kNotScheduled;  // index in the heap
};

template <class Owner>
class DeadlineQueue final : public boost::asio::execution_context::service {
 public:
  using Clock = std::chrono::steady_clock;
  inline static boost::asio::execution_context::id id;

  explicit DeadlineQueue(boost::asio::execution_context& context)
      : service(context),
        context_(static_cast<boost::asio::io_context&>(context)),
        timer_(context_) {}

  static DeadlineQueue& of(boost::asio::io_context& context) {
    return boost::asio::use_service<DeadlineQueue>(context);
  }

  // Sets (or moves) the owner's deadline. On the io_context's thread.
  void schedule(const std::shared_ptr<Owner>& owner, Clock::time_point when) {
    DeadlineHook& hook = owner->deadline_hook_;
    const bool earlier = hook.when > when;
    hook.when = when;
    if (hook.slot == DeadlineHook::kNotScheduled) {
      hook.slot = static_cast<std::uint32_t>(heap_.size());
      heap_.push_back(owner);
      sift_up(hook.slot);
    } else if (earlier) {
      sift_up(hook.slot);
    } else {
      sift_down(hook.slot);
    }
    rearm();
  }

  // Removes the owner's deadline, if any. On the io_context's thread.
  void cancel(Owner& owner) {
    DeadlineHook& hook = owner.deadline_hook_;
    if (hook.slot == DeadlineHook::kNotScheduled) return;
    auto removed = take(hook.slot);
    rearm();
    // Normally the caller's handler holds another reference. Should this be the last one, the
    // owner must not be destroyed inside its own member function: release it later.
    if (removed.use_count() == 1) boost::asio::post(context_, [removed = std::move(removed)] {});
  }

  std::size_t size() const { return heap_.size(); }

 private:
  void shutdown() override {
    // Before the reactor and scheduler go: owners close their sockets on destruction.
    std::vector<std::shared_ptr<Owner>> owners;
    owners.swap(heap_);
    for (auto& owner : owners) owner->deadline_hook_.slot = DeadlineHook::kNotScheduled;
    timer_.cancel();
    ++generation_;
  }

  bool before(std::size_t a, std::size_t b) const {
    return heap_[a]->deadline_hook_.when < heap_[b]->deadline_hook_.when;
  }

  void place(std::size_t slot, std::shared_ptr<Owner> owner) {
    owner->deadline_hook_.slot = static_cast<std::uint32_t>(slot);
    heap_[slot] = std::move(owner);
  }

  void sift_up(std::size_t slot) {
    while (slot > 0) {
      const std::size_t parent = (slot - 1) / 2;
      if (!before(slot, parent)) break;
      swap_slots(slot, parent);
      slot = parent;
    }
  }

  void sift_down(std::size_t slot) {
    for (;;) {
      std::size_t smallest = slot;
      const std::size_t left = 2 * slot + 1;
      if (left < heap_.size() && before(left, smallest)) smallest = left;
      if (left + 1 < heap_.size() && before(left + 1, smallest)) smallest = left + 1;
      if (smallest == slot) return;
      swap_slots(slot, smallest);
      slot = smallest;
    }
  }

  void swap_slots(std::size_t a, std::size_t b) {
    std::swap(heap_[a], heap_[b]);
    heap_[a]->deadline_hook_.slot = static_cast<std::uint32_t>(a);
    heap_[b]->deadline_hook_.slot = static_cast<std::uint32_t>(b);
  }

  std::shared_ptr<Owner> take(std::size_t slot) {
    auto owner = std::move(heap_[slot]);
    owner->deadline_hook_.slot = DeadlineHook::kNotScheduled;
    auto last = std::move(heap_.back());
    heap_.pop_back();
    if (slot < heap_.size()) {
      place(slot, std::move(last));
      sift_up(slot);
      sift_down(heap_[slot]->deadline_hook_.slot);
    }
    // Give back the heap's memory once most connections are gone.
    if (heap_.capacity() > 4 * heap_.size() + 64) heap_.shrink_to_fit();
    return owner;
  }

  // Keeps one wait pending on the earliest deadline (none when the heap is empty, so that
  // run() can return once every connection has closed).
  void rearm() {
    if (dispatching_) return;  // on_timer() rearms when it is done
    if (heap_.empty()) {
      if (armed_) {
        armed_ = false;
        ++generation_;
        timer_.cancel();
      }
      return;
    }
    const auto earliest = heap_.front()->deadline_hook_.when;
    if (armed_ && armed_for_ <= earliest) return;  // fires early at worst, then waits again
    armed_ = true;
    armed_for_ = earliest;
    timer_.expires_at(earliest);  // cancels a wait on a later deadline
    timer_.async_wait([this, generation = ++generation_](const boost::system::error_code& ec) {
      if (ec || generation != generation_) return;  // cancelled or replaced
      on_timer();
    });
  }

  void on_timer() {
    armed_ = false;
    dispatching_ = true;
    const auto now = Clock::now();
    while (!heap_.empty() && heap_.front()->deadline_hook_.when <= now) {
      auto owner = take(0);
      owner->on_deadline();  // may schedule itself again
    }
    dispatching_ = false;
    rearm();
  }

  boost::asio::io_context& context_;
  boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                    boost::asio::io_context::executor_type>
      timer_;
  std::vector<std::shared_ptr<Owner>> heap_;
  Clock::time_point armed_for_{};
  std::uint64_t generation_ = 0;
  bool armed_ = false;
  bool dispatching_ = false;
};

}  // namespace credmq::broker::detail
