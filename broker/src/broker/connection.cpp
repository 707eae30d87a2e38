#include "connection.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <utility>

#include "credmq/common/log.hpp"

namespace credmq::broker::detail {

// Every connection allocates one Connection, and one Session unless it resumes one, so their
// sizes are most of the broker's memory per idle connection (docs/performance.md, "Memory per
// idle connection"). Today (GCC 12, libstdc++, x86-64): Connection 248 bytes, Session 328 (were
// 1,488 and 416). Grow them knowingly: rarely-used state belongs behind a pointer.
static_assert(sizeof(Connection) <= 256);
static_assert(sizeof(Session) <= 384);

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

const mqtt::Properties kNoProperties;
const std::string kEmpty;
// Items gathered into one write, and the bound on packets moved from the session queue
// ahead of the socket (the rest wait in the session queue, bounded there).
constexpr std::size_t kMaxBatch = 256;
constexpr std::size_t kReadBufferSize = 16 * 1024;
// An idle connection should not keep a large buffer after one big packet.
constexpr std::size_t kMaxIdlePartialCapacity = 4 * 1024;
// Write states kept per I/O thread for the connections that have something to send next,
// and the capacity each keeps there.
constexpr std::size_t kPooledWriteStates = 64;
constexpr std::size_t kPooledItems = 64;
constexpr std::size_t kPooledArenaBytes = 4 * 1024;

// Allocates the read-wait operation that every connection keeps pending while idle, in
// blocks of its exact size recycled through a per-thread free list (no allocation per
// wake-up in steady state). Asio's default recycling allocator would hand the wait any larger
// cached block, e.g. one left by the CONNACK's write operation, which then stays allocated
// for as long as the connection is idle.
template <class T>
struct ReadWaitAllocator {
  using value_type = T;
  ReadWaitAllocator() = default;
  template <class U>
  ReadWaitAllocator(const ReadWaitAllocator<U>&) noexcept {}  // NOLINT: rebinding
  template <class U>
  bool operator==(const ReadWaitAllocator<U>&) const noexcept {
    return true;
  }

  T* allocate(std::size_t n) {
    if (n == 1) {
      auto& blocks = free_blocks();
      if (!blocks.empty()) {
        void* block = blocks.back();
        blocks.pop_back();
        return static_cast<T*>(block);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* block, std::size_t n) noexcept {
    auto& blocks = free_blocks();
    if (n == 1 && blocks.size() < kKeptBlocks) {
      try {
        blocks.push_back(block);
        return;
      } catch (...) {  // out of memory: free it instead
      }
    }
    ::operator delete(block);
  }

 private:
  static constexpr std::size_t kKeptBlocks = 64;
  // One list per block type and thread; a block freed on another thread (at shutdown) joins
  // that thread's list.
  static std::vector<void*>& free_blocks() {
    thread_local struct Blocks {
      std::vector<void*> blocks;
      ~Blocks() {
        for (void* block : blocks) ::operator delete(block);
      }
    } list;
    return list.blocks;
  }
};

// One read buffer per I/O thread: idle connections own none.
std::span<std::uint8_t> thread_read_buffer() {
  thread_local std::array<std::uint8_t, kReadBufferSize> buffer;
  return buffer;
}

std::uint8_t refusal_code_v5(auth::Refusal refusal) {
  switch (refusal) {
    case auth::Refusal::bad_credentials:
      return 0x86;
    case auth::Refusal::not_authorized:
      return 0x87;
    case auth::Refusal::server_unavailable:
      return 0x88;
  }
  return 0x87;
}

// 3.1.1 CONNACK return codes for the 5.0 reason codes we refuse with.
std::uint8_t connack_code(mqtt::ProtocolVersion version, std::uint8_t v5_code) {
  if (version == mqtt::ProtocolVersion::v5) return v5_code;
  switch (v5_code) {
    case 0x84:
      return 0x01;
    case 0x85:
      return 0x02;
    case 0x88:
    case 0x89:
      return 0x03;
    case 0x86:
      return 0x04;
    default:
      return 0x05;
  }
}

mqtt::ReasonCode reason_of(const error_code& ec) {
  if (ec.category() == mqtt::reason_category() && ec.value() >= 0x80 && ec.value() <= 0xFF) {
    return static_cast<mqtt::ReasonCode>(ec.value());
  }
  return mqtt::ReasonCode::malformed_packet;
}

const char* phase_name(int phase) {
  static const char* const names[] = {"awaiting_connect", "authenticating", "connected", "closing"};
  return names[phase];
}

// The properties a forwarded PUBLISH carries: the message's own, with the Message Expiry
// Interval set to the time left [MQTT-3.3.2-6]. Only messages that need a change are copied,
// into a per-thread scratch whose capacity is reused.
const mqtt::Properties& forwarded_properties(const Message& message, const SubscriptionIds& ids,
                                             Clock::time_point now) {
  if (!message.properties.message_expiry_interval && ids.empty()) return message.properties;
  thread_local mqtt::Properties scratch;
  scratch = message.properties;
  if (scratch.message_expiry_interval) scratch.message_expiry_interval = message.seconds_left(now);
  auto& identifiers = scratch.subscription_identifiers;
  identifiers.clear();
  if (!ids.empty()) {
    identifiers.push_back(ids.first);
    identifiers.insert(identifiers.end(), ids.more.begin(), ids.more.end());
  }
  return scratch;
}

}  // namespace

void wake_connection(const std::shared_ptr<Connection>& connection) { connection->post_wake(); }

Connection::Connection(Core& core, Socket socket, std::string remote_address)
    : core_(core), socket_(std::move(socket)), remote_address_(std::move(remote_address)) {}

Connection::Connection(Core& core, Socket socket, std::string remote_address, TlsTag)
    : core_(core),
      socket_(std::move(socket)),
      remote_address_(std::move(remote_address)),
      tls_(true) {}

Connection::~Connection() {
  // Normally done when closing; this covers handlers destroyed with their io_context.
  end_session(EndReason::server_shutdown);
}

void Connection::start() {
  error_code ec;
  socket_.non_blocking(true, ec);
#ifndef __linux__
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);  // Linux: inherited from the listener
#endif
  last_activity_ = Clock::now();
  // For TLS the handshake counts against the connect timeout too.
  arm_timer(last_activity_ + core_.config.connect_timeout);
  if (tls_) {
    static_cast<TlsConnection*>(this)->start_handshake();
    return;
  }
  arm_read();
}

const std::string& Connection::client_id() const {
  if (session_) return session_->client_id;
  if (connecting_) return connecting_->request.client_id;
  return kEmpty;
}

const std::string& Connection::instance_id() const {
  return instance_ != nullptr ? instance_->id : kEmpty;
}

// ---------------------------------------------------------------------------------------
// Reading

void Connection::arm_read() {
  if (read_armed_ || socket_closed_) return;
  read_armed_ = true;
  if (tls_) {
    static_cast<TlsConnection*>(this)->arm_read();
    return;
  }
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     asio::bind_allocator(ReadWaitAllocator<void>(),
                                          [self = shared_from_this()](const error_code& ec) {
                                            self->on_readable(ec);
                                          }));
}

void Connection::on_readable(const error_code& wait_error) {
  read_armed_ = false;
  if (socket_closed_) return;
  if (wait_error) {
    abort_connection();
    return;
  }
  auto buffer = thread_read_buffer();
  // A few reads per wake-up, then yield so one busy client cannot starve the others.
  for (int round = 0; round < 4; ++round) {
    error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) {
      if (phase_ == Phase::closing) {
        hard_close(false);  // the peer closed its side: the lingering close is complete
      } else {
        abort_connection();
      }
      return;
    }
    last_activity_ = Clock::now();
    if (phase_ == Phase::closing) continue;  // lingering close: discard what the peer sends
    consume(std::span<const std::uint8_t>(buffer.data(), n));
    if (socket_closed_ || read_paused_) return;
    if (n < buffer.size()) break;
  }
  arm_read();
}

