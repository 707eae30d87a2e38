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
  std::uint8_t first_byte = 0;      // packet type (high nibble) and flags (low nibble)
  std::size_t header_size = 0;      // fixed header bytes (1 + 1..4)
  std::size_t remaining_length = 0; // bytes after the fixed header
  ReasonCode error = ReasonCode::success;  // malformed_packet or packet_too_large
  std::size_t total_size() const { return header_size + remaining_length; }
};

// Inspects `bytes` (the start of the unread stream). `max_packet_size` bounds the whole
// packet (fixed header included): larger is an error (packet_too_large) as soon as the
// remaining length is known, before any of the body arrives.
Frame frame(std::span<const std::uint8_t> bytes, std::size_t max_packet_size);

// Decodes one complete packet (as delimited by frame()). `version` is the connection's
// negotiated version; for CONNECT it is ignored (CONNECT carries its own). On error returns
// a code from ReasonCode: malformed_packet, protocol_error, unsupported_protocol_version,
// topic_name_invalid, ... and leaves `out` unspecified. A client must only send client-to-server
// packets; decoding of server-to-client packet types is supported too (for tests and bench).
boost::system::error_code decode(std::span<const std::uint8_t> packet, ProtocolVersion version,
                                 Packet& out);

// Appends the encoding of `packet` to `out`.
void encode(const Packet& packet, ProtocolVersion version, std::string& out);

// Size the encoding would have, without encoding (for Maximum Packet Size checks).
std::size_t encoded_size(const Packet& packet, ProtocolVersion version);

// Appends fixed header + variable header of a PUBLISH whose payload (payload_size bytes) is
// sent separately, so one payload buffer can be shared by every subscriber.
void encode_publish_header(std::string& out, ProtocolVersion version, std::uint8_t qos,
                           bool retain, bool dup, std::string_view topic,
                           std::uint16_t packet_id, const Properties& properties,
                           std::size_t payload_size);

// Topic rules (MQTT 3.1.1 4.7, 5.0 4.7). UTF-8 validity (no U+0000, no surrogates, no
// overlong forms) is checked by the decoder for every UTF-8 string.
bool valid_utf8(std::string_view text);
bool valid_topic_name(std::string_view topic);    // non-empty, no wildcards
bool valid_topic_filter(std::string_view filter); // non-empty, '+'/'#' placement rules
// Does `topic` match `filter`? Topics beginning with '$' do not match filters beginning with
// a wildcard.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace credmq::mqtt
