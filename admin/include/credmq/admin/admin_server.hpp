// The admin HTTP API: ApsaraMQ for MQTT device-credential OpenAPI (admin-api.md).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>

#include "credmq/auth/credential_service.hpp"

namespace credmq::admin {

struct AdminConfig {
  boost::asio::ip::tcp::endpoint listen{boost::asio::ip::make_address("127.0.0.1"), 8080};
  double calls_per_second_per_account = 500;  // Throttling.User above this
  std::chrono::seconds timestamp_window{15 * 60};
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::seconds idle_timeout{60};
};

class AdminServer {
 public:
  // Actions run on `blocking_executor` (a thread pool): the store is blocking.
  AdminServer(AdminConfig config, auth::CredentialService& credentials,
              boost::asio::any_io_executor blocking_executor);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();  // binds (throws on failure) and starts its I/O thread
  boost::asio::ip::tcp::endpoint bound_endpoint() const;
  void stop();   // idempotent

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace credmq::admin
