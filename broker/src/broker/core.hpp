// State shared by every connection of one Broker: instances (session tables, subscription
// trees, retained messages), routing, and the connection registry. No Asio here, so this
// compiles fast; connections are reached through the functions declared at the bottom.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "credmq/auth/authenticator.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/broker/broker.hpp"
#include "credmq/mqtt/packets.hpp"
#include "fifo.hpp"
#include "packet_id_set.hpp"
#include "topic_tree.hpp"

namespace credmq::broker::detail {

class Connection;

struct Instance;

// One application message; shared (never copied) by every subscriber it is delivered to.
struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  mqtt::Properties properties;  // only the ones forwarded to subscribers (MQTT 5)
  // From the Message Expiry Interval; max() when the message does not expire.
  std::chrono::steady_clock::time_point expires_at = std::chrono::steady_clock::time_point::max();

  bool expired(std::chrono::steady_clock::time_point now) const { return expires_at <= now; }
  // Whole seconds left, at least 1 (for the forwarded Message Expiry Interval [MQTT-3.3.2-6]).
  std::uint32_t seconds_left(std::chrono::steady_clock::time_point now) const;
};
using MessagePtr = std::shared_ptr<const Message>;

// "$SYS" and "$SYS/...": the broker's own topics, which clients may not publish to.
inline bool is_sys_topic(std::string_view topic) {
  return topic.starts_with("$SYS") && (topic.size() == 4 || topic[4] == '/');
}

// Builds a Message, keeping only the properties a server forwards.
MessagePtr make_message(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                        const mqtt::Properties& from);

// The Subscription Identifiers a delivery carries [MQTT-3.3.4-3]: usually none or one, so
// the first is inline and only overlapping identified subscriptions allocate.
struct SubscriptionIds {
  std::uint32_t first = 0;  // 0 = none
  std::vector<std::uint32_t> more;

  void add(std::uint32_t id) {
    if (id == 0) return;
    if (first == 0) {
      first = id;
    } else {
      more.push_back(id);
    }
  }
  bool empty() const { return first == 0; }
};

struct Delivery {
  MessagePtr message;
  std::uint8_t qos = 0;
  bool retain = false;
  SubscriptionIds subscription_ids;
  // Set when delivered through a shared subscription: if this session ends before the
  // message is received, another member of the group gets it.
  std::shared_ptr<SharedGroup> shared_group;
};

struct InflightMessage {
  MessagePtr message;
  std::uint8_t qos = 1;
  bool retain = false;
  bool released = false;             // QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP
  SubscriptionIds subscription_ids;  // resent as first sent
  std::shared_ptr<SharedGroup> shared_group;
  bool awaiting_resend = false;  // after a reconnect, beyond the client's Receive Maximum
};

constexpr std::uint32_t kSessionNeverExpires = 0xFFFFFFFF;

// Stands in the revocation hub, under a connection's credential serial, for what outlives
// that connection: a will waiting for its delay, an offline persistent session. revoke()
// (admin thread) only raises the flag; the broker checks it before using what it guards.
struct RevocationFlag : auth::RevocableSession {
  std::int64_t serial = 0;  // 0: not bound
  std::atomic<bool> revoked{false};
  void revoke() override { revoked.store(true, std::memory_order_release); }
  bool raised() const { return revoked.load(std::memory_order_acquire); }
};

// A will waiting for its Will Delay Interval (MQTT 5) after its connection ended; a
// revocation while it waits drops it.
struct DelayedWill final : RevocationFlag {
  mqtt::Will will;
  std::chrono::steady_clock::time_point due{};
};

// The server side of an MQTT session; outlives its connections when persistent.
struct Session {
  Session(std::string id, Instance& in) : client_id(std::move(id)), instance(in) {}

  const std::string client_id;
  Instance& instance;

  std::mutex mutex;
  // Its expiry interval is not 0, so it is saved by persistence. Written under both mutex
  // and instance.mutex (exclusive), so either lock is enough to read it.
  bool persistent = false;
  // --- guarded by mutex ---
  Connection* owner = nullptr;  // the live connection, if any
  std::weak_ptr<Connection> owner_ref;
  const std::atomic<bool>* owner_revoked = nullptr;  // the owner's revoked flag
  bool wake_pending = false;     // a drain of `queue` is posted to the owner or will run anyway
  bool discarded = false;        // removed from its instance; deliveries are dropped
  Fifo<Delivery> queue;          // not yet sent (waiting for the owner or for in-flight quota)
  std::size_t queued_bytes = 0;  // payload bytes in `queue`
  std::map<std::uint16_t, InflightMessage> inflight;  // outgoing QoS 1/2, by packet id
  std::uint16_t resend_backlog = 0;                   // inflight entries awaiting_resend
  std::uint16_t next_packet_id = 1;
  PacketIdSet incoming_qos2;  // PUBLISH QoS 2 ids awaiting PUBREL
  // While offline: the credential it logged in with. Once revoked, the session is state of a
  // credential that no longer works: nothing is queued for it and it is never resumed.
  std::shared_ptr<RevocationFlag> offline_credential;

