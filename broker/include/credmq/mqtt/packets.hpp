// MQTT 3.1, 3.1.1 and 5.0 control packets as plain values. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace credmq::mqtt {

enum class ProtocolVersion : std::uint8_t { v3_1 = 3, v3_1_1 = 4, v5 = 5 };

enum class PacketType : std::uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
  auth = 15,
};

// MQTT 5.0 properties. Only the ones valid for a packet type may be set on it; the decoder
// rejects others (Protocol Error / Malformed Packet) and duplicates of single-valued ones.
struct Properties {
  std::optional<std::uint8_t> payload_format_indicator;              // 0x01
  std::optional<std::uint32_t> message_expiry_interval;              // 0x02
  std::optional<std::string> content_type;                           // 0x03
  std::optional<std::string> response_topic;                         // 0x08
  std::optional<std::string> correlation_data;                       // 0x09 (binary)
  std::vector<std::uint32_t> subscription_identifiers;               // 0x0B (varint, repeatable)
  std::optional<std::uint32_t> session_expiry_interval;              // 0x11
  std::optional<std::string> assigned_client_identifier;             // 0x12
  std::optional<std::uint16_t> server_keep_alive;                    // 0x13
  std::optional<std::string> authentication_method;                  // 0x15
  std::optional<std::string> authentication_data;                    // 0x16 (binary)
  std::optional<std::uint8_t> request_problem_information;           // 0x17
  std::optional<std::uint32_t> will_delay_interval;                  // 0x18
  std::optional<std::uint8_t> request_response_information;          // 0x19
  std::optional<std::string> response_information;                   // 0x1A
  std::optional<std::string> server_reference;                       // 0x1C
  std::optional<std::string> reason_string;                          // 0x1F
  std::optional<std::uint16_t> receive_maximum;                      // 0x21
  std::optional<std::uint16_t> topic_alias_maximum;                  // 0x22
  std::optional<std::uint16_t> topic_alias;                          // 0x23
  std::optional<std::uint8_t> maximum_qos;                           // 0x24
  std::optional<std::uint8_t> retain_available;                      // 0x25
  std::vector<std::pair<std::string, std::string>> user_properties;  // 0x26 (repeatable)
  std::optional<std::uint32_t> maximum_packet_size;                  // 0x27
  std::optional<std::uint8_t> wildcard_subscription_available;       // 0x28
  std::optional<std::uint8_t> subscription_identifier_available;     // 0x29
  std::optional<std::uint8_t> shared_subscription_available;         // 0x2A

  bool empty() const;
  bool operator==(const Properties&) const = default;
};

struct Will {
  std::string topic;
  std::string payload;  // binary
  std::uint8_t qos = 0;
  bool retain = false;
  Properties properties;  // MQTT 5 will properties
  bool operator==(const Will&) const = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::v3_1_1;
  bool clean_start = true;  // Clean Session in 3.1.1
  std::uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary
  Properties properties;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  std::uint8_t reason_code = 0;  // 3.1.1 return code or MQTT 5 reason code
  Properties properties;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::string topic;
  std::uint16_t packet_id = 0;  // QoS > 0 only
  Properties properties;
  std::string payload;  // binary
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP share one shape.
struct Ack {
  PacketType type = PacketType::puback;
  std::uint16_t packet_id = 0;
  std::uint8_t reason_code = 0;  // MQTT 5 only; omitted on the wire when 0 and no properties
  Properties properties;
  bool operator==(const Ack&) const = default;
};

struct SubscribeOptions {
  std::uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;
  bool operator==(const SubscribeOptions&) const = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::pair<std::string, SubscribeOptions>> subscriptions;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::uint8_t> reason_codes;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> topic_filters;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::uint8_t> reason_codes;  // MQTT 5 only
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  std::uint8_t reason_code = 0;  // MQTT 5 only
  Properties properties;
  bool operator==(const Disconnect&) const = default;
};

struct Auth {
  std::uint8_t reason_code = 0;
  Properties properties;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, Ack, Subscribe, Suback, Unsubscribe,
                            Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

}  // namespace credmq::mqtt
