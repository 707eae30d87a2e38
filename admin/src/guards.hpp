// Per-request guards of the admin API: the SignatureNonce replay cache and the per-account
// call-rate limiter. Both are thread-safe (the actions run on a thread pool) and take the
// current time as an argument so tests control it.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace credmq::admin {

// Remembers (AccessKeyId, SignatureNonce) pairs until the request's Timestamp leaves the
// accepted window: after that the timestamp check alone refuses a replay, so memory stays
// bounded by (accepted rate x window) and expired entries are pruned on every insert.
class ReplayCache {
 public:
  using Clock = std::chrono::system_clock;
  explicit ReplayCache(std::size_t max_entries) : max_entries_(max_entries) {}

  enum class Result { fresh, replayed, full };
  // Records the nonce unless already present. `full` (nothing recorded) when max_entries
  // unexpired nonces are remembered: the caller sheds load rather than forget a nonce.
  Result remember(std::string_view access_key_id, std::string_view nonce,
                  Clock::time_point forget_after, Clock::time_point now);
  std::size_t size() const;

 private:
  void prune(Clock::time_point now);

  using Expiry = std::pair<Clock::time_point, std::string>;
  mutable std::mutex mutex_;
  std::size_t max_entries_;
  std::unordered_map<std::string, Clock::time_point> expiry_by_key_;
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> by_expiry_;
};

// Token bucket per AccessKeyId: refills at `calls_per_second`, holds at most one second's
// worth (at least one call) so a burst cannot exceed the documented per-second rate.
class AccountRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AccountRateLimiter(double calls_per_second) : rate_(calls_per_second) {}

  bool try_acquire(std::string_view access_key_id, Clock::time_point now);

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  std::mutex mutex_;
  double rate_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace credmq::admin