  // --- guarded by instance.mutex ---
  std::map<std::string, Subscription, std::less<>> subscriptions;
  std::uint32_t expiry_interval = 0;                      // seconds after the connection ends
  std::chrono::steady_clock::time_point offline_since{};  // when its last connection ended
  std::chrono::steady_clock::time_point expires_at{};
  std::shared_ptr<DelayedWill> delayed_will;  // offline only; cancelled by a resuming CONNECT
  // The device-credential serial of its last connection (0: none), saved with the session.
  std::int64_t credential_serial = 0;

  // Caller holds mutex.
  void pop_queue_front() {
    queued_bytes -= queue.front().message->payload.size();
    queue.pop_front();
  }
  // Caller holds mutex or instance.mutex: something persistence saves has changed.
  inline void touch() const;
};

// One InstanceId: an isolated namespace of client ids, subscriptions and retained messages.
struct Instance {
  explicit Instance(std::string instance_id, const TopicRules* topic_rules = nullptr)
      : id(std::move(instance_id)), rules(topic_rules) {}
  const std::string id;
  // Null when the instance has no topic rules (everything allowed).
  const TopicRules* const rules;
  bool may_receive(const Session& session, std::string_view topic) const;

  // Routing takes it shared; session table and subscription changes take it exclusive.
  // Lock order: Instance::mutex, then Session::mutex; retained_mutex is never nested.
  std::shared_mutex mutex;
  // Keyed by a view of the session's own client_id (one copy of the id per session).
  std::unordered_map<std::string_view, std::shared_ptr<Session>> sessions;
  TopicTree subscriptions;
  std::unordered_set<Session*> expiring;       // offline sessions with a finite expiry
  std::unordered_set<Session*> delayed_wills;  // offline sessions with a delayed will
  std::unordered_set<Session*> offline_bound;  // offline sessions with an offline_credential

  std::mutex retained_mutex;
  std::map<std::string, MessagePtr, std::less<>> retained;

  // Traffic of this instance's connections after CONNECT, for stats and $SYS. Connections add
  // once per read or write, not per packet, to keep shared cache lines out of the hot path.
  std::atomic<std::uint64_t> packets_received{0};
  std::atomic<std::uint64_t> packets_sent{0};
  std::atomic<std::uint64_t> publishes_received{0};
  std::atomic<std::uint64_t> publishes_sent{0};
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::size_t> clients_connected{0};
  std::atomic<std::size_t> clients_maximum{0};
  void client_connected();
  void client_disconnected() { clients_connected.fetch_sub(1, std::memory_order_relaxed); }

  // $SYS values last published, by topic (used by the $SYS timer only).
  std::map<std::string, std::string, std::less<>> sys_published;

  // Set when something persistence saves changed; cleared by the persistence thread when it
  // takes a snapshot. Callers set it while holding the lock that guards what they changed,
  // and the snapshot reads under the same locks after clearing it, so no change is missed.
  // Load-then-store keeps the cache line shared while it stays set (hot paths touch it).
  alignas(64) std::atomic<bool> dirty{false};
  void touch() {
    if (!dirty.load(std::memory_order_relaxed)) dirty.store(true, std::memory_order_relaxed);
  }
};

void Session::touch() const {
  if (persistent) instance.touch();
}

inline bool Instance::may_receive(const Session& session, std::string_view topic) const {
  return rules == nullptr || rules->may_receive(session.client_id, topic);
}

class Core {
 public:
  Core(BrokerConfig config, auth::Authenticator& authenticator, auth::RevocationHub& hub);
  ~Core();

  const BrokerConfig config;
  auth::Authenticator& authenticator;
  auth::RevocationHub& hub;

  std::atomic<std::uint64_t> messages_dropped{0};
  std::atomic<std::size_t> session_count{0};

  // Creates the instance on first use; the reference stays valid for the Core's lifetime.
  Instance& instance(const std::string& id);
  // Every instance created so far.
  std::vector<Instance*> instances();

  // Publishes this broker's $SYS/broker/... topics (retained, QoS 0) in every instance: those
  // whose value changed, and all of them in an instance that has none yet. `uptime` since start.
  void publish_sys_topics(std::chrono::seconds uptime);

