// The MQTT broker: listeners, sessions, routing. Embeddable; owns its I/O threads.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "credmq/auth/authenticator.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/broker/persistence.hpp"
#include "credmq/broker/topic_rules.hpp"
#include "credmq/common/tls.hpp"

namespace credmq::broker {

struct BrokerConfig {
  std::vector<boost::asio::ip::tcp::endpoint> listen;  // port 0 = ephemeral
  // MQTT over TLS: these listeners handshake with `tls`'s current context (required when
  // tls_listen is not empty), then serve exactly as the plain ones. Shared with the owner,
  // which may reload() it at any time.
  std::vector<boost::asio::ip::tcp::endpoint> tls_listen;
  std::shared_ptr<tls::ContextProvider> tls;
  // When set, clients without a username are accepted on this instance.
  std::optional<std::string> anonymous_instance;
  std::size_t max_packet_size = 1024 * 1024;
  unsigned io_threads = 0;  // 0 = hardware concurrency
  // Close a connection that has not completed CONNECT within this time (CONNECT received and
  // authenticated): closed without a reply.
  std::chrono::milliseconds connect_timeout{10'000};
  // Connections open at once, overall and per source address; 0 = no limit. A connection
  // over a limit is closed right after accept, before anything is read from it. Loopback
  // addresses are exempt from the per-address limit unless limit_loopback is set.
  std::size_t max_connections = 100'000;
  std::size_t max_connections_per_address = 1'000;
  bool limit_loopback = false;
  // Topic rules per instance id (docs/security.md, "Authorization"). An instance without
  // rules allows everything.
  std::map<std::string, TopicRules, std::less<>> topic_rules;
  // Peer that does not read: hard-close after this when closing.
  std::chrono::milliseconds close_timeout{100};
  std::size_t max_inflight_per_session = 65535;  // outgoing QoS 1/2 not yet acknowledged
  // MQTT 5 Receive Maximum announced in CONNACK: incoming QoS 2 PUBLISHes not yet released
  // (QoS 1 is acknowledged at once); a client exceeding it gets DISCONNECT 0x93.
  std::uint16_t receive_maximum = 65535;
  // Per session, messages waiting to be sent (offline, or beyond the in-flight window): at
  // most this many, and no new one while their payloads total this many bytes or more. A
  // message for a full queue is dropped (counted in BrokerStats::messages_dropped). 0 = no
  // limit, as Mosquitto's max_queued_messages / max_queued_bytes (whose byte default is 0;
  // ours bounds a subscriber that never reads).
  std::size_t max_queued_per_session = 10'000;
  std::size_t max_queued_bytes_per_session = std::size_t{64} << 20;  // 64 MiB
  // When set, persistent sessions and retained messages are loaded from it at start() and
  // saved to it every save_interval (if anything changed) and at stop(). Not owned; must
  // outlive the Broker.
  StatePersistence* persistence = nullptr;
  std::chrono::milliseconds save_interval{2000};
  // $SYS/broker/... topics are refreshed this often (changed values only; Mosquitto's
  // sys_interval). 0 = no $SYS topics.
  std::chrono::seconds sys_interval{10};
  // Longest Keep Alive a client may use, seconds (Mosquitto's max_keepalive); 0 = no limit.
  // 5.0 clients asking for more, or for 0, get this as Server Keep Alive; 3.1.1 ones are
  // refused (identifier rejected, as Mosquitto).
  std::uint16_t max_keep_alive = 0;
  // Topic Aliases the server sets on PUBLISHes to a 5.0 client, at most this many and at most
  // the client's Topic Alias Maximum. 0 = never.
  std::uint16_t outgoing_topic_alias_maximum = 64;
};

struct BrokerStats {
  std::size_t connections = 0;
  std::size_t sessions = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_dropped = 0;     // for a session whose queue was full
  std::uint64_t connections_refused = 0;  // over max_connections or the per-address limit
};

class Broker {
 public:
  Broker(BrokerConfig config, auth::Authenticator& authenticator, auth::RevocationHub& hub);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Restores the persisted state (if configured), binds every listener (throws
  // boost::system::system_error on failure) and starts the I/O threads. Returns once the
  // listeners accept connections.
  void start();
  std::vector<boost::asio::ip::tcp::endpoint> bound_endpoints() const;
  std::vector<boost::asio::ip::tcp::endpoint> bound_tls_endpoints() const;
  // Stops accepting, sends MQTT 5 clients DISCONNECT 0x8B, closes every connection, joins
  // the I/O threads, then saves the state (if configured). Idempotent.
  void stop();
  BrokerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace credmq::broker
