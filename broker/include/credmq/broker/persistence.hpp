// What the broker saves so that persistent sessions and retained messages survive a restart,
// as plain values, and the interface of whoever stores them. The broker never touches the
// disk itself: it hands snapshots to a StatePersistence from its own persistence thread and
// asks it for the last snapshot once, at start.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "credmq/mqtt/packets.hpp"

namespace credmq::broker {

using WallClock = std::chrono::system_clock;

// One application message. Deduplicated per instance: a message queued to many sessions and
// retained is stored once, and referenced by its index in PersistedInstance::messages.
struct PersistedMessage {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  mqtt::Properties properties;                      // the forwarded ones (MQTT 5)
  std::optional<WallClock::time_point> expires_at;  // none: never expires
  bool operator==(const PersistedMessage&) const = default;
};

struct PersistedSubscription {
  std::string filter;  // "$share/<group>/<filter>" for a shared subscription
  mqtt::SubscribeOptions options;
  std::uint32_t identifier = 0;  // MQTT 5 Subscription Identifier; 0 = none
  bool operator==(const PersistedSubscription&) const = default;
};

// A message waiting in a session's queue.
struct PersistedDelivery {
  std::size_t message = 0;  // index into PersistedInstance::messages
  std::uint8_t qos = 0;
  bool retain = false;
  std::vector<std::uint32_t> subscription_ids;
  std::string shared_filter;  // set when delivered through that shared subscription
  bool operator==(const PersistedDelivery&) const = default;
};

// An outgoing QoS 1/2 PUBLISH sent and not yet acknowledged (resent with DUP on resume), or
// a QoS 2 one whose PUBREC came (released: PUBREL resent; the message is no longer kept).
struct PersistedInflight {
  std::uint16_t packet_id = 0;
  std::optional<std::size_t> message;  // index into PersistedInstance::messages; none if released
  std::uint8_t qos = 1;
  bool retain = false;
  bool released = false;
  std::vector<std::uint32_t> subscription_ids;
  std::string shared_filter;
  bool operator==(const PersistedInflight&) const = default;
};

struct PersistedWill {
  mqtt::Will will;
  WallClock::time_point due;
  bool operator==(const PersistedWill&) const = default;
};

struct PersistedSession {
  std::string client_id;
  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF never expires
  // When its connection ended; for a session online at the snapshot, the snapshot's time.
  WallClock::time_point offline_since;
  // The device-credential issuance it logged in with; 0 when it was not a device credential
  // (anonymous, Signature): such a session cannot be revoked through the credential API.
  std::int64_t credential_serial = 0;
  std::vector<PersistedSubscription> subscriptions;
  std::vector<PersistedDelivery> queue;  // in delivery order
  std::vector<PersistedInflight> inflight;
  std::vector<std::uint16_t> incoming_qos2;  // PUBLISH QoS 2 ids received, awaiting PUBREL
  std::uint16_t next_packet_id = 1;
  std::optional<PersistedWill> will;  // a will waiting for its delay
  bool operator==(const PersistedSession&) const = default;
};

struct PersistedInstance {
  std::string id;
  std::vector<PersistedMessage> messages;
  std::vector<std::size_t> retained;  // indexes into messages, one per retained topic
  std::vector<PersistedSession> sessions;
  bool operator==(const PersistedInstance&) const = default;
};

// Blocking (disk): called from the broker's persistence thread and from Broker::start/stop,
// never from an I/O thread.
class StatePersistence {
 public:
  virtual ~StatePersistence() = default;
  // Every instance saved so far.
  virtual std::vector<PersistedInstance> load() = 0;
  // One transaction: replaces everything saved for each instance in `instances`; instances
  // not listed keep what they had. Throws on failure (nothing is changed then).
  virtual void save(const std::vector<PersistedInstance>& instances) = 0;
};

}  // namespace credmq::broker
