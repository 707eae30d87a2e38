// Binds live MQTT sessions to the credential issuance (serial) they authenticated with,
// and closes them when that issuance is revoked.
//
// Race-freedom against concurrent CONNECTs (mqtt-auth.md, Revocation item 7):
//  - the authenticator reads epoch() BEFORE it looks up the credential row;
//  - revoke() is called only AFTER the row change is committed; under the hub mutex it bumps
//    the epoch, records (epoch, serial) and takes the sessions bound to the serial;
//  - bind() takes the same mutex and refuses if a revocation of the same serial was recorded
//    after the epoch the lookup started at.
// So a session either is bound before revoke() takes the set (and is closed by it), or sees
// the revocation record and is refused, or its lookup started after the epoch bump and hence
// after the commit, so the lookup itself fails. See docs/revocation.md.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace credmq::auth {

// Implemented by the broker's connection. revoke() is called from the admin's worker thread
// (never with the hub mutex held): it must mark the session dead at once (so nothing more
// is routed from or to it) and post the actual close to the session's own executor.
class RevocableSession {
 public:
  virtual ~RevocableSession() = default;
  virtual void revoke() = 0;
};

class RevocationHub {
 public:
  // Revocations remembered for in-flight authentications; an authentication slower than
  // this many revocations is refused as "server unavailable" and the client retries.
  explicit RevocationHub(std::size_t remembered_revocations = 1 << 16);

  std::uint64_t epoch() const;

  // Registers `session` under `serial`. Returns false (and registers nothing) if `serial` was
  // revoked after `epoch_before_lookup`, or if too many revocations happened to tell.
  enum class BindResult { bound, revoked, unknown };
  BindResult bind(std::int64_t serial, std::uint64_t epoch_before_lookup,
                  const std::shared_ptr<RevocableSession>& session);
  // Called when a bound session ends for any reason. O(sessions bound to `serial`), usually 1.
  void unbind(std::int64_t serial, const RevocableSession* session);

  // Call after the revoking transaction committed. Calls revoke() on every session bound to
  // `serial` and returns how many there were.
  std::size_t revoke(std::int64_t serial);

  std::size_t bound_sessions() const;

 private:
  mutable std::mutex mutex_;
  std::uint64_t epoch_ = 1;
  std::size_t remembered_;
  std::deque<std::pair<std::uint64_t, std::int64_t>> recent_;  // (epoch, serial), ascending
  // One node per binding (56 bytes with its bucket; a map of maps took about 200 per live
  // connection). A serial has a handful of bindings at most: its live connections, the
  // offline session and delayed will they leave behind.
  struct Binding {
    const RevocableSession* session;
    std::weak_ptr<RevocableSession> weak;
  };
  std::unordered_multimap<std::int64_t, Binding> bound_;
};

}  // namespace credmq::auth
