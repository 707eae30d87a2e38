#include "guards.hpp"

#include <algorithm>

namespace credmq::admin {

ReplayCache::Result ReplayCache::remember(std::string_view access_key_id, std::string_view nonce,
                                          Clock::time_point forget_after, Clock::time_point now) {
  std::string key;
  key.reserve(access_key_id.size() + 1 + nonce.size());
  key.append(access_key_id).push_back('\n');  // '\n' cannot occur in a key id we accept
  key.append(nonce);

  std::lock_guard lock(mutex_);
  prune(now);
  if (expiry_by_key_.contains(key)) return Result::replayed;
  if (expiry_by_key_.size() >= max_entries_) return Result::full;
  expiry_by_key_.emplace(key, forget_after);
  by_expiry_.emplace(forget_after, std::move(key));
  return Result::fresh;
}

std::size_t ReplayCache::size() const {
  std::lock_guard lock(mutex_);
  return expiry_by_key_.size();
}

void ReplayCache::prune(Clock::time_point now) {
  while (!by_expiry_.empty() && by_expiry_.top().first < now) {
    expiry_by_key_.erase(by_expiry_.top().second);
    by_expiry_.pop();
  }
}

bool AccountRateLimiter::try_acquire(std::string_view access_key_id, Clock::time_point now) {
  const double capacity = std::max(1.0, rate_);
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(access_key_id));
  if (it == buckets_.end()) {
    it = buckets_.emplace(std::string(access_key_id), Bucket{capacity, now}).first;
  }
  Bucket& bucket = it->second;
  const std::chrono::duration<double> elapsed = now - bucket.last;
  if (elapsed.count() > 0) {
    bucket.tokens = std::min(capacity, bucket.tokens + elapsed.count() * rate_);
    bucket.last = now;
  }
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

}  // namespace credmq::admin
