// Shared by the codec robustness checks: codec_fuzz_test and the fuzz_mqtt_codec target.
#pragma once

#include <boost/system/error_code.hpp>
#include <variant>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt::test_support {

// The reason codes decode() and decode_properties() may refuse input with: anything else
// is a bug.
inline bool documented_failure(const boost::system::error_code& ec) {
  if (&ec.category() != &reason_category()) return false;
  switch (static_cast<ReasonCode>(ec.value())) {
    case ReasonCode::malformed_packet:
    case ReasonCode::protocol_error:
    case ReasonCode::unsupported_protocol_version:
    case ReasonCode::topic_name_invalid:
    case ReasonCode::topic_alias_invalid:
      return true;
    default:
      return false;
  }
}

// The version a packet decoded under `version` re-encodes in (a CONNECT carries its own);
// clears what that version cannot represent (session_present of a 3.1 CONNACK), so the
// round trip can compare whole packets.
inline ProtocolVersion prepare_reencode(Packet& packet, ProtocolVersion version) {
  const ProtocolVersion encode_version =
      std::holds_alternative<Connect>(packet) ? std::get<Connect>(packet).version : version;
  if (encode_version == ProtocolVersion::v3_1 && std::holds_alternative<Connack>(packet)) {
    std::get<Connack>(packet).session_present = false;  // not representable in 3.1
  }
  return encode_version;
}

}  // namespace credmq::mqtt::test_support
