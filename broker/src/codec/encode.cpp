// Encoding of MQTT 3.1 / 3.1.1 / 5.0 control packets. Each body is written once, generic over
// a sink that either counts (encoded_size, fixed header) or appends (encode).
#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "credmq/mqtt/codec.hpp"
#include "wire.hpp"

namespace credmq::mqtt {
namespace {

using wire::SizeSink;
using wire::StringSink;

bool is_v5(ProtocolVersion version) { return version == ProtocolVersion::v5; }

template <typename Sink>
void write_property_list(Sink& sink, const Properties& p) {
  // Ascending identifier order; receivers accept any order.
  if (p.payload_format_indicator) sink.byte(0x01), sink.byte(*p.payload_format_indicator);
  if (p.message_expiry_interval) sink.byte(0x02), sink.u32(*p.message_expiry_interval);
  if (p.content_type) sink.byte(0x03), sink.length_prefixed(*p.content_type);
  if (p.response_topic) sink.byte(0x08), sink.length_prefixed(*p.response_topic);
  if (p.correlation_data) sink.byte(0x09), sink.length_prefixed(*p.correlation_data);
  for (std::uint32_t id : p.subscription_identifiers)
    sink.byte(0x0B), sink.variable_byte_integer(id);
  if (p.session_expiry_interval) sink.byte(0x11), sink.u32(*p.session_expiry_interval);
  if (p.assigned_client_identifier)
    sink.byte(0x12), sink.length_prefixed(*p.assigned_client_identifier);
  if (p.server_keep_alive) sink.byte(0x13), sink.u16(*p.server_keep_alive);
  if (p.authentication_method) sink.byte(0x15), sink.length_prefixed(*p.authentication_method);
  if (p.authentication_data) sink.byte(0x16), sink.length_prefixed(*p.authentication_data);
  if (p.request_problem_information) sink.byte(0x17), sink.byte(*p.request_problem_information);
  if (p.will_delay_interval) sink.byte(0x18), sink.u32(*p.will_delay_interval);
  if (p.request_response_information) sink.byte(0x19), sink.byte(*p.request_response_information);
  if (p.response_information) sink.byte(0x1A), sink.length_prefixed(*p.response_information);
  if (p.server_reference) sink.byte(0x1C), sink.length_prefixed(*p.server_reference);
  if (p.reason_string) sink.byte(0x1F), sink.length_prefixed(*p.reason_string);
  if (p.receive_maximum) sink.byte(0x21), sink.u16(*p.receive_maximum);
  if (p.topic_alias_maximum) sink.byte(0x22), sink.u16(*p.topic_alias_maximum);
  if (p.topic_alias) sink.byte(0x23), sink.u16(*p.topic_alias);
  if (p.maximum_qos) sink.byte(0x24), sink.byte(*p.maximum_qos);
  if (p.retain_available) sink.byte(0x25), sink.byte(*p.retain_available);
  for (const auto& [name, value] : p.user_properties) {
    sink.byte(0x26), sink.length_prefixed(name), sink.length_prefixed(value);
  }
  if (p.maximum_packet_size) sink.byte(0x27), sink.u32(*p.maximum_packet_size);
  if (p.wildcard_subscription_available) {
    sink.byte(0x28), sink.byte(*p.wildcard_subscription_available);
  }
  if (p.subscription_identifier_available) {
    sink.byte(0x29), sink.byte(*p.subscription_identifier_available);
  }
  if (p.shared_subscription_available) sink.byte(0x2A), sink.byte(*p.shared_subscription_available);
}

std::uint32_t property_list_size(const Properties& properties) {
  SizeSink sizer;
  write_property_list(sizer, properties);
  if (sizer.size > wire::max_variable_byte_integer) {
    throw std::length_error("MQTT properties too large");
  }
  return static_cast<std::uint32_t>(sizer.size);
}

// Property Length followed by the properties.
template <typename Sink>
void write_properties(Sink& sink, const Properties& properties) {
  if (properties.empty()) {
    sink.byte(0);
    return;
  }
  const std::uint32_t size = property_list_size(properties);
  if constexpr (std::is_same_v<Sink, SizeSink>) {
    sink.size += wire::variable_byte_integer_size(size) + size;  // already walked once
  } else {
    sink.variable_byte_integer(size);
    write_property_list(sink, properties);
  }
}

// CONNACK codes differ between versions; accept either form and write the one the version uses.
std::uint8_t connack_code_for(ProtocolVersion version, std::uint8_t code) {
  if (is_v5(version)) {
    switch (code) {
      case 1:
        return 0x84;  // unacceptable protocol version
      case 2:
        return 0x85;  // identifier rejected
      case 3:
        return 0x88;  // server unavailable
      case 4:
        return 0x86;  // bad user name or password
      case 5:
        return 0x87;  // not authorized
      default:
        return code;
    }
  }
  if (code <= 5) return code;
  switch (static_cast<ReasonCode>(code)) {
    case ReasonCode::unsupported_protocol_version:
      return 1;
    case ReasonCode::client_identifier_not_valid:
      return 2;
    case ReasonCode::bad_user_name_or_password:
    case ReasonCode::bad_authentication_method:
      return 4;
    case ReasonCode::not_authorized:
    case ReasonCode::banned:
      return 5;
    default:
      return 3;  // server unavailable: the only general refusal 3.1.1 has
  }
}

std::uint8_t suback_code_for(ProtocolVersion version, std::uint8_t code) {
  if (is_v5(version) || code <= 2) return code;
  return 0x80;  // 3.1.1 knows only granted QoS 0..2 and Failure [MQTT-3.9.3-2]
}

std::uint8_t connect_flags(const Connect& connect) {
  std::uint8_t flags = 0;
  if (connect.username) flags |= 0x80;
  if (connect.password) flags |= 0x40;
  if (connect.will) {
    flags |= 0x04;
    flags |= static_cast<std::uint8_t>((connect.will->qos & 0x03) << 3);
    if (connect.will->retain) flags |= 0x20;
  }
  if (connect.clean_start) flags |= 0x02;
  return flags;
}

// ---------------------------------------------------------------------------------------------
// First byte and body per packet type.

std::uint8_t first_byte_of(const Connect&) { return 0x10; }
std::uint8_t first_byte_of(const Connack&) { return 0x20; }
std::uint8_t publish_first_byte(std::uint8_t qos, bool retain, bool dup) {
  return static_cast<std::uint8_t>(0x30 | (dup ? 0x08 : 0) | ((qos & 0x03) << 1) |
                                   (retain ? 1 : 0));
}
std::uint8_t first_byte_of(const Publish& publish) {
  return publish_first_byte(publish.qos, publish.retain, publish.dup);
}
std::uint8_t first_byte_of(const Ack& ack) {
  const auto type = static_cast<std::uint8_t>(ack.type);
  return static_cast<std::uint8_t>((type << 4) | (ack.type == PacketType::pubrel ? 0x02 : 0));
}
std::uint8_t first_byte_of(const Subscribe&) { return 0x82; }
std::uint8_t first_byte_of(const Suback&) { return 0x90; }
std::uint8_t first_byte_of(const Unsubscribe&) { return 0xA2; }
std::uint8_t first_byte_of(const Unsuback&) { return 0xB0; }
std::uint8_t first_byte_of(const Pingreq&) { return 0xC0; }
std::uint8_t first_byte_of(const Pingresp&) { return 0xD0; }
std::uint8_t first_byte_of(const Disconnect&) { return 0xE0; }
std::uint8_t first_byte_of(const Auth&) { return 0xF0; }

template <typename Sink>
void write_body(Sink& sink, const Connect& connect, ProtocolVersion version) {
  if (version == ProtocolVersion::v3_1) {
    sink.length_prefixed("MQIsdp");
  } else {
    sink.length_prefixed("MQTT");
  }
  sink.byte(static_cast<std::uint8_t>(version));
  sink.byte(connect_flags(connect));
  sink.u16(connect.keep_alive);
  if (is_v5(version)) write_properties(sink, connect.properties);
  sink.length_prefixed(connect.client_id);
  if (connect.will) {
    if (is_v5(version)) write_properties(sink, connect.will->properties);
    sink.length_prefixed(connect.will->topic);
    sink.length_prefixed(connect.will->payload);
  }
  if (connect.username) sink.length_prefixed(*connect.username);
  if (connect.password) sink.length_prefixed(*connect.password);
}

template <typename Sink>
void write_body(Sink& sink, const Connack& connack, ProtocolVersion version) {
  // 3.1 has no Session Present flag: the byte is reserved.
  const bool session_present = connack.session_present && version != ProtocolVersion::v3_1;
  sink.byte(session_present ? 1 : 0);
  sink.byte(connack_code_for(version, connack.reason_code));
  if (is_v5(version)) write_properties(sink, connack.properties);
}

// Everything of a PUBLISH before the payload, after the fixed header.
template <typename Sink>
void write_publish_variable_header(Sink& sink, ProtocolVersion version, std::uint8_t qos,
                                   std::string_view topic, std::uint16_t packet_id,
                                   const Properties& properties) {
  sink.length_prefixed(topic);
  if (qos > 0) sink.u16(packet_id);
  if (is_v5(version)) write_properties(sink, properties);
}

template <typename Sink>
void write_body(Sink& sink, const Publish& publish, ProtocolVersion version) {
  write_publish_variable_header(sink, version, publish.qos, publish.topic, publish.packet_id,
                                publish.properties);
  sink.raw(publish.payload);
}

// Shared by acks, DISCONNECT and AUTH: the reason code and properties may be omitted when the
// reason is 0 and there are no properties; properties may be omitted when there are none.
template <typename Sink>
void write_optional_reason(Sink& sink, std::uint8_t reason_code, const Properties& properties) {
  const bool has_properties = !properties.empty();
  if (reason_code == 0 && !has_properties) return;
  sink.byte(reason_code);
  if (has_properties) write_properties(sink, properties);
}

template <typename Sink>
void write_body(Sink& sink, const Ack& ack, ProtocolVersion version) {
  sink.u16(ack.packet_id);
  if (is_v5(version)) write_optional_reason(sink, ack.reason_code, ack.properties);
}

template <typename Sink>
void write_body(Sink& sink, const Subscribe& subscribe, ProtocolVersion version) {
  sink.u16(subscribe.packet_id);
  if (is_v5(version)) write_properties(sink, subscribe.properties);
  for (const auto& [filter, options] : subscribe.subscriptions) {
    sink.length_prefixed(filter);
    std::uint8_t options_byte = options.qos & 0x03;
    if (is_v5(version)) {
      if (options.no_local) options_byte |= 0x04;
      if (options.retain_as_published) options_byte |= 0x08;
      options_byte |= static_cast<std::uint8_t>((options.retain_handling & 0x03) << 4);
    }
    sink.byte(options_byte);
  }
}

template <typename Sink>
void write_body(Sink& sink, const Suback& suback, ProtocolVersion version) {
  sink.u16(suback.packet_id);
  if (is_v5(version)) write_properties(sink, suback.properties);
  for (std::uint8_t code : suback.reason_codes) sink.byte(suback_code_for(version, code));
}

template <typename Sink>
void write_body(Sink& sink, const Unsubscribe& unsubscribe, ProtocolVersion version) {
  sink.u16(unsubscribe.packet_id);
  if (is_v5(version)) write_properties(sink, unsubscribe.properties);
  for (const std::string& filter : unsubscribe.topic_filters) sink.length_prefixed(filter);
}

template <typename Sink>
void write_body(Sink& sink, const Unsuback& unsuback, ProtocolVersion version) {
  sink.u16(unsuback.packet_id);
  if (!is_v5(version)) return;  // 3.x UNSUBACK has no payload
  write_properties(sink, unsuback.properties);
  for (std::uint8_t code : unsuback.reason_codes) sink.byte(code);
}

template <typename Sink>
void write_body(Sink&, const Pingreq&, ProtocolVersion) {}
template <typename Sink>
void write_body(Sink&, const Pingresp&, ProtocolVersion) {}

template <typename Sink>
void write_body(Sink& sink, const Disconnect& disconnect, ProtocolVersion version) {
  if (is_v5(version)) write_optional_reason(sink, disconnect.reason_code, disconnect.properties);
}

template <typename Sink>
void write_body(Sink& sink, const Auth& auth, ProtocolVersion version) {
  if (!is_v5(version)) throw std::invalid_argument("AUTH exists only in MQTT 5");
  write_optional_reason(sink, auth.reason_code, auth.properties);
}

std::size_t checked_remaining_length(std::size_t body_size) {
  if (body_size > wire::max_variable_byte_integer) {
    throw std::length_error("MQTT packet exceeds the maximum remaining length");
  }
  return body_size;
}

template <typename PacketValue>
std::size_t body_size_of(const PacketValue& value, ProtocolVersion version) {
  SizeSink sizer;
  write_body(sizer, value, version);
  return sizer.size;
}

}  // namespace

void encode(const Packet& packet, ProtocolVersion version, std::string& out) {
  std::visit(
      [&](const auto& value) {
        const std::size_t remaining_length = checked_remaining_length(body_size_of(value, version));
        const auto length_field = static_cast<std::uint32_t>(remaining_length);
        out.reserve(out.size() + 1 + wire::variable_byte_integer_size(length_field) +
                    remaining_length);
        StringSink sink{out};
        sink.byte(first_byte_of(value));
        sink.variable_byte_integer(length_field);
        write_body(sink, value, version);
      },
      packet);
}

std::size_t encoded_size(const Packet& packet, ProtocolVersion version) {
  return std::visit(
      [&](const auto& value) {
        const std::size_t remaining_length = body_size_of(value, version);
        return 1 +
               wire::variable_byte_integer_size(static_cast<std::uint32_t>(
                   std::min<std::size_t>(remaining_length, wire::max_variable_byte_integer))) +
               remaining_length;
      },
      packet);
}

void encode_properties(const Properties& properties, std::string& out) {
  StringSink sink{out};
  write_properties(sink, properties);
}

void encode_publish_header(std::string& out, ProtocolVersion version, std::uint8_t qos, bool retain,
                           bool dup, std::string_view topic, std::uint16_t packet_id,
                           const Properties& properties, std::size_t payload_size) {
  SizeSink sizer;
  write_publish_variable_header(sizer, version, qos, topic, packet_id, properties);
  const std::size_t remaining_length = checked_remaining_length(sizer.size + payload_size);
  const auto length_field = static_cast<std::uint32_t>(remaining_length);
  out.reserve(out.size() + 1 + wire::variable_byte_integer_size(length_field) + sizer.size);
  StringSink sink{out};
  sink.byte(publish_first_byte(qos, retain, dup));
  sink.variable_byte_integer(length_field);
  write_publish_variable_header(sink, version, qos, topic, packet_id, properties);
}

}  // namespace credmq::mqtt
