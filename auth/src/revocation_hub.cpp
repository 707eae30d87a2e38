#include "credmq/auth/revocation_hub.hpp"

namespace credmq::auth {

RevocationHub::RevocationHub(std::size_t remembered_revocations)
    : remembered_(remembered_revocations == 0 ? 1 : remembered_revocations) {}

std::uint64_t RevocationHub::epoch() const {
  std::lock_guard lock(mutex_);
  return epoch_;
}

RevocationHub::BindResult RevocationHub::bind(std::int64_t serial,
                                              std::uint64_t epoch_before_lookup,
                                              const std::shared_ptr<RevocableSession>& session) {
  std::lock_guard lock(mutex_);
  if (epoch_before_lookup < epoch_) {
    // Revocations happened since the lookup started. recent_ is ascending by epoch; records
    // with epoch > epoch_before_lookup are at its back.
    if (!recent_.empty() && recent_.size() == remembered_ &&
        recent_.front().first > epoch_before_lookup + 1) {
      return BindResult::unknown;  // the records that would tell have been dropped
    }
    for (auto it = recent_.rbegin(); it != recent_.rend() && it->first > epoch_before_lookup;
         ++it) {
      if (it->second == serial) return BindResult::revoked;
    }
  }
  auto [first, last] = bound_.equal_range(serial);
  for (auto it = first; it != last; ++it) {
    if (it->second.session == session.get()) return BindResult::bound;  // already bound
  }
  bound_.emplace(serial, Binding{session.get(), session});
  return BindResult::bound;
}

void RevocationHub::unbind(std::int64_t serial, const RevocableSession* session) {
  std::lock_guard lock(mutex_);
  auto [first, last] = bound_.equal_range(serial);
  for (auto it = first; it != last; ++it) {
    if (it->second.session == session) {
      bound_.erase(it);
      return;
    }
  }
}

std::size_t RevocationHub::revoke(std::int64_t serial) {
  std::vector<std::shared_ptr<RevocableSession>> victims;
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    recent_.emplace_back(epoch_, serial);
    if (recent_.size() > remembered_) recent_.pop_front();
    auto [first, last] = bound_.equal_range(serial);
    for (auto it = first; it != last; ++it) {
      if (auto session = it->second.weak.lock()) victims.push_back(std::move(session));
    }
    bound_.erase(first, last);
  }
  // Outside the mutex: revoke() posts to the sessions' executors, which may call unbind().
  for (auto& session : victims) session->revoke();
  return victims.size();
}

std::size_t RevocationHub::bound_sessions() const {
  std::lock_guard lock(mutex_);
  return bound_.size();
}

}  // namespace credmq::auth
