// Sans-I/O MQTT codec: bytes in, packets or errors out; packets in, bytes out.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "credmq/mqtt/packets.hpp"
#include "credmq/mqtt/reason_code.hpp"

namespace credmq::mqtt {

// Result of looking at the start of a byte stream for one packet's fixed header.
struct Frame {
  enum class Status { need_more, complete, error } status = Status::need_more;
  std::uint8_t first_byte = 0;             // packet type (high nibble) and flags (low nibble)
  std::size_t header_size = 0;             // fixed header bytes (1 + 1..4)
  std::size_t remaining_length = 0;        // bytes after the fixed header
  ReasonCode error = ReasonCode::success;  // malformed_packet or packet_too_large
  std::size_t total_size() const { return header_size + remaining_length; }
};

// Inspects `bytes` (the start of the unread stream). `max_packet_size` bounds the whole
// packet (fixed header included): larger is an error (packet_too_large) as soon as the
// remaining length is known, before any of the body arrives. A 5th remaining-length byte is
// malformed_packet; non-minimal length encodings (up to 4 bytes) are accepted.
Frame frame(std::span<const std::uint8_t> bytes, std::size_t max_packet_size);

// Which side sent the packet being decoded: a few rules depend on it (a client must not send
// a Subscription Identifier on PUBLISH [MQTT-3.3.4-6]; the DISCONNECT reason codes a client
// may send are a subset of the server's).
enum class Sender : std::uint8_t { client, server };

// Decodes one complete packet (as delimited by frame(): `packet` is exactly the fixed header
// plus remaining length bytes, anything shorter or longer is malformed_packet). `version` is the
// connection's negotiated version; for CONNECT it is ignored (CONNECT carries its own). On error
// returns a code from ReasonCode and leaves `out` unspecified:
//   malformed_packet        structure, lengths, reserved bits, UTF-8, unknown/misplaced property
//   protocol_error          well-formed but forbidden: packet id 0, no topic filters, duplicate
//                           property, property value out of range (Receive Maximum 0, Maximum
//                           Packet Size 0, a 0/1 byte above 1, Subscription Identifier 0),
//                           reason code not defined for the packet type, 3.x password without
//                           user name, 5.0 SUBSCRIBE QoS 3 / Retain Handling 3 / No Local on
//                           $share (3.1.1 SUBSCRIBE QoS 3 is malformed, as each spec says),
//                           Authentication Data without Method, 5.0 empty topic without alias
//   unsupported_protocol_version  CONNECT with a protocol name/level other than
//                           "MQIsdp"/3, "MQTT"/4, "MQTT"/5 (answer CONNACK 0x01 or 0x84)
//   topic_name_invalid      PUBLISH topic or will topic that is empty (3.x) or has wildcards
//   topic_alias_invalid     PUBLISH with Topic Alias 0 [MQTT-3.3.2-8]
// The 3-argument form decodes as a server does (sender = client). A client must only send
// client-to-server packets; decoding of server-to-client packet types is supported too (for
// tests and bench), the caller rejects packet types the sender may not send.
// Left to the caller on purpose:
//   * SUBSCRIBE/UNSUBSCRIBE filters are returned as long as they are valid UTF-8; the broker
//     checks valid_topic_filter() per filter (SUBACK 0x80/0x8F per filter, not a disconnect).
//   * PUBLISH with an empty topic and a Topic Alias (5.0): alias resolution is the broker's.
//   * Payload Format Indicator 1 with a non-UTF-8 payload (answer PUBACK 0x99, not disconnect).
//   * Client identifier length/characters, keep alive and session semantics.
// If `out` already holds a Publish, its topic/payload capacity is reused (hot path).
// MQTT 3.1 clients may retransmit PUBREL/SUBSCRIBE/UNSUBSCRIBE with DUP set (3.1 allowed it),
// so for v3_1 those fixed-header flags may be 0b1010 as well as 0b0010.
boost::system::error_code decode(std::span<const std::uint8_t> packet, ProtocolVersion version,
                                 Packet& out);
boost::system::error_code decode(std::span<const std::uint8_t> packet, ProtocolVersion version,
                                 Packet& out, Sender sender);

// Appends the encoding of `packet` to `out`. For 3.1/3.1.1, reason codes and properties are
// omitted; CONNACK accepts either a 3.1.1 return code (0..5) or a 5.0 reason code and maps it to
// the version being written (e.g. 0x86 -> 4 for 3.1.1, 4 -> 0x86 for 5.0); SUBACK codes other
// than 0, 1, 2 become 0x80 in 3.1.1. MQTT 5 acks, DISCONNECT and AUTH use their short forms when
// the reason code is 0 and there are no properties. Throws std::length_error for a string
// longer than 65535 bytes or a packet beyond the 268435455-byte remaining length limit, and
// std::invalid_argument for AUTH in 3.x.
void encode(const Packet& packet, ProtocolVersion version, std::string& out);

// Size the encoding would have, without encoding (for Maximum Packet Size checks).
std::size_t encoded_size(const Packet& packet, ProtocolVersion version);

// Appends fixed header + variable header of a PUBLISH whose payload (payload_size bytes) is
// sent separately, so one payload buffer can be shared by every subscriber.
void encode_publish_header(std::string& out, ProtocolVersion version, std::uint8_t qos, bool retain,
                           bool dup, std::string_view topic, std::uint16_t packet_id,
                           const Properties& properties, std::size_t payload_size);

// An MQTT 5 property block on its own (Property Length, then the properties), as it appears
// inside a PUBLISH: for storing a message's properties outside a packet. encode_properties
// appends; decode_properties accepts exactly one block (nothing after it) holding only the
// properties of an application message or will (Payload Format Indicator, Message Expiry
// Interval, Content Type, Response Topic, Correlation Data, Will Delay Interval, User
// Properties), with the same rules and error codes as decode().
void encode_properties(const Properties& properties, std::string& out);
boost::system::error_code decode_properties(std::span<const std::uint8_t> block, Properties& out);

// Topic rules (MQTT 3.1.1 4.7, 5.0 4.7). UTF-8 validity (no U+0000, no surrogates, no
// overlong forms) is checked by the decoder for every UTF-8 string.
bool valid_utf8(std::string_view text);
bool valid_topic_name(std::string_view topic);     // non-empty, no wildcards
bool valid_topic_filter(std::string_view filter);  // non-empty, '+'/'#' placement rules
// Does `topic` match `filter`? Topics beginning with '$' do not match filters beginning with
// a wildcard.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace credmq::mqtt
