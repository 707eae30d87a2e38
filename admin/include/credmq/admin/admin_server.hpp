// The admin HTTP API: ApsaraMQ for MQTT device-credential OpenAPI (admin-api.md).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>

#include "credmq/auth/credential_service.hpp"
#include "credmq/common/tls.hpp"

namespace credmq::admin {

struct AdminConfig {
  boost::asio::ip::tcp::endpoint listen{boost::asio::ip::make_address("127.0.0.1"), 8080};
  double calls_per_second_per_account = 500;  // Throttling.User above this; <= 0: no limit
  std::chrono::seconds timestamp_window{15 * 60};
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::seconds idle_timeout{60};  // read/write deadline; an idle connection closes
  // Actions queued or running on the blocking executor beyond which requests get
  // 500 SystemOverFlow at once instead of queuing.
  std::size_t max_pending_actions = 10000;
  // Unexpired SignatureNonces remembered for replay protection; when full, requests get
  // 500 SystemOverFlow rather than a nonce being forgotten early.
  std::size_t max_remembered_nonces = 1'000'000;
  // HTTPS when set: each connection handshakes with the provider's current context (so a
  // reload() affects new connections only). Shared with the owner.
  std::shared_ptr<tls::ContextProvider> tls;
};

class AdminServer {
 public:
  // Actions run on `blocking_executor` (a thread pool): the store is blocking. `credentials`
  // and the pool must keep working until stop() (or the destructor) returns: stop() waits for
  // the actions already handed to the pool.
  AdminServer(AdminConfig config, auth::CredentialService& credentials,
              boost::asio::any_io_executor blocking_executor);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();  // binds (throws on failure) and starts its I/O thread; once only
  // The actual address after start() (useful with port 0).
  boost::asio::ip::tcp::endpoint bound_endpoint() const;
  // Idempotent: stops accepting, drops connections, waits for in-flight actions.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace credmq::admin