  // Delivers `message` to every matching session of `instance` (one copy per session, at the
  // highest granted QoS). `publisher` is for No Local; may be null. Returns false if no
  // subscription matched (PUBACK/PUBREC 0x10).
  bool route(Instance& instance, const MessagePtr& message, const Session* publisher);
  // Delivers `message` to one member of a shared subscription (round-robin, preferring
  // members that are online), other than `exclude`. False if there is none.
  bool deliver_shared(const std::shared_ptr<SharedGroup>& group, const MessagePtr& message,
                      const Session* exclude);
  // Stores (or, for an empty payload, deletes) the retained message for its topic.
  void retain(Instance& instance, const MessagePtr& message);
  // Queues the retained messages matching `filter` to `session` (retain flag set).
  void deliver_retained(Session& session, std::string_view filter,
                        const Subscription& subscription);
  // Queues one delivery; drops it if the session is discarded, revoked, offline with QoS 0,
  // or its queue is full. Wakes the owner connection.
  void enqueue(Session& session, Delivery delivery);

  // Publishes a will (retained if flagged) as a message from nobody.
  void publish_will(Instance& instance, mqtt::Will will);
  // Publishes a delayed will unless its credential was revoked meanwhile. Caller holds no
  // instance lock.
  void publish_delayed_will(Instance& instance, const std::shared_ptr<DelayedWill>& will);
  // Detaches the session's delayed will, if any (unbinding it from the hub). Caller holds
  // instance.mutex exclusively. Dropping the result cancels the will.
  std::shared_ptr<DelayedWill> take_delayed_will_locked(Instance& instance, Session& session);
  // An offline session's credential binding: set when its connection ends (bound to the hub
  // by the caller), released (unbound) when a connection resumes it or it is discarded.
  // Caller holds instance.mutex exclusively and not session.mutex.
  void set_offline_credential_locked(Instance& instance, Session& session,
                                     std::shared_ptr<RevocationFlag> credential);
  void release_offline_credential_locked(Instance& instance, Session& session);

  // Removes the session from its instance: subscriptions, table entry, queued state.
  // Caller holds instance.mutex exclusively and not session.mutex. Returns the session's
  // delayed will: the session has ended, so the caller publishes it once unlocked.
  [[nodiscard]] std::shared_ptr<DelayedWill> discard_session_locked(Instance& instance,
                                                                    Session& session);
  // Publishes delayed wills that are due and discards offline sessions whose expiry has passed
  // or whose credential was revoked.
  void expire_sessions();

  std::string assign_client_id();

  // Removes the session's subscriptions its instance's topic rules no longer allow (rules
  // changed since they were made: a resumed or restored session). Caller holds
  // instance.mutex exclusively.
  void drop_forbidden_subscriptions_locked(Instance& instance, Session& session);

  // Persistence. snapshot() copies the state of every instance marked dirty and clears the
  // marks: shared pointers under the locks, one session at a time; the plain copy after.
  std::vector<PersistedInstance> snapshot();
  // Marks instances dirty again (their save failed).
  void mark_dirty(const std::vector<PersistedInstance>& instances);
  // Rebuilds saved sessions as offline sessions, and retained messages. Call before any
  // connection exists. Sessions bound to a credential serial that is no longer current are
  // dropped with everything they hold. Blocking (asks the authenticator).
  void restore(std::vector<PersistedInstance> saved);

  // Connection registry (for stop(), stats and the connection limits). `address` is the
  // peer's address text (empty if unknown).
  enum class Admission { admitted, stopping, over_total, over_address };
  // `ip` is the peer's address as accepted, `address` its text (the per-address key).
  Admission register_connection(const std::shared_ptr<Connection>& connection,
                                const boost::asio::ip::address& ip, const std::string& address);
  void unregister_connection(const Connection* connection);
  std::atomic<std::uint64_t> connections_refused{0};
  std::vector<std::shared_ptr<Connection>> begin_stopping();
  std::size_t connection_count() const;

 private:
  std::mutex instances_mutex_;
  std::unordered_map<std::string, std::unique_ptr<Instance>> instances_;

  std::string client_id_prefix_;
  std::atomic<std::uint64_t> next_client_id_{0};

  mutable std::mutex connections_mutex_;
  // One per live connection: 24 bytes, a 48-byte map node (a std::string address here made
  // it 80: issue 4, memory per idle connection).
  struct Registered {
    std::weak_ptr<Connection> connection;
    // Its node in per_address_ (nodes are stable) when counted there; null otherwise.
    std::pair<const std::string, std::size_t>* address = nullptr;
  };
  std::unordered_map<const Connection*, Registered> connections_;
  std::unordered_map<std::string, std::size_t> per_address_;
  bool stopping_ = false;
};

// Implemented in connection.cpp: posts a drain of the session queue to the connection.
void wake_connection(const std::shared_ptr<Connection>& connection);

}  // namespace credmq::broker::detail
