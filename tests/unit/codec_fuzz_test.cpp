// Robustness: random and mutated inputs never crash or read out of bounds (run under
// -fsanitize=address,undefined too), every failure is a known reason code, and anything that
// decodes re-encodes to something that decodes to the same packet.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "codec_test_support.hpp"
#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr ProtocolVersion versions[] = {ProtocolVersion::v3_1, ProtocolVersion::v3_1_1,
                                        ProtocolVersion::v5};
constexpr Sender senders[] = {Sender::client, Sender::server};

Bytes encode_bytes(const Packet& packet, ProtocolVersion version) {
  std::string out;
  encode(packet, version, out);
  return Bytes(out.begin(), out.end());
}

// Valid packets of every type and version: the mutation seeds.
std::vector<Bytes> seed_corpus() {
  std::vector<Bytes> corpus;
  Properties publish_properties;
  publish_properties.payload_format_indicator = 0;
  publish_properties.message_expiry_interval = 10;
  publish_properties.content_type = "c";
  publish_properties.response_topic = "r";
  publish_properties.correlation_data = "d";
  publish_properties.topic_alias = 2;
  publish_properties.user_properties = {{"k", "v"}};
  for (ProtocolVersion version : versions) {
    const bool v5 = version == ProtocolVersion::v5;
    Connect connect;
    connect.version = version;
    connect.client_id = "client";
    connect.will = Will{"w/t", "bye", 1, true, {}};
    connect.username = "user";
    connect.password = "pass";
    if (v5) {
      connect.properties.session_expiry_interval = 100;
      connect.properties.receive_maximum = 5;
      connect.properties.authentication_method = "m";
      connect.properties.authentication_data = "x";
      connect.properties.user_properties = {{"a", "b"}};
      connect.will->properties = publish_properties;
      connect.will->properties.topic_alias.reset();
      connect.will->properties.will_delay_interval = 3;
    }
    corpus.push_back(encode_bytes(connect, version));
    Connack connack{true, 0, {}};
    if (v5) {
      connack.properties.maximum_qos = 1;
      connack.properties.assigned_client_identifier = "id";
      connack.properties.reason_string = "r";
    }
    corpus.push_back(encode_bytes(connack, version));
    for (std::uint8_t qos = 0; qos <= 2; ++qos) {
      Publish publish{qos, false, qos == 2, "a/b", 5, {}, "payload"};
      if (v5) publish.properties = publish_properties;
      corpus.push_back(encode_bytes(publish, version));
    }
    for (PacketType type :
         {PacketType::puback, PacketType::pubrec, PacketType::pubrel, PacketType::pubcomp}) {
      Ack ack{type, 9, 0, {}};
      corpus.push_back(encode_bytes(ack, version));
      if (v5) {
        ack.reason_code = type == PacketType::puback ? 0x10 : 0x00;
        ack.properties.reason_string = "why";
        corpus.push_back(encode_bytes(ack, version));
      }
    }
    Subscribe subscribe{3, {}, {{"a/+", {1, false, false, 0}}, {"#", {2, false, false, 0}}}};
    if (v5) {
      subscribe.properties.subscription_identifiers = {7};
      subscribe.subscriptions[0].second = {1, true, true, 2};
    }
    corpus.push_back(encode_bytes(subscribe, version));
    Suback suback{3, {}, {0, 1, 0x80}};
    if (v5) suback.properties.reason_string = "r";
    corpus.push_back(encode_bytes(suback, version));
    Unsubscribe unsubscribe{4, {}, {"a/+", "b"}};
    if (v5) unsubscribe.properties.user_properties = {{"k", "v"}};
    corpus.push_back(encode_bytes(unsubscribe, version));
    corpus.push_back(encode_bytes(
        Unsuback{4, {}, v5 ? std::vector<std::uint8_t>{0, 0x11} : std::vector<std::uint8_t>{}},
        version));
    corpus.push_back(encode_bytes(Pingreq{}, version));
    corpus.push_back(encode_bytes(Pingresp{}, version));
    Disconnect disconnect{v5 ? std::uint8_t{0x04} : std::uint8_t{0}, {}};
    if (v5) disconnect.properties.session_expiry_interval = 0;
    corpus.push_back(encode_bytes(disconnect, version));
    if (v5) {
      Auth auth{0x18, {}};
      auth.properties.authentication_method = "m";
      auth.properties.authentication_data = "d";
      corpus.push_back(encode_bytes(auth, version));
    }
  }
  return corpus;
}