void Connection::consume(std::span<const std::uint8_t> fresh) {
  const bool from_partial = !partial_.empty();
  if (from_partial) partial_.insert(partial_.end(), fresh.begin(), fresh.end());
  std::span<const std::uint8_t> data =
      from_partial ? std::span<const std::uint8_t>(partial_) : fresh;
  std::size_t used = 0;
  std::uint64_t packets = 0;
  std::uint64_t publishes = 0;
  while (phase_ != Phase::closing && !read_paused_ && used < data.size()) {
    // [MQTT-3.1.0-1]: the first packet must be CONNECT. Judged on its first byte so that
    // e.g. an HTTP request is closed at once rather than waiting out the CONNECT deadline.
    if (phase_ == Phase::awaiting_connect &&
        (data[used] >> 4) != static_cast<std::uint8_t>(mqtt::PacketType::connect)) {
      log::debug("connection from ", remote_address_, ": first packet is not CONNECT");
      close(EndReason::abnormal, std::nullopt);
      break;
    }
    auto frame = mqtt::frame(data.subspan(used), core_.config.max_packet_size);
    if (frame.status == mqtt::Frame::Status::need_more) break;
    if (frame.status == mqtt::Frame::Status::error) {
      log::debug("client ", client_id(), " from ", remote_address_, ": bad frame (",
                 static_cast<int>(frame.error), ")");
      fail(frame.error);
      break;
    }
    if (data.size() - used < frame.total_size()) break;
    auto packet = data.subspan(used, frame.total_size());
    used += frame.total_size();
    ++packets;
    if ((frame.first_byte >> 4) == static_cast<std::uint8_t>(mqtt::PacketType::publish)) {
      ++publishes;
    }
    handle_packet(packet, frame.first_byte);
  }
  if (instance_ != nullptr && packets > 0) {
    instance_->packets_received.fetch_add(packets, std::memory_order_relaxed);
    if (publishes > 0)
      instance_->publishes_received.fetch_add(publishes, std::memory_order_relaxed);
  }
  if (instance_ != nullptr && !fresh.empty()) {
    instance_->bytes_received.fetch_add(fresh.size(), std::memory_order_relaxed);
  }
  if (phase_ == Phase::closing) {
    std::vector<std::uint8_t>().swap(partial_);
    return;
  }
  if (from_partial) {
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(used));
  } else {
    partial_.assign(fresh.begin() + static_cast<std::ptrdiff_t>(used), fresh.end());
  }
  if (partial_.empty() && partial_.capacity() > kMaxIdlePartialCapacity) {
    std::vector<std::uint8_t>().swap(partial_);
  }
}

void Connection::resume_reading() {
  read_paused_ = false;
  if (!partial_.empty()) consume({});
  if (phase_ != Phase::closing && !read_paused_) arm_read();
}

void Connection::handle_packet(std::span<const std::uint8_t> bytes, std::uint8_t first_byte) {
  const auto type = static_cast<mqtt::PacketType>(first_byte >> 4);
  if (phase_ == Phase::awaiting_connect) {  // consume() let only a CONNECT through
    // The fixed header is 1 byte plus 1..4 length bytes; find where the body starts.
    std::size_t header_size = 2;
    while (header_size < 5 && header_size <= bytes.size() && (bytes[header_size - 1] & 0x80)) {
      ++header_size;
    }
    handle_first_packet(bytes, header_size);
    return;
  }
  mqtt::Packet packet;
  if (auto ec = mqtt::decode(bytes, version_, packet, mqtt::Sender::client)) {
    log::debug("client ", client_id(), " on ", instance_id(), ": bad ", static_cast<int>(type),
               " packet: ", ec.message());
    fail(reason_of(ec));
    return;
  }
  switch (type) {
    case mqtt::PacketType::publish:
      on_publish(std::get<mqtt::Publish>(packet));
      break;
    case mqtt::PacketType::puback:
    case mqtt::PacketType::pubrec:
    case mqtt::PacketType::pubrel:
    case mqtt::PacketType::pubcomp:
      on_ack(std::get<mqtt::Ack>(packet));
      break;
    case mqtt::PacketType::subscribe:
      on_subscribe(std::get<mqtt::Subscribe>(packet));
      break;
    case mqtt::PacketType::unsubscribe:
      on_unsubscribe(std::get<mqtt::Unsubscribe>(packet));
      break;
    case mqtt::PacketType::pingreq:
      send(mqtt::Pingresp{});
      flush();
      break;
    case mqtt::PacketType::disconnect:
      on_disconnect(std::get<mqtt::Disconnect>(packet));
      break;
    default:  // a second CONNECT, AUTH (no enhanced auth), or a server-to-client packet
      fail(mqtt::ReasonCode::protocol_error);
      break;
  }
}

// ---------------------------------------------------------------------------------------
// CONNECT and authentication

void Connection::handle_first_packet(std::span<const std::uint8_t> bytes, std::size_t header_size) {
  // Peek the protocol level to answer in the client's own CONNACK format.
  std::optional<std::uint8_t> level;
  if (bytes.size() >= header_size + 2) {
    std::size_t name_size = (std::size_t{bytes[header_size]} << 8) | bytes[header_size + 1];
    if (bytes.size() > header_size + 2 + name_size) level = bytes[header_size + 2 + name_size];
  }
  if (level == 5) version_ = mqtt::ProtocolVersion::v5;
  mqtt::Packet packet;
  if (auto ec = mqtt::decode(bytes, version_, packet, mqtt::Sender::client)) {
    const auto reason = reason_of(ec);
    log::debug("connection from ", remote_address_, ": bad CONNECT: ", ec.message());
    if (reason == mqtt::ReasonCode::unsupported_protocol_version) {
      // The client's format is unknown: answer as 3.1.1 (return code 1), as Mosquitto does.
      version_ = mqtt::ProtocolVersion::v3_1_1;
      refuse(0x84);
    } else if (is_v5()) {
      refuse(static_cast<std::uint8_t>(reason));
    } else if (reason == mqtt::ReasonCode::client_identifier_not_valid) {
      refuse(0x85);
    } else {
      close(EndReason::abnormal, std::nullopt);
    }
    return;
  }
  on_connect(std::move(std::get<mqtt::Connect>(packet)));
}

