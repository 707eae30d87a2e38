// One MQTT network connection: reads and frames packets, runs CONNECT/authentication,
// attaches to a Session, writes queued packets, and closes (including on revocation).
// Everything except revoke()/the post_* functions runs on the connection's own io_context
// thread, so its members need no locking.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core.hpp"
#include "credmq/auth/authenticator.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/mqtt/codec.hpp"
#include "credmq/mqtt/packets.hpp"
#include "deadline_queue.hpp"
#include "fifo.hpp"

namespace credmq::broker::detail {

class TlsConnection;

// Topic Aliases this server sets for its PUBLISHes to one MQTT 5 connection, up to the
// client's Topic Alias Maximum: first come, first served, never replaced, so a topic's alias
// stays valid for the connection's life and no hot-path work beyond one lookup is added.
struct OutgoingTopicAliases {
  explicit OutgoingTopicAliases(std::uint16_t limit) : maximum(limit) {}
  // The topic's alias, or 0 when all are taken; `assigned` when it was set just now (the
  // PUBLISH must then carry the topic too).
  std::uint16_t alias_for(const std::string& topic, bool& assigned);

  const std::uint16_t maximum;
  std::unordered_map<std::string, std::uint16_t> aliases;
};

// Idle connections are the common case (issue 4: memory per idle connection), so everything
// a connection needs only at CONNECT, for a will, for topic aliases or while writing lives
// behind a pointer, and the socket is bound to the io_context's own executor type (an
// any_io_executor would add 48 bytes to the socket and to every pending operation).
class Connection : public auth::RevocableSession, public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::io_context::executor_type>;

  // `remote_address`: the peer's IP address text (the listener has it from accept()).
  Connection(Core& core, Socket socket, std::string remote_address);
  ~Connection() override;

  void start();
  bool is_tls() const { return tls_; }

  // Any thread. Marks the session dead at once and posts the close (DISCONNECT 0x98).
  void revoke() override;
  // Any thread: post a server-initiated close (stop(): 0x8B; takeover: 0x8E).
  void post_close(mqtt::ReasonCode reason);
  // Any thread: post a drain of the session queue.
  void post_wake();

 protected:
  struct TlsTag {};
  // For TlsConnection: the same connection whose bytes go through its TLS stream.
  Connection(Core& core, Socket socket, std::string remote_address, TlsTag);

 private:
  friend class DeadlineQueue<Connection>;
  friend class TlsConnection;
  enum class Phase : std::uint8_t { awaiting_connect, authenticating, connected, closing };
  enum class EndReason { client_disconnect, abnormal, taken_over, revoked, server_shutdown };

  // An encoded control packet, or a PUBLISH whose header is encoded at write time and whose
  // payload is the shared message's bytes.
  struct OutItem {
    MessagePtr message;
    SubscriptionIds subscription_ids;
    std::string bytes;
    std::uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::uint16_t packet_id = 0;
    std::uint32_t header_offset = 0;  // into header_arena, while being written
    std::uint32_t header_size = 0;
  };

  // The write side's buffers. A connection holds one only while it has something to send;
  // then it goes back to a per-thread pool (see out_queue()), so idle connections own
  // none and busy ones reuse the pooled capacity instead of allocating.
  struct WriteState {
    Fifo<OutItem> queue;           // not yet written
    std::vector<OutItem> writing;  // being written
    std::string header_arena;
    std::vector<boost::asio::const_buffer> gather;
  };

  // What only the CONNECT flow needs: dropped once the session is attached.
  struct ConnectState {
    auth::ConnectRequest request;  // for authenticate() and record_failure()
    auth::Identity identity;       // once accepted
  };

  static constexpr std::uint16_t kTopicAliasMaximum = 10;
  using TopicAliases = std::array<std::string, kTopicAliasMaximum + 1>;

  // Reading.
  void arm_read();
  void on_readable(const boost::system::error_code& ec);
  void consume(std::span<const std::uint8_t> fresh);
  void handle_packet(std::span<const std::uint8_t> bytes, std::uint8_t first_byte);
  void resume_reading();

  // CONNECT.
  void handle_first_packet(std::span<const std::uint8_t> bytes, std::size_t header_size);
  void on_connect(mqtt::Connect connect);
  void on_authenticated(auth::AuthResult result);
  void refuse(std::uint8_t reason_code_v5);
  bool attach_session(bool clean_start, bool& session_present);
  void set_persistent_locked(bool persistent);

  // Packets after CONNECT.
  void on_publish(mqtt::Publish& publish);
  void on_subscribe(const mqtt::Subscribe& subscribe);
  void on_unsubscribe(const mqtt::Unsubscribe& unsubscribe);
  void on_ack(const mqtt::Ack& ack);
  void on_disconnect(const mqtt::Disconnect& disconnect);

