// credmq::Server: the whole product in one embeddable object — credential store, auth plugin,
// MQTT broker and admin API — for the credmq executable and for test harnesses.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "credmq/auth/credential_service.hpp"
#include "credmq/auth/failure_throttle.hpp"
#include "credmq/broker/topic_rules.hpp"
#include "credmq/common/tls.hpp"

namespace credmq {

inline constexpr const char* kDefaultInstanceId = "credmq-default";

struct ServerOptions {
  std::filesystem::path data_dir = "data";
  std::vector<boost::asio::ip::tcp::endpoint> mqtt_listen{
      {boost::asio::ip::make_address("0.0.0.0"), 1883}};
  boost::asio::ip::tcp::endpoint admin_listen{boost::asio::ip::make_address("127.0.0.1"), 8080};
  // MQTT over TLS (TLS 1.2 minimum) on these endpoints; empty = no TLS listener. Needs
  // mqtt_tls.certificate and .private_key; .ca (+ require_client_certificate) for mutual TLS.
  std::vector<boost::asio::ip::tcp::endpoint> mqtt_tls_listen;
  tls::ServerFiles mqtt_tls;
  // HTTPS for the admin API when admin_tls.certificate is set (its ca and
  // require_client_certificate work as for MQTT).
  tls::ServerFiles admin_tls;
  // start() refuses an admin_listen address that is not loopback unless the admin API uses
  // TLS or this is set.
  bool admin_insecure = false;
  bool allow_anonymous = false;  // anonymous clients land on default_instance
  std::string default_instance = kDefaultInstanceId;
  std::vector<std::string> instances;  // declared in addition to the default one
  std::size_t max_packet_size = 1024 * 1024;
  std::chrono::seconds sys_interval{10};            // $SYS/broker/... refresh; 0 = none
  std::uint16_t max_keep_alive = 0;                 // seconds; 0 = no limit (BrokerConfig)
  std::uint16_t outgoing_topic_alias_maximum = 64;  // 0 = never (BrokerConfig)
  unsigned io_threads = 0;                          // 0 = hardware concurrency
  unsigned storage_threads = 4;                     // blocking pool for SQLite and HMACs
  double admin_calls_per_second = 500;
  // Admin API: largest request body (413 InvalidParameter.Body above it), and the deadline
  // for receiving a whole request (header and body), writing a reply and an idle keep-alive.
  std::size_t admin_max_body_bytes = 64 * 1024;
  std::chrono::seconds admin_timeout{60};
  // MQTT connections: deadline for the CONNECT (received and authenticated), and how many
  // may be open at once, overall and per source address (0 = no limit; loopback is exempt
  // from the per-address limit). See broker::BrokerConfig.
  std::chrono::seconds connect_timeout{10};
  std::size_t max_connections = 100'000;
  std::size_t max_connections_per_address = 1'000;
  // Topic rules per instance id, in order (docs/security.md); none = everything allowed.
  std::map<std::string, std::vector<broker::TopicRule>, std::less<>> topic_rules;
  auth::ThrottleLimits auth_throttle{};
  // Persistent sessions (with their subscriptions, queues, in-flight messages and delayed
  // wills) and retained messages are saved in credmq.db and restored at start. Saved every
  // session_save_interval when something changed, and at stop(). Off: kept in memory only,
  // and what an earlier run saved is deleted at start.
  bool persist_sessions = true;
  std::chrono::milliseconds session_save_interval{2000};
  // Per session, messages waiting to be sent (0 = no limit); see broker::BrokerConfig. The
  // byte limit bounds what one subscriber that never reads can pin (10,000 messages of up to
  // the 1 MiB packet limit would be 10 GiB).
  std::size_t max_queued_messages = 10'000;
  std::size_t max_queued_bytes = std::size_t{64} << 20;  // 64 MiB
};

// What DIR/admin-credentials.json holds.
struct AdminCredentials {
  std::string access_key_id;
  std::string access_key_secret;
  std::string instance_id;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the store (creating the data dir, master key, default instance and admin key on
  // first start), binds the listeners and starts serving. Throws on failure.
  void start();
  // Stops the listeners (MQTT 5 clients get DISCONNECT 0x8B) and the workers. Idempotent.
  void stop();

  std::vector<boost::asio::ip::tcp::endpoint> mqtt_endpoints() const;
  std::vector<boost::asio::ip::tcp::endpoint> mqtt_tls_endpoints() const;
  bool admin_uses_tls() const;
  // Re-reads the certificate, key and CA files of the MQTT TLS and admin HTTPS listeners
  // (SIGHUP). Existing connections keep their session; new handshakes use the new files. A
  // listener whose files fail to load keeps its old context; the error is logged. Returns
  // whether every configured listener reloaded. Any thread.
  bool reload_tls();
  boost::asio::ip::tcp::endpoint admin_endpoint() const;
  const AdminCredentials& admin_credentials() const;
  // True when this start created the admin key pair (first start on an empty data dir).
  bool admin_credentials_created() const;
  std::filesystem::path admin_credentials_path() const;
  auth::CredentialService& credentials();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "HOST:PORT", "[V6]:PORT"; throws std::invalid_argument with a clear message.
boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& text);

}  // namespace credmq
