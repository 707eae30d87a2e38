// libFuzzer target: the MQTT codec (frame + decode for 3.1, 3.1.1 and 5.0, re-encode).
// Input: one selector byte, then the bytes of the stream.
//   selector bits 0-1: negotiated version (0: 3.1, 1: 3.1.1, 2 and 3: 5.0)
//   selector bit 2:    decode as a client would (sender = server) instead of as the broker
//   selector bit 3:    also decode the bytes as a standalone 5.0 property block
// Checked: frame() and decode() agree on what one packet is; every failure is a documented
// reason code; anything that decodes re-encodes (encoded_size() exact, encoding
// deterministic) to bytes that decode to an equal packet; decoding into a Packet that already
// holds a Publish (the broker's hot path reuses it) gives the same result as into a fresh one.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "codec_test_support.hpp"
#include "credmq/mqtt/codec.hpp"

namespace {

using namespace credmq::mqtt;
using namespace credmq::mqtt::test_support;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_mqtt_codec: check failed: %s\n", what);
    std::abort();
  }
}

std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

void check_packet(std::span<const std::uint8_t> input, ProtocolVersion version, Sender sender) {
  Packet packet;
  const boost::system::error_code ec = decode(input, version, packet, sender);

  // The broker decodes into the Packet of the previous PUBLISH: same outcome required.
  Packet reused = Publish{2, true, true, "stale/topic", 77, {}, std::string(300, 'x')};
  const boost::system::error_code reused_ec = decode(input, version, reused, sender);
  require(reused_ec == ec, "decode into a reused Publish: different error");

  if (ec) {
    require(documented_failure(ec), "undocumented decode error");
    return;
  }
  require(reused == packet, "decode into a reused Publish: different packet");

  // decode() accepted exactly one whole packet: frame() must say the same.
  const Frame f = frame(input, input.size());
  require(f.status == Frame::Status::complete, "decoded but frame() not complete");
  require(f.total_size() == input.size(), "decoded but frame() size differs");

  const ProtocolVersion encode_version = prepare_reencode(packet, version);
  std::string wire;
  encode(packet, encode_version, wire);
  require(wire.size() == encoded_size(packet, encode_version), "encoded_size() != encode()");
  std::string wire_again;
  encode(packet, encode_version, wire_again);
  require(wire == wire_again, "encode() not deterministic");

  Packet again;
  const boost::system::error_code second = decode(bytes_of(wire), encode_version, again, sender);
  if (second) {
    std::fprintf(stderr, "re-encoded packet does not decode: %s\n", second.message().c_str());
    std::abort();
  }
  require(again == packet, "round trip changed the packet");
  // Encoding is canonical: the decoded re-encoding encodes to the same bytes.
  std::string wire_third;
  encode(again, encode_version, wire_third);
  require(wire_third == wire, "re-encoding of the round trip differs");
}

void check_properties(std::span<const std::uint8_t> input) {
  Properties properties;
  const boost::system::error_code ec = decode_properties(input, properties);
  if (ec) {
    require(documented_failure(ec), "undocumented decode_properties error");
    return;
  }
  std::string block;
  encode_properties(properties, block);
  Properties again;
  require(!decode_properties(bytes_of(block), again), "re-encoded properties do not decode");
  require(again == properties, "properties round trip changed them");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  static constexpr ProtocolVersion kVersions[] = {ProtocolVersion::v3_1, ProtocolVersion::v3_1_1,
                                                  ProtocolVersion::v5, ProtocolVersion::v5};
  const ProtocolVersion version = kVersions[selector & 0x03];
  const Sender sender = selector & 0x04 ? Sender::server : Sender::client;
  const std::span<const std::uint8_t> stream(data + 1, size - 1);

  // frame() on the stream with a few limits: its invariants, whatever the bytes.
  for (std::size_t max : {std::size_t{2}, std::size_t{128}, std::size_t{1} << 28}) {
    const Frame f = frame(stream, max);
    if (f.status == Frame::Status::complete) {
      require(f.header_size >= 2 && f.header_size <= 5, "frame() header size");
      require(f.header_size <= stream.size(), "frame() header beyond the input");
      require(f.total_size() <= max, "frame() over the maximum");
      require(f.first_byte == stream[0], "frame() first byte");
    } else if (f.status == Frame::Status::error) {
      require(f.error == ReasonCode::malformed_packet || f.error == ReasonCode::packet_too_large,
              "frame() error code");
    }
  }

  // The whole input as one packet (lengths that disagree must be refused cleanly)...
  check_packet(stream, version, sender);
  // ...and, as the broker does on a stream, the first packet frame() delimits.
  const Frame f = frame(stream, std::size_t{1} << 28);
  if (f.status == Frame::Status::complete && f.total_size() < stream.size()) {
    check_packet(stream.first(f.total_size()), version, sender);
  }
  if (selector & 0x08) check_properties(stream);
  return 0;
}