void Connection::on_connect(mqtt::Connect connect) {
  version_ = connect.version;
  if (is_v5() && connect.properties.authentication_method) {
    refuse(0x8C);  // no enhanced authentication
    return;
  }
  bool assigned_id = false;
  if (connect.client_id.empty()) {
    // 3.1.1: a persistent session needs a client id [MQTT-3.1.3-8]. MQTT 3.1 asks for 1 to 23
    // characters: like Mosquitto, only the lower bound is enforced (return code 2).
    if (version_ == mqtt::ProtocolVersion::v3_1 || (!is_v5() && !connect.clean_start)) {
      refuse(0x85);
      return;
    }
    connect.client_id = core_.assign_client_id();
    assigned_id = is_v5();
  }
  connecting_ = std::make_unique<ConnectState>();
  auto& request = connecting_->request;
  request.client_id = std::move(connect.client_id);
  if (connect.will && !mqtt::valid_topic_name(connect.will->topic)) {
    refuse(0x90);
    return;
  }
  if (connect.will) will_ = std::make_unique<mqtt::Will>(std::move(*connect.will));
  // A maximum Keep Alive, as Mosquitto's max_keepalive: 0 ("never") and larger values are
  // replaced by it for 5.0 (Server Keep Alive in CONNACK [MQTT-3.2.2-21]); 3.1.1 cannot be
  // told, so such a CONNECT is refused (return code 2, as Mosquitto does).
  std::uint16_t keep_alive = connect.keep_alive;
  std::uint16_t server_keep_alive = 0;
  const std::uint16_t max_keep_alive = core_.config.max_keep_alive;
  if (max_keep_alive > 0 && (keep_alive == 0 || keep_alive > max_keep_alive)) {
    if (!is_v5()) {
      log::info("client ", client_id(), " from ", remote_address_, " refused: keep alive ",
                keep_alive, " s is not within the maximum of ", max_keep_alive, " s");
      refuse(0x85);
      return;
    }
    keep_alive = server_keep_alive = max_keep_alive;
  }
  keep_alive_limit_ms_ = std::uint32_t{keep_alive} * 1500;
  const auto& properties = connect.properties;
  if (is_v5()) {
    session_expiry_ = properties.session_expiry_interval.value_or(0);
    if (properties.receive_maximum) inflight_limit_ = *properties.receive_maximum;
    client_max_packet_size_ = properties.maximum_packet_size.value_or(0);
    const auto alias_limit = std::min(properties.topic_alias_maximum.value_or(0),
                                      core_.config.outgoing_topic_alias_maximum);
    if (alias_limit > 0) outgoing_aliases_ = std::make_unique<OutgoingTopicAliases>(alias_limit);
  } else {
    session_expiry_ = connect.clean_start ? 0 : kSessionNeverExpires;
  }
  inflight_limit_ = static_cast<std::uint16_t>(
      std::min<std::size_t>(inflight_limit_, core_.config.max_inflight_per_session));
  if (inflight_limit_ == 0) inflight_limit_ = 1;

  request.username = std::move(connect.username);
  request.password = std::move(connect.password);
  request.remote_address = remote_address_;
  if (!request.username) request.anonymous_instance = core_.config.anonymous_instance;

  // Until the verdict is in, no further packet is processed (bytes wait in partial_).
  phase_ = Phase::authenticating;
  read_paused_ = true;
  const bool clean_start = connect.clean_start;
  auto executor = asio::prefer(socket_.get_executor(), asio::execution::outstanding_work.tracked);
  core_.authenticator.authenticate(
      request, [self = shared_from_this(), executor, clean_start, assigned_id,
                server_keep_alive](auth::AuthResult result) mutable {
        asio::post(executor, [self = std::move(self), result = std::move(result), clean_start,
                              assigned_id, server_keep_alive]() mutable {
          if (self->phase_ != Phase::authenticating) return;  // closed meanwhile
          self->on_authenticated(std::move(result));
          if (self->phase_ != Phase::connected) return;
          bool session_present = false;
          if (!self->attach_session(clean_start, session_present)) {
            // Revoked between bind() and here: nothing was routed yet, so it is refused like a
            // CONNECT whose bind saw the revocation (4 / 0x86), rather than dropped silently.
            self->phase_ = Phase::authenticating;
            self->core_.authenticator.record_failure(self->connecting_->request);
            self->refuse(0x86);
            return;
          }
          self->instance_->client_connected();
          self->counted_connected_ = true;
          mqtt::Connack connack;
          connack.session_present = session_present;
          if (self->is_v5()) {
            auto& p = connack.properties;
            if (assigned_id) p.assigned_client_identifier = self->client_id();
            if (server_keep_alive > 0) p.server_keep_alive = server_keep_alive;
            p.receive_maximum = std::max<std::uint16_t>(self->core_.config.receive_maximum, 1);
            p.topic_alias_maximum = kTopicAliasMaximum;
            p.maximum_packet_size = static_cast<std::uint32_t>(
                std::min<std::size_t>(self->core_.config.max_packet_size, 268'435'460));
            p.subscription_identifier_available = 1;
            p.shared_subscription_available = 1;
          }
          self->send(connack);
          const auto& identity = self->connecting_->identity;
          log::info("client ", self->client_id(), " connected on ", self->instance_id(), " (",
                    identity.mode, identity.key_id.empty() ? "" : " ", identity.key_id, ", from ",
                    self->remote_address_, ", session present ", session_present, ")");
          self->connecting_.reset();  // the session holds the client id from here
          const auto now = Clock::now();
          self->last_activity_ = now;
          if (self->keep_alive_limit_ms_ > 0) {
            self->arm_timer(now + std::chrono::milliseconds(self->keep_alive_limit_ms_));
          } else {
            self->cancel_timer();
          }
          if (session_present) self->resend_inflight();
          self->pump();
          self->resume_reading();
        });
      });
}

// Runs the verdict: refuses, or binds to the revocation hub and moves to `connected`.
void Connection::on_authenticated(auth::AuthResult result) {
  connecting_->request.password.reset();
  if (!result.accepted()) {
    log::debug("client ", client_id(), " from ", remote_address_, " refused (",
               static_cast<int>(result.refusal), ")");
    refuse(refusal_code_v5(result.refusal));
    return;
  }
  auto& identity = connecting_->identity;
  identity = std::move(*result.identity);
  revocation_epoch_ = identity.revocation_epoch;
  if (identity.credential_serial != 0) {
    // Bind before any takeover and before CONNACK: from here a revocation reaches us.
    switch (
        core_.hub.bind(identity.credential_serial, identity.revocation_epoch, shared_from_this())) {
      case auth::RevocationHub::BindResult::bound:
        bound_serial_ = identity.credential_serial;
        break;
      case auth::RevocationHub::BindResult::revoked:
        log::info("client ", client_id(), " on ", identity.instance_id, " (key ", identity.key_id,
                  ") refused: credential revoked during authentication");
        core_.authenticator.record_failure(connecting_->request);
        refuse(0x86);
        return;
      case auth::RevocationHub::BindResult::unknown:
        refuse(0x88);
        return;
    }
  }
  instance_ = &core_.instance(identity.instance_id);
  phase_ = Phase::connected;
}

void Connection::refuse(std::uint8_t reason_code_v5) {
  mqtt::Connack connack;
  connack.reason_code = connack_code(version_, reason_code_v5);
  send(connack);
  close(EndReason::abnormal, std::nullopt);
}

