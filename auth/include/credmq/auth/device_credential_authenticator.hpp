// The default auth plugin: DeviceCredential and Signature modes of mqtt-auth.md, plus
// anonymous clients on listeners that allow them.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include "credmq/auth/authenticator.hpp"
#include "credmq/auth/failure_throttle.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::auth {

class DeviceCredentialAuthenticator : public Authenticator {
 public:
  // `blocking_executor` runs store lookups and HMACs (a thread pool, not an I/O thread).
  DeviceCredentialAuthenticator(storage::Store& store, RevocationHub& hub,
                                boost::asio::any_io_executor blocking_executor,
                                ThrottleLimits limits = {});

  void authenticate(ConnectRequest request, std::function<void(AuthResult)> done) override;
  void record_failure(const ConnectRequest& request) override;
  // Compares with the serial of the credential row of (instance, client id). Throws
  // storage::StorageError when the store fails.
  bool credential_current(std::string_view instance_id, std::string_view client_id,
                          std::int64_t serial) override;

  // The synchronous core, for unit tests and for the pool: blocking.
  AuthResult authenticate_now(const ConnectRequest& request);
  // Non-blocking: decides a DeviceCredential login from the store's in-memory credential
  // index (Store::find_credential_in_memory), with the same checks, order and outcomes as
  // authenticate_now. nullopt when it cannot (another mode, no index answer): use
  // authenticate_now on the pool.
  std::optional<AuthResult> authenticate_in_memory(const ConnectRequest& request);

  // Password expected for a DeviceCredential/Signature login:
  // Base64(HMAC-SHA1(key = secret as is, data = client id)).
  static std::string expected_password(std::string_view secret, std::string_view client_id);

 private:
  AuthResult refuse(const ConnectRequest& request, std::string_view key_id, Refusal refusal,
                    std::string_view why);
  AuthResult accept(const ConnectRequest& request, Identity identity);
  // The checks of a found DeviceCredential row: instance, client id, password.
  AuthResult check_device_credential(const ConnectRequest& request, std::string_view key_id,
                                     std::string_view username_instance,
                                     std::string_view instance_id, std::string_view client_id,
                                     std::string_view secret, std::int64_t serial,
                                     std::uint64_t epoch);

  storage::Store& store_;
  RevocationHub& hub_;
  boost::asio::any_io_executor blocking_executor_;
  FailureThrottle throttle_;
};

}  // namespace credmq::auth
