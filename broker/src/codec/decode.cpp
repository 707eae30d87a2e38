// Strict decoding of MQTT 3.1 / 3.1.1 / 5.0 control packets, server side.
#include <array>
#include <initializer_list>

#include "credmq/mqtt/codec.hpp"
#include "wire.hpp"

namespace credmq::mqtt {
namespace {

using wire::Reader;

constexpr ReasonCode ok = ReasonCode::success;
constexpr ReasonCode malformed = ReasonCode::malformed_packet;
constexpr ReasonCode protocol = ReasonCode::protocol_error;

// ---------------------------------------------------------------------------------------------
// Reason code sets: which codes each packet type may carry (MQTT 5.0 sections 3.x.2.1).

class ReasonSet {
 public:
  constexpr ReasonSet(std::initializer_list<std::uint8_t> codes) {
    for (std::uint8_t code : codes) bits_[code >> 6] |= std::uint64_t{1} << (code & 63);
  }
  constexpr bool contains(std::uint8_t code) const {
    return (bits_[code >> 6] >> (code & 63)) & 1u;
  }

 private:
  std::array<std::uint64_t, 4> bits_{};
};

constexpr ReasonSet connack_reasons{0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                    0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr ReasonSet puback_pubrec_reasons{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
constexpr ReasonSet pubrel_pubcomp_reasons{0x00, 0x92};
constexpr ReasonSet suback_reasons{0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                   0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr ReasonSet unsuback_reasons{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
// DISCONNECT codes marked "C" or "C/S" in the 5.0 table 3.14.2.1.
constexpr ReasonSet client_disconnect_reasons{0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90,
                                              0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99};
constexpr ReasonSet server_disconnect_reasons{
    0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr ReasonSet auth_reasons{0x00, 0x18, 0x19};

// ---------------------------------------------------------------------------------------------
// MQTT 5.0 property table (section 2.2.2.2).

enum class Context : std::uint8_t {
  connect,
  connack,
  publish,
  will,
  puback,
  pubrec,
  pubrel,
  pubcomp,
  subscribe,
  suback,
  unsubscribe,
  unsuback,
  disconnect,
  auth,
  message,  // a stored application message or will: the properties valid in either
};
constexpr std::uint16_t in(Context context) {
  return static_cast<std::uint16_t>(1u << static_cast<unsigned>(context));
}
template <typename... Contexts>
constexpr std::uint16_t in(Context first, Contexts... rest) {
  return static_cast<std::uint16_t>(in(first) | in(rest...));
}

enum class ValueType : std::uint8_t {
  none,
  byte,
  two_byte,
  four_byte,
  variable,
  utf8,
  binary,
  pair
};

struct PropertyRule {
  ValueType type = ValueType::none;
  std::uint16_t allowed_in = 0;
};

constexpr std::size_t property_id_limit = 0x2B;

constexpr std::array<PropertyRule, property_id_limit> make_property_rules() {
  using enum Context;
  std::array<PropertyRule, property_id_limit> rules{};
  const std::uint16_t acks = in(puback, pubrec, pubrel, pubcomp);
  rules[0x01] = {ValueType::byte, in(publish, will)};           // Payload Format Indicator
  rules[0x02] = {ValueType::four_byte, in(publish, will)};      // Message Expiry Interval
  rules[0x03] = {ValueType::utf8, in(publish, will)};           // Content Type
  rules[0x08] = {ValueType::utf8, in(publish, will)};           // Response Topic
  rules[0x09] = {ValueType::binary, in(publish, will)};         // Correlation Data
  rules[0x0B] = {ValueType::variable, in(publish, subscribe)};  // Subscription Identifier
  rules[0x11] = {ValueType::four_byte, in(connect, connack, disconnect)};  // Session Expiry
  rules[0x12] = {ValueType::utf8, in(connack)};                   // Assigned Client Identifier
  rules[0x13] = {ValueType::two_byte, in(connack)};               // Server Keep Alive
  rules[0x15] = {ValueType::utf8, in(connect, connack, auth)};    // Authentication Method
  rules[0x16] = {ValueType::binary, in(connect, connack, auth)};  // Authentication Data
  rules[0x17] = {ValueType::byte, in(connect)};                   // Request Problem Information
  rules[0x18] = {ValueType::four_byte, in(will)};                 // Will Delay Interval
  rules[0x19] = {ValueType::byte, in(connect)};                   // Request Response Information
  rules[0x1A] = {ValueType::utf8, in(connack)};                   // Response Information
  rules[0x1C] = {ValueType::utf8, in(connack, disconnect)};       // Server Reference
  rules[0x1F] = {
      ValueType::utf8,  // Reason String
      static_cast<std::uint16_t>(acks | in(connack, suback, unsuback, disconnect, auth))};
  rules[0x21] = {ValueType::two_byte, in(connect, connack)};  // Receive Maximum
  rules[0x22] = {ValueType::two_byte, in(connect, connack)};  // Topic Alias Maximum
  rules[0x23] = {ValueType::two_byte, in(publish)};           // Topic Alias
  rules[0x24] = {ValueType::byte, in(connack)};               // Maximum QoS
  rules[0x25] = {ValueType::byte, in(connack)};               // Retain Available
  rules[0x26] = {
      ValueType::pair,  // User Property
      static_cast<std::uint16_t>(acks | in(connect, connack, publish, will, subscribe, suback,
                                           unsubscribe, unsuback, disconnect, auth))};
  rules[0x27] = {ValueType::four_byte, in(connect, connack)};  // Maximum Packet Size
  rules[0x28] = {ValueType::byte, in(connack)};                // Wildcard Subscription Available
  rules[0x29] = {ValueType::byte, in(connack)};                // Subscription Identifier Available
  rules[0x2A] = {ValueType::byte, in(connack)};                // Shared Subscription Available
  return rules;
}

constexpr std::array<PropertyRule, property_id_limit> property_rules = make_property_rules();

bool has_wildcard(std::string_view topic) {
  // A plain loop: find_first_of("+#") does a memchr per character.
  bool found = false;
  for (char c : topic) found |= (c == '+') | (c == '#');
  return found;
}

// Reads a UTF-8 string field: invalid UTF-8 or U+0000 is a Malformed Packet [MQTT-1.5.4-1]
// [MQTT-1.5.4-2].
ReasonCode read_utf8(Reader& reader, std::string_view& value) {
  if (!reader.read_length_prefixed(value) || !valid_utf8(value)) return malformed;
  return ok;
}

ReasonCode read_utf8(Reader& reader, std::string& value) {
  std::string_view view;
  if (ReasonCode rc = read_utf8(reader, view); rc != ok) return rc;
  value.assign(view);
  return ok;
}

ReasonCode read_binary(Reader& reader, std::string& value) {
  std::string_view view;
  if (!reader.read_length_prefixed(view)) return malformed;
  value.assign(view);
  return ok;
}

// A Byte property restricted to 0..max_value; anything else is a Protocol Error.
ReasonCode read_small(Reader& reader, std::optional<std::uint8_t>& field, std::uint8_t max_value) {
  std::uint8_t value = 0;
  if (!reader.read_byte(value)) return malformed;
  if (value > max_value) return protocol;
  field = value;
  return ok;
}

ReasonCode read_u16(Reader& reader, std::optional<std::uint16_t>& field, bool zero_allowed) {
  std::uint16_t value = 0;
  if (!reader.read_u16(value)) return malformed;
  if (value == 0 && !zero_allowed) return protocol;
  field = value;
  return ok;
}

ReasonCode read_u32(Reader& reader, std::optional<std::uint32_t>& field, bool zero_allowed) {
  std::uint32_t value = 0;
  if (!reader.read_u32(value)) return malformed;
  if (value == 0 && !zero_allowed) return protocol;
  field = value;
  return ok;
}

ReasonCode read_optional_utf8(Reader& reader, std::optional<std::string>& field) {
  std::string_view view;
  if (ReasonCode rc = read_utf8(reader, view); rc != ok) return rc;
  field.emplace(view);
  return ok;
}

ReasonCode read_optional_binary(Reader& reader, std::optional<std::string>& field) {
  std::string_view view;
  if (!reader.read_length_prefixed(view)) return malformed;
  field.emplace(view);
  return ok;
}

// Reads Property Length and the properties after it. An identifier that is unknown or not
// allowed on this packet type is a Malformed Packet (2.2.2.2); a second copy of a
// single-valued property is a Protocol Error.
ReasonCode read_properties(Reader& reader, Context context, Sender sender, Properties& out) {
  std::uint32_t length = 0;
  Reader block(std::span<const std::uint8_t>{});
  if (!reader.read_variable_byte_integer(length) || !reader.split(length, block)) {
    return malformed;
  }
  std::uint64_t seen = 0;
  while (!block.at_end()) {
    std::uint32_t id = 0;
    if (!block.read_variable_byte_integer(id)) return malformed;
    if (id >= property_id_limit) return malformed;
    const PropertyRule& rule = property_rules[id];
    const std::uint16_t wanted =
        context == Context::message ? in(Context::publish, Context::will) : in(context);
    if (rule.type == ValueType::none || (rule.allowed_in & wanted) == 0) return malformed;
    const bool repeatable = id == 0x26 || (id == 0x0B && context == Context::publish);
    if (!repeatable) {
      const std::uint64_t bit = std::uint64_t{1} << id;
      if (seen & bit) return protocol;
      seen |= bit;
    }
    ReasonCode rc = ok;
    switch (id) {
      case 0x01:  // 0 (unspecified bytes) or 1 (UTF-8)
        rc = read_small(block, out.payload_format_indicator, 1);
        break;
      case 0x02:
        rc = read_u32(block, out.message_expiry_interval, true);
        break;
      case 0x03:
        rc = read_optional_utf8(block, out.content_type);
        break;
      case 0x08:  // a Topic Name: no wildcards [MQTT-3.3.2-14]
        rc = read_optional_utf8(block, out.response_topic);
        if (rc == ok && (out.response_topic->empty() || has_wildcard(*out.response_topic))) {
          rc = protocol;
        }
        break;
      case 0x09:
        rc = read_optional_binary(block, out.correlation_data);
        break;
      case 0x0B: {
        std::uint32_t value = 0;
        if (!block.read_variable_byte_integer(value)) return malformed;
        if (value == 0) return protocol;  // 1..268435455 [3.3.2.3.8], [3.8.2.1.2]
        // Only the Server sends it on PUBLISH [MQTT-3.3.4-6].
        if (context == Context::publish && sender == Sender::client) return protocol;
        out.subscription_identifiers.push_back(value);
        break;
      }
      case 0x11:
        rc = read_u32(block, out.session_expiry_interval, true);
        break;
      case 0x12:
        rc = read_optional_utf8(block, out.assigned_client_identifier);
        break;
      case 0x13:
        rc = read_u16(block, out.server_keep_alive, true);
        break;
      case 0x15:
        rc = read_optional_utf8(block, out.authentication_method);
        break;
      case 0x16:
        rc = read_optional_binary(block, out.authentication_data);
        break;
      case 0x17:
        rc = read_small(block, out.request_problem_information, 1);
        break;
      case 0x18:
        rc = read_u32(block, out.will_delay_interval, true);
        break;
      case 0x19:
        rc = read_small(block, out.request_response_information, 1);
        break;
      case 0x1A:
        rc = read_optional_utf8(block, out.response_information);
        break;
      case 0x1C:
        rc = read_optional_utf8(block, out.server_reference);
        break;
      case 0x1F:
        rc = read_optional_utf8(block, out.reason_string);
        break;
      case 0x21:  // Receive Maximum 0 is a Protocol Error (3.1.2.11.3)
        rc = read_u16(block, out.receive_maximum, false);
        break;
      case 0x22:
        rc = read_u16(block, out.topic_alias_maximum, true);
        break;
      case 0x23: {
        std::uint16_t alias = 0;
        if (!block.read_u16(alias)) return malformed;
        if (alias == 0) return ReasonCode::topic_alias_invalid;  // [MQTT-3.3.2-8]
        out.topic_alias = alias;
        break;
      }
      case 0x24:
        rc = read_small(block, out.maximum_qos, 1);
        break;
      case 0x25:
        rc = read_small(block, out.retain_available, 1);
        break;
      case 0x26: {
        std::string_view name, value;
        if ((rc = read_utf8(block, name)) != ok || (rc = read_utf8(block, value)) != ok) break;
        out.user_properties.emplace_back(name, value);
        break;
      }
      case 0x27:  // Maximum Packet Size 0 is a Protocol Error (3.1.2.11.4)
        rc = read_u32(block, out.maximum_packet_size, false);
        break;
      case 0x28:
        rc = read_small(block, out.wildcard_subscription_available, 1);
        break;
      case 0x29:
        rc = read_small(block, out.subscription_identifier_available, 1);
        break;
      case 0x2A:
        rc = read_small(block, out.shared_subscription_available, 1);
        break;
      default:
        return malformed;
    }
    if (rc != ok) return rc;
  }
  // Authentication Data without Authentication Method is a Protocol Error (3.1.2.11.10).
  if (out.authentication_data && !out.authentication_method) return protocol;
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Fixed header flags.

bool flags_valid(PacketType type, std::uint8_t flags, ProtocolVersion version) {
  switch (type) {
    case PacketType::publish:
      return true;  // checked by decode_publish
    case PacketType::pubrel:
    case PacketType::subscribe:
    case PacketType::unsubscribe:
      // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]; 3.1 allowed DUP on retransmission.
      return flags == 0x02 || (version == ProtocolVersion::v3_1 && flags == 0x0A);
    default:
      return flags == 0;  // reserved [MQTT-2.2.2-1] [MQTT-2.1.3-1]
  }
}

bool is_v5(ProtocolVersion version) { return version == ProtocolVersion::v5; }

ReasonCode read_packet_id(Reader& reader, std::uint16_t& packet_id) {
  if (!reader.read_u16(packet_id)) return malformed;
  // Packet identifiers are non-zero [MQTT-2.3.1-1] (5.0: [MQTT-2.2.1-3]).
  return packet_id == 0 ? protocol : ok;
}

// ---------------------------------------------------------------------------------------------
// Packet bodies. Each reads exactly the remaining length or fails.

ReasonCode decode_connect(Reader& reader, Packet& out) {
  std::string_view protocol_name;
  std::uint8_t level = 0;
  if (!reader.read_length_prefixed(protocol_name) || !reader.read_byte(level)) return malformed;
  ProtocolVersion version;
  if (protocol_name == "MQTT" && (level == 4 || level == 5)) {
    version = static_cast<ProtocolVersion>(level);
  } else if (protocol_name == "MQIsdp" && level == 3) {
    version = ProtocolVersion::v3_1;
  } else {
    // [MQTT-3.1.2-1] [MQTT-3.1.2-2]: the caller answers CONNACK 0x01 (3.x) / 0x84 (5.0).
    return ReasonCode::unsupported_protocol_version;
  }
  Connect& connect = out.emplace<Connect>();
  connect.version = version;

  std::uint8_t flags = 0;
  if (!reader.read_byte(flags) || !reader.read_u16(connect.keep_alive)) return malformed;
  if (flags & 0x01) return malformed;  // reserved flag [MQTT-3.1.2-3]
  connect.clean_start = flags & 0x02;
  const bool will_flag = flags & 0x04;
  const std::uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool password_flag = flags & 0x40;
  const bool username_flag = flags & 0x80;
  if (will_qos == 3) return malformed;  // [MQTT-3.1.2-14] (5.0: [MQTT-3.1.2-12])
  // Without a will, will QoS and will retain are 0 [MQTT-3.1.2-13] [MQTT-3.1.2-15]
  // (5.0: [MQTT-3.1.2-11] [MQTT-3.1.2-13]).
  if (!will_flag && (will_qos != 0 || will_retain)) return malformed;
  // 3.x: no password without a user name [MQTT-3.1.2-22]; 5.0 allows it.
  if (!is_v5(version) && password_flag && !username_flag) return protocol;

  if (is_v5(version)) {
    if (ReasonCode rc =
            read_properties(reader, Context::connect, Sender::client, connect.properties);
        rc != ok) {
      return rc;
    }
  }
  // Client identifier is a UTF-8 string [MQTT-3.1.3-4]; its acceptability is the caller's.
  if (ReasonCode rc = read_utf8(reader, connect.client_id); rc != ok) return rc;
  if (will_flag) {
    Will& will = connect.will.emplace();
    will.qos = will_qos;
    will.retain = will_retain;
    if (is_v5(version)) {
      if (ReasonCode rc = read_properties(reader, Context::will, Sender::client, will.properties);
          rc != ok) {
        return rc;
      }
    }
    if (ReasonCode rc = read_utf8(reader, will.topic); rc != ok) return rc;
    if (ReasonCode rc = read_binary(reader, will.payload); rc != ok) return rc;
    if (will.topic.empty() || has_wildcard(will.topic)) return ReasonCode::topic_name_invalid;
  }
  if (username_flag) {
    if (ReasonCode rc = read_utf8(reader, connect.username.emplace()); rc != ok) return rc;
  }
  if (password_flag) {
    if (ReasonCode rc = read_binary(reader, connect.password.emplace()); rc != ok) return rc;
  }
  return reader.at_end() ? ok : malformed;
}

ReasonCode decode_connack(Reader& reader, ProtocolVersion version, Packet& out) {
  Connack& connack = out.emplace<Connack>();
  std::uint8_t acknowledge_flags = 0;
  if (!reader.read_byte(acknowledge_flags) || !reader.read_byte(connack.reason_code)) {
    return malformed;
  }
  if (acknowledge_flags & 0xFE) return malformed;  // [MQTT-3.2.2-1]
  connack.session_present = acknowledge_flags & 0x01;
  if (is_v5(version)) {
    if (!connack_reasons.contains(connack.reason_code)) return protocol;
    if (ReasonCode rc =
            read_properties(reader, Context::connack, Sender::server, connack.properties);
        rc != ok) {
      return rc;
    }
  } else if (connack.reason_code > 5) {
    return protocol;  // 6..255 are reserved return codes
  }
  // A refused connection has no session [MQTT-3.2.2-4] (5.0: [MQTT-3.2.2-6]).
  if (connack.reason_code != 0 && connack.session_present) return protocol;
  return reader.at_end() ? ok : malformed;
}

// Resets every property but keeps the vectors' storage for the next PUBLISH.
void clear_keeping_capacity(Properties& properties) {
  auto subscription_identifiers = std::move(properties.subscription_identifiers);
  auto user_properties = std::move(properties.user_properties);
  properties = Properties{};
  subscription_identifiers.clear();
  user_properties.clear();
  properties.subscription_identifiers = std::move(subscription_identifiers);
  properties.user_properties = std::move(user_properties);
}

ReasonCode decode_publish(Reader& reader, std::uint8_t flags, ProtocolVersion version,
                          Sender sender, Packet& out) {
  const std::uint8_t qos = (flags >> 1) & 0x03;
  const bool dup = flags & 0x08;
  if (qos == 3) return malformed;         // [MQTT-3.3.1-4]
  if (dup && qos == 0) return malformed;  // [MQTT-3.3.1-2]

  // Reuse the previous Publish's buffers: this is the hot path.
  Publish* publish = std::get_if<Publish>(&out);
  if (publish == nullptr) {
    publish = &out.emplace<Publish>();
  } else {
    publish->packet_id = 0;
    if (!publish->properties.empty()) clear_keeping_capacity(publish->properties);
  }
  publish->qos = qos;
  publish->dup = dup;
  publish->retain = flags & 0x01;

  if (ReasonCode rc = read_utf8(reader, publish->topic); rc != ok) return rc;
  if (qos > 0) {
    if (ReasonCode rc = read_packet_id(reader, publish->packet_id); rc != ok) return rc;
  }
  if (is_v5(version)) {
    if (ReasonCode rc = read_properties(reader, Context::publish, sender, publish->properties);
        rc != ok) {
      return rc;
    }
  }
  if (publish->topic.empty()) {
    // 5.0: an empty topic needs a Topic Alias (3.3.2.1); 3.x: at least one character
    // [MQTT-4.7.3-1].
    if (!is_v5(version)) return ReasonCode::topic_name_invalid;
    if (!publish->properties.topic_alias) return protocol;
  } else if (has_wildcard(publish->topic)) {
    return ReasonCode::topic_name_invalid;  // [MQTT-3.3.2-2]
  }
  std::string_view payload;
  reader.read_bytes(reader.remaining(), payload);
  publish->payload.assign(payload);
  return ok;
}

ReasonCode decode_ack(Reader& reader, PacketType type, ProtocolVersion version, Packet& out) {
  Ack& ack = out.emplace<Ack>();
  ack.type = type;
  if (ReasonCode rc = read_packet_id(reader, ack.packet_id); rc != ok) return rc;
  if (is_v5(version) && !reader.at_end()) {
    // Remaining length 2: Success, no properties; 3: reason code only (3.4.2.1, 3.4.2.2.1).
    if (!reader.read_byte(ack.reason_code)) return malformed;
    const bool publish_level = type == PacketType::puback || type == PacketType::pubrec;
    const ReasonSet& allowed = publish_level ? puback_pubrec_reasons : pubrel_pubcomp_reasons;
    if (!allowed.contains(ack.reason_code)) return protocol;
    if (!reader.at_end()) {
      const Context context = type == PacketType::puback   ? Context::puback
                              : type == PacketType::pubrec ? Context::pubrec
                              : type == PacketType::pubrel ? Context::pubrel
                                                           : Context::pubcomp;
      if (ReasonCode rc = read_properties(reader, context, Sender::client, ack.properties);
          rc != ok) {
        return rc;
      }
    }
  }
  return reader.at_end() ? ok : malformed;
}

bool is_shared_subscription(std::string_view filter) { return filter.starts_with("$share/"); }

ReasonCode decode_subscribe(Reader& reader, ProtocolVersion version, Packet& out) {
  Subscribe& subscribe = out.emplace<Subscribe>();
  if (ReasonCode rc = read_packet_id(reader, subscribe.packet_id); rc != ok) return rc;
  if (is_v5(version)) {
    if (ReasonCode rc =
            read_properties(reader, Context::subscribe, Sender::client, subscribe.properties);
        rc != ok) {
      return rc;
    }
  }
  if (reader.at_end()) return protocol;  // at least one filter [MQTT-3.8.3-3] (5.0: [MQTT-3.8.3-2])
  while (!reader.at_end()) {
    std::string_view filter;
    std::uint8_t options_byte = 0;
    if (ReasonCode rc = read_utf8(reader, filter); rc != ok) return rc;
    if (!reader.read_byte(options_byte)) return malformed;
    SubscribeOptions options;
    options.qos = options_byte & 0x03;
    if (is_v5(version)) {
      if (options_byte & 0xC0) return malformed;  // reserved bits [MQTT-3.8.3-5]
      if (options.qos == 3) return protocol;      // 3.8.3.1: Maximum QoS 3 is a Protocol Error
      options.no_local = options_byte & 0x04;
      options.retain_as_published = options_byte & 0x08;
      options.retain_handling = (options_byte >> 4) & 0x03;
      if (options.retain_handling == 3) return protocol;  // 3.8.3.1
      // No Local on a Shared Subscription is a Protocol Error [MQTT-3.8.3-4].
      if (options.no_local && is_shared_subscription(filter)) return protocol;
    } else if ((options_byte & 0xFC) != 0 || options.qos == 3) {
      return malformed;  // reserved bits or QoS 3 [MQTT-3-8.3-4]
    }
    subscribe.subscriptions.emplace_back(filter, options);
  }
  return ok;
}

ReasonCode decode_suback(Reader& reader, ProtocolVersion version, Packet& out) {
  Suback& suback = out.emplace<Suback>();
  if (ReasonCode rc = read_packet_id(reader, suback.packet_id); rc != ok) return rc;
  if (is_v5(version)) {
    if (ReasonCode rc = read_properties(reader, Context::suback, Sender::server, suback.properties);
        rc != ok) {
      return rc;
    }
  }
  suback.reason_codes.reserve(reader.remaining());
  std::uint8_t code = 0;
  while (reader.read_byte(code)) {
    const bool allowed =
        is_v5(version) ? suback_reasons.contains(code) : (code <= 2 || code == 0x80);
    if (!allowed) return protocol;  // [MQTT-3.9.3-2]
    suback.reason_codes.push_back(code);
  }
  return ok;
}

ReasonCode decode_unsubscribe(Reader& reader, ProtocolVersion version, Packet& out) {
  Unsubscribe& unsubscribe = out.emplace<Unsubscribe>();
  if (ReasonCode rc = read_packet_id(reader, unsubscribe.packet_id); rc != ok) return rc;
  if (is_v5(version)) {
    if (ReasonCode rc =
            read_properties(reader, Context::unsubscribe, Sender::client, unsubscribe.properties);
        rc != ok) {
      return rc;
    }
  }
  if (reader.at_end()) return protocol;  // at least one filter [MQTT-3.10.3-2]
  while (!reader.at_end()) {
    if (ReasonCode rc = read_utf8(reader, unsubscribe.topic_filters.emplace_back()); rc != ok) {
      return rc;
    }
  }
  return ok;
}

ReasonCode decode_unsuback(Reader& reader, ProtocolVersion version, Packet& out) {
  Unsuback& unsuback = out.emplace<Unsuback>();
  if (ReasonCode rc = read_packet_id(reader, unsuback.packet_id); rc != ok) return rc;
  if (!is_v5(version)) return reader.at_end() ? ok : malformed;
  if (ReasonCode rc =
          read_properties(reader, Context::unsuback, Sender::server, unsuback.properties);
      rc != ok) {
    return rc;
  }
  unsuback.reason_codes.reserve(reader.remaining());
  std::uint8_t code = 0;
  while (reader.read_byte(code)) {
    if (!unsuback_reasons.contains(code)) return protocol;
    unsuback.reason_codes.push_back(code);
  }
  return ok;
}

ReasonCode decode_disconnect(Reader& reader, ProtocolVersion version, Sender sender, Packet& out) {
  Disconnect& disconnect = out.emplace<Disconnect>();
  if (!is_v5(version)) return reader.at_end() ? ok : malformed;
  // Remaining length 0: Normal disconnection; 1: no properties (3.14.2.1, 3.14.2.2.1).
  if (reader.at_end()) return ok;
  reader.read_byte(disconnect.reason_code);
  const ReasonSet& allowed =
      sender == Sender::client ? client_disconnect_reasons : server_disconnect_reasons;
  if (!allowed.contains(disconnect.reason_code)) return protocol;
  if (reader.at_end()) return ok;
  if (ReasonCode rc = read_properties(reader, Context::disconnect, sender, disconnect.properties);
      rc != ok) {
    return rc;
  }
  return reader.at_end() ? ok : malformed;
}

ReasonCode decode_auth(Reader& reader, ProtocolVersion version, Sender sender, Packet& out) {
  if (!is_v5(version)) return malformed;  // packet type 15 is reserved before 5.0
  Auth& auth = out.emplace<Auth>();
  if (reader.at_end()) return ok;  // Remaining Length 0: Success, no properties (3.15.2.1)
  reader.read_byte(auth.reason_code);
  if (!auth_reasons.contains(auth.reason_code)) return protocol;
  if (reader.at_end()) return ok;
  if (ReasonCode rc = read_properties(reader, Context::auth, sender, auth.properties); rc != ok) {
    return rc;
  }
  // The Authentication Method is required in an AUTH with properties (3.15.2.2.2).
  if (!auth.properties.authentication_method) return protocol;
  return reader.at_end() ? ok : malformed;
}

ReasonCode decode_packet(std::span<const std::uint8_t> packet, ProtocolVersion version, Packet& out,
                         Sender sender) {
  Reader reader(packet);
  std::uint8_t first_byte = 0;
  std::uint32_t remaining_length = 0;
  if (!reader.read_byte(first_byte) || !reader.read_variable_byte_integer(remaining_length)) {
    return malformed;
  }
  if (reader.remaining() != remaining_length) return malformed;
  const std::uint8_t type_value = first_byte >> 4;
  const std::uint8_t flags = first_byte & 0x0F;
  if (type_value == 0) return malformed;  // reserved packet type
  const auto type = static_cast<PacketType>(type_value);
  if (!flags_valid(type, flags, version)) return malformed;

  switch (type) {
    case PacketType::connect:
      return decode_connect(reader, out);
    case PacketType::connack:
      return decode_connack(reader, version, out);
    case PacketType::publish:
      return decode_publish(reader, flags, version, sender, out);
    case PacketType::puback:
    case PacketType::pubrec:
    case PacketType::pubrel:
    case PacketType::pubcomp:
      return decode_ack(reader, type, version, out);
    case PacketType::subscribe:
      return decode_subscribe(reader, version, out);
    case PacketType::suback:
      return decode_suback(reader, version, out);
    case PacketType::unsubscribe:
      return decode_unsubscribe(reader, version, out);
    case PacketType::unsuback:
      return decode_unsuback(reader, version, out);
    case PacketType::pingreq:
      if (!reader.at_end()) return malformed;
      out.emplace<Pingreq>();
      return ok;
    case PacketType::pingresp:
      if (!reader.at_end()) return malformed;
      out.emplace<Pingresp>();
      return ok;
    case PacketType::disconnect:
      return decode_disconnect(reader, version, sender, out);
    case PacketType::auth:
      return decode_auth(reader, version, sender, out);
  }
  return malformed;
}

}  // namespace

boost::system::error_code decode(std::span<const std::uint8_t> packet, ProtocolVersion version,
                                 Packet& out, Sender sender) {
  const ReasonCode rc = decode_packet(packet, version, out, sender);
  if (rc == ok) return {};
  return make_error_code(rc);
}

boost::system::error_code decode_properties(std::span<const std::uint8_t> block, Properties& out) {
  out = Properties{};
  Reader reader(block);
  ReasonCode rc = read_properties(reader, Context::message, Sender::server, out);
  if (rc == ok && !reader.at_end()) rc = malformed;
  // Only what a stored message or will carries: the rest belongs to one packet exchange.
  if (rc == ok && (!out.subscription_identifiers.empty() || out.topic_alias)) rc = malformed;
  if (rc == ok) return {};
  return make_error_code(rc);
}

boost::system::error_code decode(std::span<const std::uint8_t> packet, ProtocolVersion version,
                                 Packet& out) {
  return decode(packet, version, out, Sender::client);
}

}  // namespace credmq::mqtt