// Session takeover / resumption under the instance lock, so racing CONNECTs for one client
// id serialize here and never wait on each other's sockets.
bool Connection::attach_session(bool clean_start, bool& session_present) {
  std::shared_ptr<Connection> previous;
  std::shared_ptr<DelayedWill> ended_will;  // of an offline session this CONNECT replaces
  {
    std::unique_lock lock(instance_->mutex);
    // A revocation that arrived after bind() must not take over (and end) the live session.
    if (revoked_.load(std::memory_order_acquire)) return false;
    std::shared_ptr<Session> existing;
    if (auto it = instance_->sessions.find(client_id()); it != instance_->sessions.end()) {
      existing = it->second;
    }
    bool reusable = false;
    if (existing) {
      std::lock_guard session_lock(existing->mutex);
      bool owner_revoked = false;
      if (existing->owner != nullptr) {
        previous = existing->owner_ref.lock();
        owner_revoked = existing->owner_revoked->load(std::memory_order_acquire);
      }
      const bool expired = existing->owner == nullptr &&
                           existing->expiry_interval != kSessionNeverExpires &&
                           existing->expires_at <= Clock::now();
      // Left behind by a credential revoked while the session was offline: never resumed.
      const bool credential_revoked =
          existing->offline_credential && existing->offline_credential->raised();
      reusable =
          !clean_start && !owner_revoked && !existing->discarded && !expired && !credential_revoked;
      if (reusable) {
        existing->owner = this;
        existing->owner_ref = weak_from_this();
        existing->owner_revoked = &revoked_;
        // A wake posted to the previous owner is lost with it; this connection pumps anyway.
        existing->wake_pending = false;
      }
    }
    if (reusable) {
      instance_->expiring.erase(existing.get());
      core_.release_offline_credential_locked(*instance_, *existing);
      // A new connection to the session before the Will Delay Interval: no will [MQTT-3.1.3-9].
      core_.take_delayed_will_locked(*instance_, *existing);
      core_.drop_forbidden_subscriptions_locked(*instance_, *existing);
      session_ = std::move(existing);
      session_present = true;
    } else {
      // Clean Start ends the old session, and with it the wait of its delayed will.
      if (existing) ended_will = core_.discard_session_locked(*instance_, *existing);
      session_ = std::make_shared<Session>(client_id(), *instance_);  // copies the id
      session_->owner = this;
      session_->owner_ref = weak_from_this();
      session_->owner_revoked = &revoked_;
      // The key views the session's own copy of the id (connecting_ goes after CONNACK).
      instance_->sessions.emplace(session_->client_id, session_);
      core_.session_count.fetch_add(1, std::memory_order_relaxed);
      session_present = false;
    }
    session_->expiry_interval = session_expiry_;
    session_->credential_serial = bound_serial_;
    set_persistent_locked(session_expiry_ != 0);
  }
  core_.publish_delayed_will(*instance_, ended_will);
  if (previous && previous.get() != this) {
    log::info("client ", client_id(), " on ", instance_id(), ": session taken over");
    previous->post_close(mqtt::ReasonCode::session_taken_over);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Packets after CONNECT

void Connection::on_publish(mqtt::Publish& publish) {
  // From revoke() on, nothing from this session is routed.
  if (revoked_.load(std::memory_order_acquire)) return;
  if (is_v5() && publish.properties.topic_alias) {
    const auto alias = *publish.properties.topic_alias;
    if (alias == 0 || alias > kTopicAliasMaximum) {
      fail(mqtt::ReasonCode::topic_alias_invalid);
      return;
    }
    if (publish.topic.empty()) {
      if (!topic_aliases_ || (*topic_aliases_)[alias].empty()) {
        fail(mqtt::ReasonCode::protocol_error);
        return;
      }
      publish.topic = (*topic_aliases_)[alias];
    } else {
      if (!topic_aliases_) topic_aliases_ = std::make_unique<TopicAliases>();
      (*topic_aliases_)[alias] = publish.topic;
    }
  }
  if (!mqtt::valid_topic_name(publish.topic)) {
    fail(mqtt::ReasonCode::topic_name_invalid);
    return;
  }
  // A 5.0 ack with a failure code ends the QoS 1/2 flow: the message is not routed.
  auto refuse_publish = [&](std::uint8_t reason) {
    send(mqtt::Ack{publish.qos == 1 ? mqtt::PacketType::puback : mqtt::PacketType::pubrec,
                   publish.packet_id,
                   reason,
                   {}});
    flush();
  };
  // Payload Format Indicator 1 promises UTF-8: a payload that is not is refused, not routed.
  if (publish.properties.payload_format_indicator == 1 && !mqtt::valid_utf8(publish.payload)) {
    if (publish.qos == 0) {
      fail(mqtt::ReasonCode::payload_format_invalid);
    } else {
      refuse_publish(0x99);
    }
    return;
  }
  // $SYS/ is the broker's own (as in Mosquitto, clients may read it, not write it): dropped,
  // and a 5.0 QoS 1/2 sender is told 0x87 Not authorized. 3.1.1 has no way to say so.
  // Topic rules likewise (docs/security.md): a denied PUBLISH is dropped; a 5.0 QoS 1/2
  // sender gets 0x87, a 3.1.1 one its usual ack (as Mosquitto).
  const bool system = is_sys_topic(publish.topic);
  const bool routed =
      !system && (!instance_->rules || instance_->rules->may_publish(client_id(), publish.topic));
  if (!routed) {
    log::debug("client ", client_id(), " on ", instance_id(), ": PUBLISH to ", publish.topic,
               system ? " dropped ($SYS)" : " dropped (topic rules)");
    if (publish.qos == 0) return;
    if (is_v5()) {
      refuse_publish(0x87);
      return;
    }
  }
  // 5.0 acks say when nobody was subscribed (0x10); 3.1.1 acks have no reason code.
  auto ack_code = [this](bool matched) -> std::uint8_t {
    return matched || !is_v5() ? 0x00 : 0x10;
  };
  if (publish.qos == 2) {
    bool duplicate;
    bool over_quota = false;
    {
      std::lock_guard lock(session_->mutex);
      auto& incoming = session_->incoming_qos2;
      duplicate = incoming.contains(publish.packet_id);
      if (!duplicate) {
        over_quota =
            is_v5() && incoming.size() >= std::max<std::size_t>(core_.config.receive_maximum, 1);
        if (!over_quota) {
          incoming.insert(publish.packet_id);
          session_->touch();
        }
      }
    }
    if (over_quota) {
      fail(mqtt::ReasonCode::receive_maximum_exceeded);  // [MQTT-3.3.4-9]
      return;
    }
    bool matched = true;  // a duplicate was routed (and answered) before
    if (!duplicate && routed) {
      auto message = make_message(std::move(publish.topic), std::move(publish.payload), 2,
                                  publish.retain, publish.properties);
      if (message->retain) core_.retain(*instance_, message);
      matched = core_.route(*instance_, message, session_.get());
    }
    send(mqtt::Ack{mqtt::PacketType::pubrec, publish.packet_id, ack_code(matched), {}});
    flush();
    return;
  }
  bool matched = false;
  if (routed) {
    auto message = make_message(std::move(publish.topic), std::move(publish.payload), publish.qos,
                                publish.retain, publish.properties);
    if (message->retain) core_.retain(*instance_, message);
    matched = core_.route(*instance_, message, session_.get());
  }
  if (publish.qos == 1) {
    send(mqtt::Ack{mqtt::PacketType::puback, publish.packet_id, ack_code(matched), {}});
    flush();
  }
}

void Connection::on_subscribe(const mqtt::Subscribe& subscribe) {
  const auto& identifiers = subscribe.properties.subscription_identifiers;
  if (identifiers.size() > 1) {
    fail(mqtt::ReasonCode::protocol_error);  // at most one per SUBSCRIBE [MQTT-3.8.2.1.2]
    return;
  }
  const std::uint32_t identifier = identifiers.empty() ? 0 : identifiers.front();
  mqtt::Suback suback;
  suback.packet_id = subscribe.packet_id;
  std::vector<std::pair<const std::string*, Subscription>> retained_wanted;
  {
    std::unique_lock lock(instance_->mutex);
    for (const auto& [filter, options] : subscribe.subscriptions) {
      std::string_view group;
      std::string_view topic_filter;
      bool valid_shared = false;
      const bool shared = parse_shared_filter(filter, group, topic_filter, valid_shared);
      if ((shared ? !valid_shared : !mqtt::valid_topic_filter(filter)) || options.qos > 2) {
        suback.reason_codes.push_back(is_v5() ? 0x8F : 0x80);
        continue;
      }
      if (instance_->rules &&
          !instance_->rules->may_subscribe(client_id(), shared ? topic_filter : filter)) {
        log::debug("client ", client_id(), " on ", instance_id(), ": SUBSCRIBE to ", filter,
                   " refused (topic rules)");
        suback.reason_codes.push_back(is_v5() ? 0x87 : 0x80);
        continue;
      }
      // Replaces an existing subscription's options and identifier (none if absent).
      const Subscription subscription{options, identifier};
      bool is_new = instance_->subscriptions.insert(filter, session_.get(), subscription);
      session_->subscriptions.insert_or_assign(filter, subscription);
      session_->touch();
      suback.reason_codes.push_back(options.qos);
      // No retained messages for a shared subscription [MQTT 4.8.2].
      if (!shared && (options.retain_handling == 0 || (options.retain_handling == 1 && is_new))) {
        retained_wanted.emplace_back(&filter, subscription);
      }
    }
  }
  send(suback);
  // Retained messages go after the SUBACK: the session queue drains behind it.
  for (const auto& [filter, subscription] : retained_wanted) {
    core_.deliver_retained(*session_, *filter, subscription);
  }
  pump();
}

void Connection::on_unsubscribe(const mqtt::Unsubscribe& unsubscribe) {
  mqtt::Unsuback unsuback;
  unsuback.packet_id = unsubscribe.packet_id;
  {
    std::unique_lock lock(instance_->mutex);
    for (const auto& filter : unsubscribe.topic_filters) {
      bool existed = session_->subscriptions.erase(filter) > 0;
      instance_->subscriptions.erase(filter, session_.get());
      if (existed) session_->touch();
      unsuback.reason_codes.push_back(existed ? 0x00 : 0x11);
    }
  }
  send(unsuback);
  flush();
}

void Connection::on_ack(const mqtt::Ack& ack) {
  bool owned = true;
  std::optional<mqtt::Ack> reply;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->owner != this) {
      owned = false;  // taken over: the new connection owns the in-flight state
    } else if (ack.type == mqtt::PacketType::pubrel) {
      bool known = session_->incoming_qos2.erase(ack.packet_id) > 0;
      if (known) session_->touch();
      reply = mqtt::Ack{mqtt::PacketType::pubcomp,
                        ack.packet_id,
                        static_cast<std::uint8_t>(known ? 0x00 : 0x92),
                        {}};
    } else {
      auto it = session_->inflight.find(ack.packet_id);
      // Acknowledged before its resend (it reached the client on the previous connection).
      const bool settles = it != session_->inflight.end() &&
                           ((ack.type == mqtt::PacketType::puback && it->second.qos == 1) ||
                            (ack.type == mqtt::PacketType::pubrec && it->second.qos == 2) ||
                            (ack.type == mqtt::PacketType::pubcomp && it->second.released));
      if (settles && it->second.awaiting_resend) {
        it->second.awaiting_resend = false;
        --session_->resend_backlog;
      }
      if (it != session_->inflight.end()) session_->touch();
      if (ack.type == mqtt::PacketType::puback) {
        if (it != session_->inflight.end() && it->second.qos == 1) session_->inflight.erase(it);
      } else if (ack.type == mqtt::PacketType::pubrec) {
        if (it == session_->inflight.end() || it->second.qos != 2) {
          reply = mqtt::Ack{mqtt::PacketType::pubrel, ack.packet_id, 0x92, {}};
        } else if (ack.reason_code >= 0x80) {
          session_->inflight.erase(it);  // the receiver refused: the flow ends here
        } else {
          it->second.released = true;
          it->second.message.reset();  // the payload is no longer needed
          reply = mqtt::Ack{mqtt::PacketType::pubrel, ack.packet_id, 0, {}};
        }
      } else if (ack.type == mqtt::PacketType::pubcomp) {
        if (it != session_->inflight.end() && it->second.released) session_->inflight.erase(it);
      }
    }
  }
  if (!owned) return;
  if (reply) send(*reply);
  pump();
}

