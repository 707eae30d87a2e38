// The broker's saved state (persistent sessions, their queues, retained messages) as the
// store keeps it: rows of plain values. MQTT 5 properties are opaque blobs here (the codec's
// property block encoding); the store never interprets them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace credmq::storage {

struct StoredMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  std::string properties;                     // property block; empty when none
  std::optional<std::int64_t> expires_at_ms;  // Unix ms; none: never expires
  bool operator==(const StoredMessage&) const = default;
};

struct StoredSubscription {
  std::string filter;
  int qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  int retain_handling = 0;
  std::int64_t identifier = 0;
  bool operator==(const StoredSubscription&) const = default;
};

// `message` fields are indexes into StoredInstanceState::messages.
struct StoredDelivery {
  std::size_t message = 0;
  int qos = 0;
  bool retain = false;
  std::vector<std::uint32_t> subscription_ids;
  std::string shared_filter;
  bool operator==(const StoredDelivery&) const = default;
};

struct StoredInflight {
  int packet_id = 0;
  std::optional<std::size_t> message;  // none once released (QoS 2 after PUBREC)
  int qos = 1;
  bool retain = false;
  bool released = false;
  std::vector<std::uint32_t> subscription_ids;
  std::string shared_filter;
  bool operator==(const StoredInflight&) const = default;
};

struct StoredWill {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  std::string properties;
  std::int64_t due_ms = 0;  // Unix ms
  bool operator==(const StoredWill&) const = default;
};

struct StoredSession {
  std::string client_id;
  std::int64_t expiry_interval = 0;
  std::int64_t offline_since_ms = 0;   // Unix ms
  std::int64_t credential_serial = 0;  // 0: not bound to a device credential
  std::vector<StoredSubscription> subscriptions;
  std::vector<StoredDelivery> queue;  // in order
  std::vector<StoredInflight> inflight;
  std::vector<int> incoming_qos2;
  int next_packet_id = 1;
  std::optional<StoredWill> will;
  bool operator==(const StoredSession&) const = default;
};

struct StoredInstanceState {
  std::string instance_id;
  std::vector<StoredMessage> messages;
  std::vector<std::size_t> retained;  // indexes into messages
  std::vector<StoredSession> sessions;
  bool operator==(const StoredInstanceState&) const = default;
};

}  // namespace credmq::storage