// Rewrites the remaining length to match the body, so mutations reach past the fixed header.
Bytes with_consistent_length(const Bytes& input) {
  if (input.size() < 2) return input;
  std::size_t header = 2;
  while (header <= 5 && header <= input.size() && (input[header - 1] & 0x80)) ++header;
  if (header > input.size() || header > 5) return input;
  Bytes body(input.begin() + static_cast<long>(header), input.end());
  Bytes out{input[0]};
  std::size_t length = body.size();
  do {
    std::uint8_t byte = length & 0x7F;
    length >>= 7;
    if (length) byte |= 0x80;
    out.push_back(byte);
  } while (length);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes mutate(const Bytes& seed, std::mt19937& random) {
  Bytes out = seed;
  auto pick = [&](std::size_t bound) {
    return std::uniform_int_distribution<std::size_t>(0, bound)(random);
  };
  const std::size_t mutations = 1 + pick(3);
  for (std::size_t m = 0; m < mutations; ++m) {
    switch (pick(6)) {
      case 0:  // flip a bit
        if (!out.empty()) out[pick(out.size() - 1)] ^= static_cast<std::uint8_t>(1u << pick(7));
        break;
      case 1:  // replace a byte
        if (!out.empty()) out[pick(out.size() - 1)] = static_cast<std::uint8_t>(pick(255));
        break;
      case 2:  // insert a byte
        out.insert(out.begin() + static_cast<long>(pick(out.size())),
                   static_cast<std::uint8_t>(pick(255)));
        break;
      case 3:  // delete a byte
        if (!out.empty()) out.erase(out.begin() + static_cast<long>(pick(out.size() - 1)));
        break;
      case 4:  // truncate
        out.resize(pick(out.size()));
        break;
      case 5:  // interesting values
        if (!out.empty()) {
          static constexpr std::uint8_t interesting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF,
                                                         0x0B, 0x23, 0x26, 0xC0, 0xED};
          out[pick(out.size() - 1)] = interesting[pick(std::size(interesting) - 1)];
        }
        break;
      default:  // duplicate a slice
        if (out.size() > 2) {
          const std::size_t from = pick(out.size() - 1);
          const std::size_t count = pick(out.size() - from);
          Bytes slice(out.begin() + static_cast<long>(from),
                      out.begin() + static_cast<long>(from + count));
          out.insert(out.begin() + static_cast<long>(pick(out.size())), slice.begin(), slice.end());
        }
        break;
    }
  }
  return pick(1) ? with_consistent_length(out) : out;
}

struct Tally {
  std::size_t decoded = 0;
  std::size_t rejected = 0;
};

void check_input(const Bytes& input, Tally& tally) {
  // frame() must agree with what decode() sees as one packet.
  const Frame f = frame(input, 1 << 20);
  for (ProtocolVersion version : versions) {
    for (Sender sender : senders) {
      Packet packet;
      const boost::system::error_code ec = decode(input, version, packet, sender);
      if (ec) {
        ++tally.rejected;
        ASSERT_TRUE(test_support::documented_failure(ec)) << ec.message();
        continue;
      }
      ++tally.decoded;
      ASSERT_EQ(f.status, Frame::Status::complete);
      ASSERT_EQ(f.total_size(), input.size());
      // Re-encode in the version the packet was decoded as and decode again: same packet.
      const ProtocolVersion encode_version = test_support::prepare_reencode(packet, version);
      std::string wire;
      encode(packet, encode_version, wire);
      ASSERT_EQ(wire.size(), encoded_size(packet, encode_version));
      Packet again;
      const Bytes wire_bytes(wire.begin(), wire.end());
      const boost::system::error_code second = decode(wire_bytes, encode_version, again, sender);
      ASSERT_FALSE(second) << second.message();
      ASSERT_TRUE(again == packet);
    }
  }
}

TEST(CodecFuzz, SeedsDecode) {
  Tally tally;
  for (const Bytes& seed : seed_corpus()) check_input(seed, tally);
  EXPECT_GT(tally.decoded, 0u);
}

TEST(CodecFuzz, MutatedPacketsNeverCrash) {
  const std::vector<Bytes> corpus = seed_corpus();
  std::mt19937 random(20240601);
  Tally tally;
  for (int iteration = 0; iteration < 100'000; ++iteration) {
    const Bytes input = mutate(corpus[static_cast<std::size_t>(iteration) % corpus.size()], random);
    check_input(input, tally);
    if (HasFatalFailure()) {
      std::string hex;
      for (std::uint8_t byte : input) hex += std::to_string(byte) + " ";
      FAIL() << "input: " << hex;
    }
  }
  // The mutations must exercise both outcomes to mean anything.
  EXPECT_GT(tally.decoded, 10'000u);
  EXPECT_GT(tally.rejected, 100'000u);
}

TEST(CodecFuzz, RandomBytesNeverCrash) {
  std::mt19937 random(7);
  Tally tally;
  for (int iteration = 0; iteration < 100'000; ++iteration) {
    Bytes input(std::uniform_int_distribution<std::size_t>(0, 40)(random));
    for (std::uint8_t& byte : input) byte = static_cast<std::uint8_t>(random());
    if (iteration % 2 == 0) input = with_consistent_length(input);
    check_input(input, tally);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(tally.rejected, 0u);
}

TEST(CodecFuzz, FrameOnRandomPrefixes) {
  std::mt19937 random(11);
  for (int iteration = 0; iteration < 100'000; ++iteration) {
    Bytes input(std::uniform_int_distribution<std::size_t>(0, 6)(random));
    for (std::uint8_t& byte : input) byte = static_cast<std::uint8_t>(random());
    const std::size_t max = std::uniform_int_distribution<std::size_t>(0, 1 << 29)(random);
    const Frame f = frame(input, max);
    if (f.status == Frame::Status::complete) {
      ASSERT_LE(f.header_size, input.size());
      ASSERT_LE(f.total_size(), max);
    } else if (f.status == Frame::Status::error) {
      ASSERT_TRUE(f.error == ReasonCode::malformed_packet ||
                  f.error == ReasonCode::packet_too_large);
    }
  }
}

}  // namespace
}  // namespace credmq::mqtt