void Connection::on_disconnect(const mqtt::Disconnect& disconnect) {
  if (is_v5()) {
    if (auto expiry = disconnect.properties.session_expiry_interval) {
      if (session_expiry_ == 0 && *expiry != 0) {
        fail(mqtt::ReasonCode::protocol_error);  // 3.14.2.2.2: expiry 0 cannot be raised
        return;
      }
      session_expiry_ = *expiry;
      std::unique_lock lock(instance_->mutex);
      if (session_->owner == this) {
        session_->expiry_interval = session_expiry_;
        set_persistent_locked(session_expiry_ != 0);
      }
    }
  }
  // Only 5.0 "Disconnect with Will Message" keeps the will.
  if (!(is_v5() && disconnect.reason_code == 0x04)) will_.reset();
  close(EndReason::client_disconnect, std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Writing

Fifo<Connection::OutItem>& Connection::out_queue() {
  if (!write_) {
    auto& pool = write_state_pool();
    if (pool.empty()) {
      write_ = std::make_unique<WriteState>();
    } else {
      write_ = std::move(pool.back());
      pool.pop_back();
    }
  }
  return write_->queue;
}

void Connection::release_write_state() {
  if (!write_ || writing_ || !write_->queue.empty()) return;
  auto& state = *write_;
  state.writing.clear();
  state.header_arena.clear();
  state.gather.clear();
  // A pooled state keeps a usual batch's capacity, not a burst's.
  if (state.writing.capacity() > kPooledItems) std::vector<OutItem>().swap(state.writing);
  if (state.header_arena.capacity() > kPooledArenaBytes) std::string().swap(state.header_arena);
  if (state.gather.capacity() > 2 * kPooledItems) {
    std::vector<asio::const_buffer>().swap(state.gather);
  }
  auto& pool = write_state_pool();
  if (pool.size() < kPooledWriteStates) pool.push_back(std::move(write_));
  write_.reset();
}

std::vector<std::unique_ptr<Connection::WriteState>>& Connection::write_state_pool() {
  // A connection runs on one thread for its whole life, so the pool needs no lock.
  thread_local std::vector<std::unique_ptr<WriteState>> pool;
  return pool;
}

void Connection::send(const mqtt::Packet& packet) {
  OutItem item;
  mqtt::encode(packet, version_, item.bytes);
  out_queue().push_back(std::move(item));
}

// Caller holds instance_->mutex exclusively. A session that stops being persistent is
// touched too, so that its saved copy is removed.
void Connection::set_persistent_locked(bool persistent) {
  std::lock_guard lock(session_->mutex);
  if (session_->persistent || persistent) session_->instance.touch();
  session_->persistent = persistent;
}

std::uint16_t Connection::allocate_packet_id(Session& session) {
  while (true) {
    std::uint16_t id = session.next_packet_id++;
    if (session.next_packet_id == 0) session.next_packet_id = 1;
    if (id != 0 && !session.inflight.contains(id)) return id;
  }
}

// After a reconnect: the client's Receive Maximum bounds the resent PUBLISHes and PUBRELs
// too [MQTT-3.3.4-7]; the rest are resent by pump() as acknowledgements free slots.
void Connection::resend_inflight() {
  std::lock_guard lock(session_->mutex);
  session_->resend_backlog = 0;
  std::size_t resent = 0;
  const auto now = Clock::now();
  auto& all = session_->inflight;
  const std::uint16_t next_id = session_->next_packet_id;
  // In the order first sent [MQTT-4.6.0-1]: ids are allocated upwards from next_packet_id and
  // wrap, so ids at or above it were sent before those below it.
  for (int pass = 0; pass < 2; ++pass) {
    auto it = pass == 0 ? all.lower_bound(next_id) : all.begin();
    while (it != all.end() && (pass == 0 || it->first < next_id)) {
      const std::uint16_t packet_id = it->first;
      InflightMessage& inflight = it->second;
      // This connection may announce a smaller Maximum Packet Size than the one the PUBLISH
      // was first sent on: it is discarded, as if sent and acknowledged [MQTT-3.1.2-25].
      if (!inflight.released &&
          exceeds_client_maximum(*inflight.message, inflight.subscription_ids, inflight.qos, now)) {
        it = all.erase(it);
        session_->touch();
        continue;
      }
      ++it;
      inflight.awaiting_resend = resent >= inflight_limit_;
      if (inflight.awaiting_resend) {
        ++session_->resend_backlog;
      } else {
        ++resent;
        resend(packet_id, inflight);
      }
    }
  }
}

void Connection::resend(std::uint16_t packet_id, const InflightMessage& inflight) {
  if (inflight.released) {
    send(mqtt::Ack{mqtt::PacketType::pubrel, packet_id, 0, {}});
    return;
  }
  OutItem item;
  item.message = inflight.message;
  item.qos = inflight.qos;
  item.retain = inflight.retain;
  item.subscription_ids = inflight.subscription_ids;
  item.dup = true;
  item.packet_id = packet_id;
  out_queue().push_back(std::move(item));
}

bool Connection::exceeds_client_maximum(const Message& message, const SubscriptionIds& ids,
                                        std::uint8_t qos, Clock::time_point now) const {
  if (client_max_packet_size_ == 0) return false;
  thread_local std::string size_probe;
  size_probe.clear();
  // DUP, RETAIN and the packet id's value do not change the size.
  mqtt::encode_publish_header(size_probe, version_, qos, false, false, message.topic, qos ? 1 : 0,
                              is_v5() ? forwarded_properties(message, ids, now) : kNoProperties,
                              message.payload.size());
  return size_probe.size() + message.payload.size() > client_max_packet_size_;
}

// Moves deliverable messages from the session queue to the write queue, then writes.
void Connection::pump() {
  if (phase_ == Phase::connected && session_ && !revoked_.load(std::memory_order_acquire)) {
    const auto now = Clock::now();
    std::lock_guard lock(session_->mutex);
    if (session_->owner == this) {
      auto& inflight = session_->inflight;
      auto& backlog = session_->resend_backlog;
      // Resends held back by Receive Maximum go first (while they wait, inflight.size()
      // exceeds the limit, so no new QoS 1/2 message overtakes them), in the order first sent
      // (see resend_inflight(); no id is allocated while a backlog remains).
      const std::uint16_t next_id = session_->next_packet_id;
      for (int pass = 0; pass < 2; ++pass) {
        for (auto it = pass == 0 ? inflight.lower_bound(next_id) : inflight.begin();
             backlog > 0 && it != inflight.end() && (pass == 0 || it->first < next_id) &&
             inflight.size() - backlog < inflight_limit_;
             ++it) {
          if (!it->second.awaiting_resend) continue;
          it->second.awaiting_resend = false;
          --backlog;
          resend(it->first, it->second);
        }
      }
      auto& queue = session_->queue;
      while (!queue.empty() && (out_queue_empty() || write_->queue.size() < kMaxBatch)) {
        Delivery& delivery = queue.front();
        const auto& message = *delivery.message;
        if (message.expired(now)) {
          if (delivery.qos > 0) session_->touch();
          session_->pop_queue_front();  // expired while queued: not delivered [MQTT-3.3.2-5]
          continue;
        }
        if (delivery.qos > 0 && session_->inflight.size() >= inflight_limit_) break;
        if (exceeds_client_maximum(message, delivery.subscription_ids, delivery.qos, now)) {
          if (delivery.qos > 0) session_->touch();
          session_->pop_queue_front();  // larger than the client accepts: discard [MQTT-3.1.2-24]
          continue;
        }
        OutItem item;
        item.qos = delivery.qos;
        item.retain = delivery.retain;
        if (delivery.qos > 0) {
          session_->touch();
          item.packet_id = allocate_packet_id(*session_);
          session_->inflight.emplace(
              item.packet_id,
              InflightMessage{delivery.message, delivery.qos, delivery.retain, false,
                              delivery.subscription_ids, std::move(delivery.shared_group)});
        }
        session_->queued_bytes -= delivery.message->payload.size();
        item.message = std::move(delivery.message);
        item.subscription_ids = std::move(delivery.subscription_ids);
        out_queue().push_back(std::move(item));
        queue.pop_front();
      }
      // While messages remain, the next write completion or ack pumps again.
      if (queue.empty()) session_->wake_pending = false;
    }
  }
  flush();
}

void Connection::flush() {
  if (writing_ || socket_closed_ || send_shut_down_) return;
  if (out_queue_empty()) {
    release_write_state();
    return;
  }
  auto& [queue, writing_items, header_arena, gather] = *write_;
  header_arena.clear();
  gather.clear();
  writing_items.clear();
  const bool revoked = revoked_.load(std::memory_order_acquire);
  const auto now = Clock::now();
  while (!queue.empty() && writing_items.size() < kMaxBatch) {
    OutItem& item = queue.front();
    // Nothing more is delivered to a revoked session.
    if (!(item.message && revoked)) {
      if (item.message) {
        const auto& message = *item.message;
        item.header_offset = static_cast<std::uint32_t>(header_arena.size());
        const auto& properties =
            is_v5() ? forwarded_properties(message, item.subscription_ids, now) : kNoProperties;
        if (!outgoing_aliases_ || !encode_with_alias(item, properties)) {
          mqtt::encode_publish_header(header_arena, version_, item.qos, item.retain, item.dup,
                                      message.topic, item.packet_id, properties,
                                      message.payload.size());
        }
        item.header_size = static_cast<std::uint32_t>(header_arena.size() - item.header_offset);
      }
      writing_items.push_back(std::move(item));
    }
    queue.pop_front();
  }
  // Buffers are taken only now: header_arena and writing_items no longer move.
  for (const auto& item : writing_items) {
    if (item.message) {
      gather.push_back(asio::buffer(header_arena.data() + item.header_offset, item.header_size));
      if (!item.message->payload.empty()) gather.push_back(asio::buffer(item.message->payload));
    } else {
      gather.push_back(asio::buffer(item.bytes));
    }
  }
  if (gather.empty()) {
    release_write_state();
    if (phase_ == Phase::closing) begin_lingering_close();
    return;
  }
  writing_ = true;
  if (tls_) {
    static_cast<TlsConnection*>(this)->write(gather);
    return;
  }
  asio::async_write(socket_, gather,
                    [self = shared_from_this()](const error_code& ec, std::size_t bytes) {
                      self->on_written(ec, bytes);
                    });
}

std::uint16_t OutgoingTopicAliases::alias_for(const std::string& topic, bool& assigned) {
  assigned = false;
  if (auto it = aliases.find(topic); it != aliases.end()) return it->second;
  if (aliases.size() >= maximum) return 0;
  assigned = true;
  const auto alias = static_cast<std::uint16_t>(aliases.size() + 1);
  aliases.emplace(topic, alias);
  return alias;
}

bool Connection::encode_with_alias(const OutItem& item, const mqtt::Properties& properties) {
  const auto& message = *item.message;
  bool assigned = false;
  const std::uint16_t alias = outgoing_aliases_->alias_for(message.topic, assigned);
  if (alias == 0) return false;
  thread_local mqtt::Properties with_alias;
  with_alias = properties;
  with_alias.topic_alias = alias;
  // A new alias is sent with its topic, which sets it; later PUBLISHes carry only the alias.
  auto& header_arena = write_->header_arena;
  mqtt::encode_publish_header(header_arena, version_, item.qos, item.retain, item.dup,
                              assigned ? std::string_view(message.topic) : std::string_view(),
                              item.packet_id, with_alias, message.payload.size());
  const std::size_t size = header_arena.size() - item.header_offset + message.payload.size();
  if (assigned && client_max_packet_size_ != 0 && size > client_max_packet_size_) {
    // The alias made it too large (the plain form was checked before queueing): send it plain.
    header_arena.resize(item.header_offset);
    outgoing_aliases_->aliases.erase(message.topic);
    return false;
  }
  return true;
}

void Connection::on_written(const error_code& ec, std::size_t bytes) {
  writing_ = false;
  auto& writing_items = write_->writing;
  if (instance_ != nullptr) {
    std::uint64_t publishes = 0;
    for (const auto& item : writing_items) publishes += item.message ? 1 : 0;
    instance_->packets_sent.fetch_add(writing_items.size(), std::memory_order_relaxed);
    instance_->publishes_sent.fetch_add(publishes, std::memory_order_relaxed);
    instance_->bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  }
  writing_items.clear();
  if (socket_closed_) {
    release_write_state();
    return;
  }
  if (ec) {
    abort_connection();
    return;
  }
  if (phase_ == Phase::closing) {
    if (out_queue_empty()) {
      release_write_state();
      begin_lingering_close();
    } else {
      flush();
    }
    return;
  }
  pump();
}

void Connection::post_wake() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->pump(); });
}

