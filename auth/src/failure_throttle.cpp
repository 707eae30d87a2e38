#include "credmq/auth/failure_throttle.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace credmq::auth {
namespace {

// Beyond this many tracked keys per map, new keys are not tracked until pruning frees room:
// bounds memory even against a flood of distinct client ids within one window.
constexpr std::size_t kMaxTrackedKeys = 1 << 17;

bool is_loopback(std::string_view address) {
  if (address.empty() || address.size() >= INET6_ADDRSTRLEN) return false;
  const std::string text(address);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  // ::ffff:127.x.y.z, as dual-stack sockets report IPv4 peers.
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

}  // namespace

void FailureThrottle::roll(Counter& counter, Clock::time_point now) const {
  if (now < counter.window_start + limits_.window) return;
  if (now < counter.window_start + 2 * limits_.window) {
    counter.previous = counter.current;
    counter.window_start += limits_.window;
  } else {
    counter.previous = 0;
    counter.window_start = now;
  }
  counter.current = 0;
}

double FailureThrottle::estimate(Counter& counter, Clock::time_point now) const {
  roll(counter, now);
  if (limits_.window.count() <= 0) return static_cast<double>(counter.current);
  const auto elapsed = std::max(Clock::duration::zero(), now - counter.window_start);
  const double fraction =
      std::chrono::duration<double>(elapsed) / std::chrono::duration<double>(limits_.window);
  return static_cast<double>(counter.current) +
         static_cast<double>(counter.previous) * std::max(0.0, 1.0 - fraction);
}

void FailureThrottle::prune(Clock::time_point now) {
  auto idle = [&](const Counter& counter) {
    return now >= counter.window_start + 2 * limits_.window;
  };
  std::erase_if(by_client_id_, [&](const auto& entry) { return idle(entry.second); });
  std::erase_if(by_address_, [&](const auto& entry) { return idle(entry.second); });
  last_prune_ = now;
}

bool FailureThrottle::blocked(std::string_view client_id, std::string_view address,
                              Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now - last_prune_ >= limits_.window) prune(now);
  auto over = [&](Counters& counters, std::string_view key, std::size_t limit) {
    if (limit == 0 || counters.empty()) return false;
    auto it = counters.find(key);
    return it != counters.end() && estimate(it->second, now) >= static_cast<double>(limit);
  };
  if (over(by_client_id_, client_id, limits_.max_failures_per_client_id)) return true;
  if (by_address_.empty()) return false;  // the usual case: no address to check
  if (!limits_.throttle_loopback_addresses && is_loopback(address)) return false;
  return over(by_address_, address, limits_.max_failures_per_address);
}

void FailureThrottle::record_failure(std::string_view client_id, std::string_view address,
                                     Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now - last_prune_ >= limits_.window) prune(now);
  auto count = [&](Counters& counters, std::string_view key, std::size_t limit) {
    if (limit == 0) return;
    auto it = counters.find(key);
    if (it == counters.end()) {
      if (counters.size() >= kMaxTrackedKeys) prune(now);
      if (counters.size() >= kMaxTrackedKeys) return;
      it = counters.emplace(std::string(key), Counter{now, 0, 0}).first;
    }
    roll(it->second, now);
    ++it->second.current;
  };
  count(by_client_id_, client_id, limits_.max_failures_per_client_id);
  if (!limits_.throttle_loopback_addresses && is_loopback(address)) return;
  count(by_address_, address, limits_.max_failures_per_address);
}

void FailureThrottle::record_success(std::string_view client_id) {
  std::lock_guard lock(mutex_);
  if (auto it = by_client_id_.find(client_id); it != by_client_id_.end()) by_client_id_.erase(it);
}

}  // namespace credmq::auth
