// The auth plugin interface: the broker asks it about every CONNECT.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace credmq::auth {

enum class Refusal {
  bad_credentials,     // 3.1.1 return code 4, MQTT 5 0x86
  not_authorized,      // 3.1.1 return code 5, MQTT 5 0x87
  server_unavailable,  // 3.1.1 return code 3, MQTT 5 0x88 (store failure)
};

struct ConnectRequest {
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary-safe
  std::string remote_address;           // IP address text, for throttling and logs
  // Set by the listener: clients without a username are let in on this instance.
  std::optional<std::string> anonymous_instance;
};

struct Identity {
  std::string instance_id;
  std::string mode;    // "DeviceCredential", "Signature" or "Anonymous"
  std::string key_id;  // DeviceAccessKeyId / AccessKeyId; empty for anonymous
  // DeviceCredential issuance serial the session must be bound to (RevocationHub::bind);
  // 0 for modes that cannot be revoked through the device-credential API.
  std::int64_t credential_serial = 0;
  // RevocationHub::epoch() read before the credential lookup; passed back to bind().
  std::uint64_t revocation_epoch = 0;
};

struct AuthResult {
  std::optional<Identity> identity;  // set when accepted
  Refusal refusal = Refusal::bad_credentials;
  bool accepted() const { return identity.has_value(); }
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Must not block the calling (I/O) thread. `done` is called exactly once, on any thread;
  // the caller re-posts to its own executor.
  virtual void authenticate(ConnectRequest request, std::function<void(AuthResult)> done) = 0;
  // Reports the outcome of a CONNECT to the failure throttle (refusals from bind() too).
  virtual void record_failure(const ConnectRequest& /*request*/) {}
  // Whether `serial` (an Identity::credential_serial this authenticator issued) is still the
  // current issuance of the device credential of (instance_id, client_id): false once it was
  // unregistered, refreshed or re-registered. Blocking (may read the store); the broker asks
  // it at start for each saved session, reading RevocationHub::epoch() first. The default
  // answers false, so an authenticator that cannot tell never gets saved sessions back.
  virtual bool credential_current(std::string_view /*instance_id*/, std::string_view /*client_id*/,
                                  std::int64_t /*serial*/) {
    return false;
  }
};

}  // namespace credmq::auth