// ---------------------------------------------------------------------------------------
// Closing

void Connection::revoke() {
  if (revoked_.exchange(true, std::memory_order_acq_rel)) return;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    log::info("client ", self->client_id(), " on ", self->instance_id(), " (credential serial ",
              self->bound_serial_, "): credential revoked, closing");
    self->close(EndReason::revoked, mqtt::ReasonCode::administrative_action);
  });
}

void Connection::post_close(mqtt::ReasonCode reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), reason] {
    self->close(reason == mqtt::ReasonCode::session_taken_over ? EndReason::taken_over
                                                               : EndReason::server_shutdown,
                reason);
  });
}

void Connection::fail(mqtt::ReasonCode reason) { close(EndReason::abnormal, reason); }

void Connection::close(EndReason why, std::optional<mqtt::ReasonCode> disconnect_reason) {
  if (phase_ == Phase::closing || socket_closed_) return;
  const auto previous = phase_;
  phase_ = Phase::closing;
  if (why == EndReason::revoked || revoked_.load(std::memory_order_acquire)) {
    why = EndReason::revoked;
    // Queued deliveries and acks are dropped; only the DISCONNECT goes. Before CONNACK the
    // queue holds just the refusal CONNACK, which must go out.
    if (previous == Phase::connected && write_) write_->queue.clear();
  }
  if (previous == Phase::connected || previous == Phase::authenticating) {
    log::debug("client ", client_id(), " on ", instance_id(), " closing (", static_cast<int>(why),
               ", was ", phase_name(static_cast<int>(previous)), ")");
  }
  end_session(why);
  // DISCONNECT is only sent on an established 5.0 connection.
  if (disconnect_reason && is_v5() && previous == Phase::connected) {
    mqtt::Disconnect disconnect{static_cast<std::uint8_t>(*disconnect_reason), {}};
    // A Reason String makes the reason readable in client logs, and clients that only parse
    // the reason code when properties follow (paho-mqtt 1.6) need it. Omitted when it would
    // exceed the client's Maximum Packet Size [MQTT-3.14.2-3].
    disconnect.properties.reason_string = mqtt::make_error_code(*disconnect_reason).message();
    if (client_max_packet_size_ != 0 &&
        mqtt::encoded_size(disconnect, mqtt::ProtocolVersion::v5) > client_max_packet_size_) {
      disconnect.properties.reason_string.reset();
    }
    send(std::move(disconnect));
  }
  // The close never waits on the peer longer than close_timeout.
  arm_timer(Clock::now() + core_.config.close_timeout);
  if (writing_) return;  // on_written continues the close
  if (out_queue_empty()) {
    release_write_state();
    begin_lingering_close();
  } else {
    flush();
  }
}

