// Sliding-window counter of authentication failures per client id and per source address.
// A key over its limit is refused before any store lookup (mqtt-auth.md, Refusal).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "credmq/common/string_hash.hpp"

namespace credmq::auth {

struct ThrottleLimits {
  std::size_t max_failures_per_client_id = 10;  // 0 disables
  std::size_t max_failures_per_address = 100;   // 0 disables
  std::chrono::milliseconds window{10'000};
  bool throttle_loopback_addresses = false;  // tests share 127.0.0.1
};

class FailureThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit FailureThrottle(ThrottleLimits limits = {}) : limits_(limits) {}

  // True if a CONNECT from this client id / address should be refused without a lookup.
  bool blocked(std::string_view client_id, std::string_view address,
               Clock::time_point now = Clock::now());
  void record_failure(std::string_view client_id, std::string_view address,
                      Clock::time_point now = Clock::now());
  // Forgets a client id's failures (after a successful login).
  void record_success(std::string_view client_id);

 private:
  // Two-bucket approximation of a sliding window: count in the current and previous window,
  // weighted by how far into the current window we are. O(1) memory per key.
  struct Counter {
    Clock::time_point window_start{};
    std::size_t current = 0;
    std::size_t previous = 0;
  };
  double estimate(Counter& counter, Clock::time_point now) const;
  void roll(Counter& counter, Clock::time_point now) const;
  void prune(Clock::time_point now);

  // Looked up by string_view: no key copy per CONNECT.
  using Counters = StringMap<Counter>;

  ThrottleLimits limits_;
  std::mutex mutex_;
  Counters by_client_id_;
  Counters by_address_;
  Clock::time_point last_prune_{};
};

}  // namespace credmq::auth