  // Writing.
  Fifo<OutItem>& out_queue();  // takes a write state if there is none
  bool out_queue_empty() const { return !write_ || write_->queue.empty(); }
  void release_write_state();  // when nothing is queued or being written
  static std::vector<std::unique_ptr<WriteState>>& write_state_pool();  // this thread's
  void send(const mqtt::Packet& packet);
  void resend_inflight();
  void resend(std::uint16_t packet_id, const InflightMessage& inflight);
  void pump();
  void flush();
  void on_written(const boost::system::error_code& ec, std::size_t bytes);
  // Encodes item's PUBLISH header with a Topic Alias; false (nothing written) if none is free.
  bool encode_with_alias(const OutItem& item, const mqtt::Properties& properties);
  // Whether a PUBLISH of `message` at `qos` exceeds the client's Maximum Packet Size.
  bool exceeds_client_maximum(const Message& message, const SubscriptionIds& ids, std::uint8_t qos,
                              std::chrono::steady_clock::time_point now) const;
  std::uint16_t allocate_packet_id(Session& session);

  // Closing.
  void close(EndReason why, std::optional<mqtt::ReasonCode> disconnect_reason);
  void fail(mqtt::ReasonCode reason);  // protocol violation: DISCONNECT (5.0) and close
  void abort_connection();             // the socket failed: no more writes
  // Binds `flag` (a delayed will, an offline session) to this connection's credential before
  // the connection unbinds, so a revocation reaches one or the other. False (and the flag
  // raised) if the credential was revoked meanwhile.
  bool bind_to_credential(const std::shared_ptr<RevocationFlag>& flag);
  void unbind_from_credential(RevocationFlag& flag);
  void end_session(EndReason why);
  void begin_lingering_close();
  void hard_close(bool reset);

  // Deadlines (connect timeout, keep alive, close timeout): one at a time, in the I/O
  // thread's DeadlineQueue.
  void arm_timer(std::chrono::steady_clock::time_point deadline);
  void cancel_timer();
  void on_deadline();

  bool is_v5() const { return version_ == mqtt::ProtocolVersion::v5; }
  // The CONNECT's client id until the session is attached, then the session's (empty before
  // CONNECT).
  const std::string& client_id() const;
  // Empty until authenticated.
  const std::string& instance_id() const;

  Core& core_;
  Socket socket_;
  DeadlineHook deadline_hook_;
  std::string remote_address_;
  std::chrono::steady_clock::time_point last_activity_;

  // Read side: only an incomplete packet is kept per connection.
  std::vector<std::uint8_t> partial_;

  // Session.
  std::shared_ptr<Session> session_;
  Instance* instance_ = nullptr;
  std::unique_ptr<ConnectState> connecting_;
  std::unique_ptr<mqtt::Will> will_;
  std::unique_ptr<TopicAliases> topic_aliases_;             // from the first PUBLISH that sets one
  std::unique_ptr<OutgoingTopicAliases> outgoing_aliases_;  // 5.0 clients that accept aliases
  std::int64_t bound_serial_ = 0;
  std::uint64_t revocation_epoch_ = 0;  // the authentication's, for later binds
  std::uint32_t keep_alive_limit_ms_ = 0;
  std::uint32_t session_expiry_ = 0;
  std::uint32_t client_max_packet_size_ = 0;  // 0 = no limit announced
  std::uint16_t inflight_limit_ = 65535;
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::v3_1_1;
  Phase phase_ = Phase::awaiting_connect;
  std::atomic<bool> revoked_{false};
  bool session_ended_ = false;
  // Bit-fields sharing one byte: both are read only when connecting and closing.
  bool counted_connected_ : 1 = false;  // in instance_->clients_connected
  // A TlsConnection: reads, writes, the start and the lingering close go through its TLS
  // stream. A bit beside a cold flag (not a virtual call, a pointer or a byte more), so a
  // plain TCP connection keeps its size (256 bytes) and takes one predictable branch per read
  // wake-up, write and close.
  const bool tls_ : 1 = false;
  bool socket_closed_ = false;
  bool send_shut_down_ = false;
  bool read_armed_ = false;
  bool read_paused_ = false;
  bool writing_ = false;

  // Write side.
  std::unique_ptr<WriteState> write_;
};

// A connection on a TLS listener. The MQTT logic is Connection's; only the transport differs:
// the TLS stream wraps Connection's socket, handshakes first (within connect_timeout), reads
// into a buffer of its own (TLS records must be decrypted whole; the plain path's per-thread
// buffer plus non-blocking reads cannot be used), writes a linearised copy of the gather
// (one TLS record per gathered piece would be wasteful), and closes with close_notify.
class TlsConnection final : public Connection {
 public:
  TlsConnection(Core& core, Socket socket, std::string remote_address,
                std::shared_ptr<boost::asio::ssl::context> context);

 private:
  friend class Connection;
  void start_handshake();
  void arm_read();
  void on_read(const boost::system::error_code& ec, std::size_t bytes);
  void write(const std::vector<boost::asio::const_buffer>& gather);
  void begin_lingering_close();

  // The context this connection was accepted with; a reload does not affect it.
  std::shared_ptr<boost::asio::ssl::context> context_;
  boost::asio::ssl::stream<Socket&> stream_;
  std::vector<std::uint8_t> read_buffer_;  // after the handshake
  std::string write_buffer_;
  bool handshake_done_ = false;
};

}  // namespace credmq::broker::detail