void Connection::abort_connection() {
  if (socket_closed_) return;
  if (phase_ != Phase::closing) {
    log::debug("client ", client_id(), " from ", remote_address_, ": connection lost");
    phase_ = Phase::closing;
    end_session(revoked_.load() ? EndReason::revoked : EndReason::abnormal);
  }
  hard_close(false);
}

// Sends FIN, then discards input until the peer closes or close_timeout passes: closing with
// unread input would send RST, which can destroy our DISCONNECT in the peer's buffer.
void Connection::begin_lingering_close() {
  if (send_shut_down_ || socket_closed_) return;
  send_shut_down_ = true;
  if (tls_) {
    static_cast<TlsConnection*>(this)->begin_lingering_close();
    return;
  }
  error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) {
    hard_close(false);
    return;
  }
  arm_read();
}

void Connection::hard_close(bool reset) {
  if (socket_closed_) return;
  socket_closed_ = true;
  error_code ec;
  if (reset) socket_.set_option(asio::socket_base::linger(true, 0), ec);
  socket_.close(ec);
  cancel_timer();
  if (write_) {
    write_->queue.clear();
    release_write_state();  // unless a write is still completing: on_written does it then
  }
  core_.unregister_connection(this);
}

bool Connection::bind_to_credential(const std::shared_ptr<RevocationFlag>& flag) {
  if (bound_serial_ == 0) return true;  // nothing revocable: the flag is never raised
  if (core_.hub.bind(bound_serial_, revocation_epoch_, flag) !=
      auth::RevocationHub::BindResult::bound) {
    flag->revoke();
    return false;
  }
  flag->serial = bound_serial_;
  return true;
}

void Connection::unbind_from_credential(RevocationFlag& flag) {
  if (flag.serial != 0) core_.hub.unbind(flag.serial, &flag);
}

