// Framing: finds one packet's fixed header at the start of a byte stream.
#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {

Frame frame(std::span<const std::uint8_t> bytes, std::size_t max_packet_size) {
  Frame result;
  if (bytes.empty()) return result;
  result.first_byte = bytes[0];
  std::size_t remaining_length = 0;
  // Remaining Length is a Variable Byte Integer of at most 4 bytes [MQTT-1.5.5-1] (3.1.1 2.2.3).
  for (std::size_t index = 0; index < 4; ++index) {
    if (bytes.size() < index + 2) return result;  // need_more
    const std::uint8_t byte = bytes[index + 1];
    remaining_length |= std::size_t{byte & 0x7Fu} << (7 * index);
    if ((byte & 0x80u) == 0) {
      result.header_size = index + 2;
      result.remaining_length = remaining_length;
      if (result.total_size() > max_packet_size) {
        result.status = Frame::Status::error;
        result.error = ReasonCode::packet_too_large;
      } else {
        result.status = Frame::Status::complete;
      }
      return result;
    }
  }
  result.status = Frame::Status::error;  // a 5th length byte
  result.error = ReasonCode::malformed_packet;
  return result;
}

bool Properties::empty() const {
  return !payload_format_indicator && !message_expiry_interval && !content_type &&
         !response_topic && !correlation_data && subscription_identifiers.empty() &&
         !session_expiry_interval && !assigned_client_identifier && !server_keep_alive &&
         !authentication_method && !authentication_data && !request_problem_information &&
         !will_delay_interval && !request_response_information && !response_information &&
         !server_reference && !reason_string && !receive_maximum && !topic_alias_maximum &&
         !topic_alias && !maximum_qos && !retain_available && user_properties.empty() &&
         !maximum_packet_size && !wildcard_subscription_available &&
         !subscription_identifier_available && !shared_subscription_available;
}

}  // namespace credmq::mqtt