void Connection::end_session(EndReason why) {
  if (session_ended_) return;
  session_ended_ = true;
  if (counted_connected_) instance_->client_disconnected();
  const bool revoked = why == EndReason::revoked;
  // No will on a clean DISCONNECT (will_ was reset), on shutdown, and never when revoked.
  bool publish = session_ && will_ && !revoked && why != EndReason::server_shutdown;
  // A will is a PUBLISH from this client: the topic rules apply (dropped if denied).
  if (publish && instance_->rules && !instance_->rules->may_publish(client_id(), will_->topic)) {
    log::debug("client ", client_id(), " on ", instance_id(), ": will to ", will_->topic,
               " dropped (topic rules)");
    publish = false;
  }
  const std::uint32_t will_delay =
      publish && is_v5() ? will_->properties.will_delay_interval.value_or(0) : 0;
  std::shared_ptr<DelayedWill> delayed;
  if (will_delay > 0) {
    // Bound before the connection unbinds: a revocation is either seen here or reaches the
    // delayed will while it waits.
    delayed = std::make_shared<DelayedWill>();
    if (!bind_to_credential(delayed)) {
      delayed.reset();
      publish = false;
    }
  }
  // Likewise for the session, should it stay offline: a revocation from here on reaches it.
  std::shared_ptr<RevocationFlag> offline_credential;
  if (session_ && bound_serial_ != 0 && !revoked) {
    offline_credential = std::make_shared<RevocationFlag>();
    // Revoked meanwhile: the flag is raised and the session ends with us.
    bind_to_credential(offline_credential);
  }
  if (bound_serial_ != 0) core_.hub.unbind(bound_serial_, this);
  bool will_waits = false;
  bool offline_credential_kept = false;
  if (session_) {
    std::unique_lock lock(instance_->mutex);
    bool owned;
    bool discarded;
    {
      std::lock_guard session_lock(session_->mutex);
      owned = session_->owner == this;
      discarded = session_->discarded;
      if (owned) {
        session_->owner = nullptr;
        session_->owner_ref.reset();
        session_->owner_revoked = nullptr;
        session_->wake_pending = false;
      }
    }
    if (owned && discarded) {
      // A Clean Start takeover already ended this session (discard_session_locked): nothing
      // is kept for it, and its will, delayed or not, goes now.
    } else if (owned) {
      // A revoked session's state is discarded whatever its expiry.
      if (revoked || session_->expiry_interval == 0 ||
          (offline_credential && offline_credential->raised())) {
        // The session ends now, and so does any will delay. The session has no delayed will
        // of its own: attaching to it cancelled that.
        (void)core_.discard_session_locked(*instance_, *session_);
      } else {
        const auto now = Clock::now();
        session_->offline_since = now;
        session_->touch();
        if (session_->expiry_interval != kSessionNeverExpires) {
          session_->expires_at = now + std::chrono::seconds(session_->expiry_interval);
          instance_->expiring.insert(session_.get());
        }
        if (offline_credential) {
          core_.set_offline_credential_locked(*instance_, *session_, offline_credential);
          offline_credential_kept = true;
        }
        if (delayed && publish) {
          // Published when the delay passes or the session ends, whichever comes first.
          delayed->will = std::move(*will_);
          delayed->due =
              now + std::chrono::seconds(std::min(will_delay, session_->expiry_interval));
          session_->delayed_will = delayed;
          instance_->delayed_wills.insert(session_.get());
          will_waits = true;
        }
      }
    } else if (delayed && !discarded) {
      publish = false;  // taken over by a connection that resumed the session [MQTT-3.1.3-9]
    }
  }
  // Logged once the session is kept or discarded: tests wait for this line.
  if (session_) {
    log::info("client ", client_id(), " disconnected from ", instance_id(),
              revoked ? " (revoked)" : "");
  }
  if (delayed && !will_waits) unbind_from_credential(*delayed);
  if (offline_credential && !offline_credential_kept) unbind_from_credential(*offline_credential);
  if (delayed && delayed->revoked.load(std::memory_order_acquire)) publish = false;
  if (publish && !will_waits) {
    log::debug("client ", client_id(), " on ", instance_id(), ": publishing will");
    core_.publish_will(*instance_, std::move(*will_));
  }
  will_.reset();
}

// ---------------------------------------------------------------------------------------
// Deadlines

void Connection::arm_timer(Clock::time_point deadline) {
  DeadlineQueue<Connection>::of(socket_.get_executor().context())
      .schedule(shared_from_this(), deadline);
}

void Connection::cancel_timer() {
  DeadlineQueue<Connection>::of(socket_.get_executor().context()).cancel(*this);
}

void Connection::on_deadline() {
  if (socket_closed_) return;
  const auto now = Clock::now();
  switch (phase_) {
    case Phase::awaiting_connect:
    case Phase::authenticating:
      log::debug("connection from ", remote_address_, ": no CONNECT in time");
      phase_ = Phase::closing;
      end_session(EndReason::abnormal);
      hard_close(false);
      break;
    case Phase::connected: {
      if (keep_alive_limit_ms_ == 0) break;
      const std::chrono::milliseconds keep_alive_limit(keep_alive_limit_ms_);
      if (now - last_activity_ >= keep_alive_limit) {
        log::info("client ", client_id(), " on ", instance_id(), ": keep alive timeout");
        close(EndReason::abnormal, mqtt::ReasonCode::keep_alive_timeout);
      } else {
        arm_timer(last_activity_ + keep_alive_limit);
      }
      break;
    }
    case Phase::closing:
      hard_close(true);  // the peer does not read (or does not close): reset
      break;
  }
}

// ---------------------------------------------------------------------------------------
// TLS transport

namespace {
// Plaintext bytes per TLS read: one full TLS record.
constexpr std::size_t kTlsReadBufferSize = 16 * 1024;
// A write buffer above this is not kept once the write is done.
constexpr std::size_t kMaxIdleTlsWriteCapacity = 16 * 1024;
}  // namespace

TlsConnection::TlsConnection(Core& core, Socket socket, std::string remote_address,
                             std::shared_ptr<boost::asio::ssl::context> context)
    : Connection(core, std::move(socket), std::move(remote_address), TlsTag{}),
      context_(std::move(context)),
      stream_(socket_, *context_) {}

void TlsConnection::start_handshake() {
  auto self = std::static_pointer_cast<TlsConnection>(shared_from_this());
  stream_.async_handshake(asio::ssl::stream_base::server, [self](const error_code& ec) {
    if (self->socket_closed_) return;
    if (ec) {
      // Wrong protocol version, no or a wrong client certificate, plain MQTT on the TLS port...
      log::debug("TLS handshake from ", self->remote_address_, " failed: ", ec.message());
      self->phase_ = Phase::closing;
      self->end_session(EndReason::abnormal);
      self->hard_close(false);
      return;
    }
    self->handshake_done_ = true;
    self->last_activity_ = Clock::now();
    self->read_buffer_.resize(kTlsReadBufferSize);
    self->Connection::arm_read();
  });
}

void TlsConnection::arm_read() {
  // read_armed_ is already set by Connection::arm_read.
  stream_.async_read_some(
      asio::buffer(read_buffer_),
      [self = std::static_pointer_cast<TlsConnection>(shared_from_this())](
          const error_code& ec, std::size_t bytes) { self->on_read(ec, bytes); });
}

void TlsConnection::on_read(const error_code& ec, std::size_t bytes) {
  read_armed_ = false;
  if (socket_closed_) return;
  if (ec) {
    if (phase_ == Phase::closing) {
      hard_close(false);  // the peer closed (close_notify or EOF): the close is complete
    } else {
      abort_connection();
    }
    return;
  }
  last_activity_ = Clock::now();
  if (phase_ != Phase::closing) {
    consume(std::span<const std::uint8_t>(read_buffer_.data(), bytes));
    if (socket_closed_ || read_paused_) return;
  }
  Connection::arm_read();
}

void TlsConnection::write(const std::vector<asio::const_buffer>& gather) {
  write_buffer_.clear();
  for (const auto& buffer : gather) {
    write_buffer_.append(static_cast<const char*>(buffer.data()), buffer.size());
  }
  asio::async_write(stream_, asio::buffer(write_buffer_),
                    [self = std::static_pointer_cast<TlsConnection>(shared_from_this())](
                        const error_code& ec, std::size_t bytes) {
                      if (self->write_buffer_.capacity() > kMaxIdleTlsWriteCapacity) {
                        std::string().swap(self->write_buffer_);
                      }
                      self->on_written(ec, bytes);
                    });
}

// Sends close_notify, then (like the plain path) reads and discards until the peer closes or
// close_timeout passes.
void TlsConnection::begin_lingering_close() {
  if (!handshake_done_) {
    hard_close(false);
    return;
  }
  stream_.async_shutdown([self = std::static_pointer_cast<TlsConnection>(shared_from_this())](
                             const error_code&) { self->hard_close(false); });
  Connection::arm_read();
}

}  // namespace credmq::broker::detail
