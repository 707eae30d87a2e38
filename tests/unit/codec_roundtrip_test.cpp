// encode() exact bytes, encode/decode round trips of every packet type, encoded_size() and
// encode_publish_header() consistency.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

constexpr ProtocolVersion v31 = ProtocolVersion::v3_1;
constexpr ProtocolVersion v311 = ProtocolVersion::v3_1_1;
constexpr ProtocolVersion v5 = ProtocolVersion::v5;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int value : values) out.push_back(static_cast<char>(value));
  return out;
}

std::string encoded(const Packet& packet, ProtocolVersion version) {
  std::string out;
  encode(packet, version, out);
  EXPECT_EQ(encoded_size(packet, version), out.size());
  return out;
}

Packet decoded(const std::string& wire, ProtocolVersion version, Sender sender) {
  Packet out;
  const std::vector<std::uint8_t> data(wire.begin(), wire.end());
  const boost::system::error_code ec = decode(data, version, out, sender);
  EXPECT_FALSE(ec) << ec.message();
  return out;
}

// Encodes, checks size consistency, decodes, and expects the same packet back.
void expect_round_trip(const Packet& packet, ProtocolVersion version,
                       Sender sender = Sender::client) {
  const std::string wire = encoded(packet, version);
  const Packet back = decoded(wire, version, sender);
  EXPECT_EQ(back.index(), packet.index());
  EXPECT_TRUE(back == packet) << "packet alternative " << packet.index() << " version "
                              << static_cast<int>(version);
}

Properties all_publish_properties() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 3600;
  p.content_type = "application/json";
  p.response_topic = "reply/here";
  p.correlation_data = std::string("\x00\x01\xFF", 3);
  p.topic_alias = 4;
  p.user_properties = {{"a", "1"}, {"a", "2"}, {"b", ""}};
  return p;
}

// ---------------------------------------------------------------------------------------------
// Exact bytes.

TEST(CodecEncode, Connack311AndV5) {
  EXPECT_EQ(encoded(Connack{true, 0, {}}, v311), bytes({0x20, 0x02, 0x01, 0x00}));
  EXPECT_EQ(encoded(Connack{false, 5, {}}, v311), bytes({0x20, 0x02, 0x00, 0x05}));
  // 3.1 has no Session Present flag.
  EXPECT_EQ(encoded(Connack{true, 0, {}}, v31), bytes({0x20, 0x02, 0x00, 0x00}));
  EXPECT_EQ(encoded(Connack{false, 0, {}}, v5), bytes({0x20, 0x03, 0x00, 0x00, 0x00}));
  Connack with_properties;
  with_properties.properties.receive_maximum = 10;
  with_properties.properties.assigned_client_identifier = "id";
  EXPECT_EQ(encoded(with_properties, v5),
            bytes({0x20, 0x0B, 0x00, 0x00, 0x08, 0x12, 0x00, 0x02, 'i', 'd', 0x21, 0x00, 0x0A}));
}

TEST(CodecEncode, ConnackCodesAreMappedToTheVersion) {
  auto code = [](std::uint8_t reason, ProtocolVersion version) {
    return static_cast<int>(
        static_cast<std::uint8_t>(encoded(Connack{false, reason, {}}, version)[3]));
  };
  EXPECT_EQ(code(0x84, v311), 1);
  EXPECT_EQ(code(0x85, v311), 2);
  EXPECT_EQ(code(0x88, v311), 3);
  EXPECT_EQ(code(0x89, v311), 3);
  EXPECT_EQ(code(0x86, v311), 4);
  EXPECT_EQ(code(0x87, v311), 5);
  EXPECT_EQ(code(0x8A, v311), 5);
  EXPECT_EQ(code(0x80, v311), 3);
  EXPECT_EQ(code(4, v311), 4);
  EXPECT_EQ(code(1, v5), 0x84);
  EXPECT_EQ(code(2, v5), 0x85);
  EXPECT_EQ(code(3, v5), 0x88);
  EXPECT_EQ(code(4, v5), 0x86);
  EXPECT_EQ(code(5, v5), 0x87);
  EXPECT_EQ(code(0x8C, v5), 0x8C);
}

TEST(CodecEncode, Publish) {
  EXPECT_EQ(encoded(Publish{0, false, false, "a/b", 0, {}, "hi"}, v311),
            bytes({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
  EXPECT_EQ(encoded(Publish{2, true, true, "t", 0x0102, {}, ""}, v311),
            bytes({0x3D, 0x05, 0x00, 0x01, 't', 0x01, 0x02}));
  Publish with_alias{1, false, false, "t", 9, {}, "x"};
  with_alias.properties.topic_alias = 1;
  with_alias.properties.subscription_identifiers = {128};
  EXPECT_EQ(encoded(with_alias, v5), bytes({0x32, 0x0D, 0x00, 0x01, 't', 0x00, 0x09, 0x06, 0x0B,
                                            0x80, 0x01, 0x23, 0x00, 0x01, 'x'}));
  // Properties are ignored for 3.1.1.
  EXPECT_EQ(encoded(with_alias, v311), bytes({0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x09, 'x'}));
}

TEST(CodecEncode, AcksShortAndLongForms) {
  EXPECT_EQ(encoded(Ack{PacketType::puback, 5, 0, {}}, v311), bytes({0x40, 0x02, 0x00, 0x05}));
  EXPECT_EQ(encoded(Ack{PacketType::pubrel, 5, 0, {}}, v311), bytes({0x62, 0x02, 0x00, 0x05}));
  EXPECT_EQ(encoded(Ack{PacketType::pubrec, 5, 0x10, {}}, v311), bytes({0x50, 0x02, 0x00, 0x05}));
  EXPECT_EQ(encoded(Ack{PacketType::pubcomp, 5, 0, {}}, v5), bytes({0x70, 0x02, 0x00, 0x05}));
  EXPECT_EQ(encoded(Ack{PacketType::puback, 5, 0x10, {}}, v5),
            bytes({0x40, 0x03, 0x00, 0x05, 0x10}));
  Ack with_reason_string{PacketType::pubrec, 5, 0, {}};
  with_reason_string.properties.reason_string = "ok";
  EXPECT_EQ(encoded(with_reason_string, v5),
            bytes({0x50, 0x09, 0x00, 0x05, 0x00, 0x05, 0x1F, 0x00, 0x02, 'o', 'k'}));
}

TEST(CodecEncode, SubscribeFamily) {
  Subscribe subscribe{3, {}, {{"a/+", {1, true, true, 2}}, {"b", {2, false, false, 0}}}};
  EXPECT_EQ(encoded(subscribe, v311), bytes({0x82, 0x0C, 0x00, 0x03, 0x00, 0x03, 'a', '/', '+',
                                             0x01, 0x00, 0x01, 'b', 0x02}));
  EXPECT_EQ(encoded(subscribe, v5), bytes({0x82, 0x0D, 0x00, 0x03, 0x00, 0x00, 0x03, 'a', '/', '+',
                                           0x2D, 0x00, 0x01, 'b', 0x02}));
  // 3.1.1 SUBACK codes are 0, 1, 2 and 0x80.
  Suback suback{3, {}, {0x00, 0x01, 0x02, 0x80, 0x87, 0xA2}};
  EXPECT_EQ(encoded(suback, v311),
            bytes({0x90, 0x08, 0x00, 0x03, 0x00, 0x01, 0x02, 0x80, 0x80, 0x80}));
  EXPECT_EQ(encoded(suback, v5),
            bytes({0x90, 0x09, 0x00, 0x03, 0x00, 0x00, 0x01, 0x02, 0x80, 0x87, 0xA2}));
  Unsubscribe unsubscribe{4, {}, {"a", "b/#"}};
  EXPECT_EQ(encoded(unsubscribe, v311),
            bytes({0xA2, 0x0A, 0x00, 0x04, 0x00, 0x01, 'a', 0x00, 0x03, 'b', '/', '#'}));
  Unsuback unsuback{4, {}, {0x00, 0x11}};
  EXPECT_EQ(encoded(unsuback, v311), bytes({0xB0, 0x02, 0x00, 0x04}));
  EXPECT_EQ(encoded(unsuback, v5), bytes({0xB0, 0x05, 0x00, 0x04, 0x00, 0x00, 0x11}));
}

TEST(CodecEncode, PingDisconnectAuth) {
  EXPECT_EQ(encoded(Pingreq{}, v311), bytes({0xC0, 0x00}));
  EXPECT_EQ(encoded(Pingresp{}, v5), bytes({0xD0, 0x00}));
  EXPECT_EQ(encoded(Disconnect{}, v311), bytes({0xE0, 0x00}));
  EXPECT_EQ(encoded(Disconnect{0x8E, {}}, v311), bytes({0xE0, 0x00}));
  EXPECT_EQ(encoded(Disconnect{}, v5), bytes({0xE0, 0x00}));
  EXPECT_EQ(encoded(Disconnect{0x8E, {}}, v5), bytes({0xE0, 0x01, 0x8E}));
  Disconnect moved{0x9D, {}};
  moved.properties.server_reference = "h";
  EXPECT_EQ(encoded(moved, v5), bytes({0xE0, 0x06, 0x9D, 0x04, 0x1C, 0x00, 0x01, 'h'}));
  EXPECT_EQ(encoded(Auth{}, v5), bytes({0xF0, 0x00}));
  Auth challenge{0x18, {}};
  challenge.properties.authentication_method = "M";
  EXPECT_EQ(encoded(challenge, v5), bytes({0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 'M'}));
  std::string out;
  EXPECT_THROW(encode(Auth{}, v311, out), std::invalid_argument);
}

TEST(CodecEncode, ConnectWithEverything311) {
  Connect connect;
  connect.version = v311;
  connect.clean_start = false;
  connect.keep_alive = 10;
  connect.client_id = "c";
  connect.will = Will{"w", "p", 2, true, {}};
  connect.username = "u";
  connect.password = "pw";
  EXPECT_EQ(
      encoded(connect, v311),
      bytes({0x10, 0x1A, 0x00, 0x04, 'M',  'Q',  'T', 'T',  0x04, 0xF4, 0x00, 0x0A, 0x00, 0x01,
             'c',  0x00, 0x01, 'w',  0x00, 0x01, 'p', 0x00, 0x01, 'u',  0x00, 0x02, 'p',  'w'}));
}

TEST(CodecEncode, OversizedFieldsThrow) {
  std::string out;
  Publish publish{0, false, false, std::string(65'536, 't'), 0, {}, ""};
  EXPECT_THROW(encode(publish, v311, out), std::length_error);
  EXPECT_THROW(encode_publish_header(out, v311, 0, false, false, "t", 0, {}, 268'435'453),
               std::length_error);
  EXPECT_NO_THROW(encode_publish_header(out, v311, 0, false, false, "t", 0, {}, 268'435'452));
}

// ---------------------------------------------------------------------------------------------
// Round trips of every packet type.

class CodecRoundTrip : public ::testing::TestWithParam<ProtocolVersion> {};

TEST_P(CodecRoundTrip, Connect) {
  const ProtocolVersion version = GetParam();
  Connect minimal;
  minimal.version = version;
  minimal.client_id = "client-1";
  minimal.keep_alive = 65'535;
  expect_round_trip(minimal, version);

  Connect full = minimal;
  full.clean_start = false;
  full.will = Will{"will/topic", std::string("\x00\xFFwill", 6), 1, true, {}};
  full.username = "user\xC3\xA9";
  full.password = std::string("\x00pw", 3);
  if (version == v5) {
    full.properties.session_expiry_interval = 0xFFFFFFFF;
    full.properties.receive_maximum = 100;
    full.properties.maximum_packet_size = 1 << 20;
    full.properties.topic_alias_maximum = 0;
    full.properties.request_response_information = 1;
    full.properties.request_problem_information = 0;
    full.properties.authentication_method = "SCRAM-SHA-256";
    full.properties.authentication_data = std::string("\x01\x00", 2);
    full.properties.user_properties = {{"k", "v"}};
    full.will->properties = all_publish_properties();
    full.will->properties.topic_alias.reset();
    full.will->properties.will_delay_interval = 60;
  }
  expect_round_trip(full, version);

  Connect password_only = minimal;
  password_only.username = "u";
  password_only.password = "";
  expect_round_trip(password_only, version);
}

TEST_P(CodecRoundTrip, Connack) {
  const ProtocolVersion version = GetParam();
  // 3.1 has no Session Present flag, so it cannot round-trip there.
  expect_round_trip(Connack{version != v31, 0, {}}, version, Sender::server);
  Connack refused{false, static_cast<std::uint8_t>(version == v5 ? 0x87 : 5), {}};
  if (version == v5) {
    Properties& p = refused.properties;
    p.session_expiry_interval = 5;
    p.assigned_client_identifier = "auto-1";
    p.server_keep_alive = 30;
    p.authentication_method = "m";
    p.authentication_data = "d";
    p.response_information = "ri";
    p.server_reference = "other:1883";
    p.reason_string = "no";
    p.receive_maximum = 65'535;
    p.topic_alias_maximum = 10;
    p.maximum_qos = 1;
    p.retain_available = 0;
    p.user_properties = {{"x", "y"}};
    p.maximum_packet_size = 268'435'460;
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 0;
    p.shared_subscription_available = 1;
  }
  expect_round_trip(refused, version, Sender::server);
}

TEST_P(CodecRoundTrip, Publish) {
  const ProtocolVersion version = GetParam();
  for (std::uint8_t qos = 0; qos <= 2; ++qos) {
    Publish publish{qos,
                    qos == 1,
                    qos == 2,
                    "sensors/\xE2\x82\xAC/1",
                    static_cast<std::uint16_t>(qos ? 65'535 : 0),
                    {},
                    std::string(200, '\0')};
    expect_round_trip(publish, version);
    if (version == v5) {
      publish.properties = all_publish_properties();
      expect_round_trip(publish, version);
      // Server to client: subscription identifiers, several, up to the maximum.
      publish.properties.subscription_identifiers = {1, 127, 128, 16'384, 268'435'455};
      expect_round_trip(publish, version, Sender::server);
    }
  }
  expect_round_trip(Publish{0, false, false, "t", 0, {}, std::string(70'000, 'p')}, version);
}

TEST_P(CodecRoundTrip, Acks) {
  const ProtocolVersion version = GetParam();
  for (PacketType type :
       {PacketType::puback, PacketType::pubrec, PacketType::pubrel, PacketType::pubcomp}) {
    expect_round_trip(Ack{type, 1, 0, {}}, version);
    if (version == v5) {
      const bool publish_level = type == PacketType::puback || type == PacketType::pubrec;
      Ack with_reason{type, 65'535, static_cast<std::uint8_t>(publish_level ? 0x97 : 0x92), {}};
      expect_round_trip(with_reason, version);
      with_reason.properties.reason_string = "why";
      with_reason.properties.user_properties = {{"a", "b"}};
      expect_round_trip(with_reason, version);
      Ack success_with_properties{type, 2, 0, {}};
      success_with_properties.properties.user_properties = {{"a", "b"}};
      expect_round_trip(success_with_properties, version);
    }
  }
}

TEST_P(CodecRoundTrip, SubscribeFamily) {
  const ProtocolVersion version = GetParam();
  Subscribe subscribe{7, {}, {{"a/+/c", {0, false, false, 0}}, {"#", {2, false, false, 0}}}};
  if (version == v5) {
    subscribe.subscriptions.push_back({"x/y", {1, true, true, 1}});
    subscribe.subscriptions.push_back({"$share/g/x", {1, false, true, 2}});
    subscribe.properties.subscription_identifiers = {42};
    subscribe.properties.user_properties = {{"k", "v"}};
  }
  expect_round_trip(subscribe, version);

  Suback suback{7, {}, {0, 1, 2, 0x80}};
  if (version == v5) {
    suback.reason_codes = {0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
    suback.properties.reason_string = "partial";
  }
  expect_round_trip(suback, version, Sender::server);

  Unsubscribe unsubscribe{8, {}, {"a/+/c", "#", "x"}};
  if (version == v5) unsubscribe.properties.user_properties = {{"k", "v"}};
  expect_round_trip(unsubscribe, version);

  Unsuback unsuback{8, {}, {}};
  if (version == v5) {
    unsuback.reason_codes = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
    unsuback.properties.reason_string = "r";
  }
  expect_round_trip(unsuback, version, Sender::server);
}

TEST_P(CodecRoundTrip, PingAndDisconnect) {
  const ProtocolVersion version = GetParam();
  expect_round_trip(Pingreq{}, version);
  expect_round_trip(Pingresp{}, version, Sender::server);
  expect_round_trip(Disconnect{}, version);
  if (version == v5) {
    expect_round_trip(Disconnect{0x04, {}}, version);
    Disconnect from_server{0x9C, {}};
    from_server.properties.server_reference = "elsewhere";
    from_server.properties.reason_string = "moving";
    from_server.properties.session_expiry_interval = 0;
    from_server.properties.user_properties = {{"a", "b"}};
    expect_round_trip(from_server, version, Sender::server);
  }
}

TEST(CodecRoundTripV5, Auth) {
  expect_round_trip(Auth{}, v5);
  Auth challenge{0x18, {}};
  challenge.properties.authentication_method = "SCRAM-SHA-1";
  challenge.properties.authentication_data = std::string("\x00\x01", 2);
  challenge.properties.reason_string = "continue";
  challenge.properties.user_properties = {{"a", "b"}};
  expect_round_trip(challenge, v5);
  Auth reauthenticate{0x19, {}};
  reauthenticate.properties.authentication_method = "M";
  expect_round_trip(reauthenticate, v5);
  Auth success_with_method{0x00, {}};
  success_with_method.properties.authentication_method = "M";
  expect_round_trip(success_with_method, v5, Sender::server);
}

INSTANTIATE_TEST_SUITE_P(AllVersions, CodecRoundTrip, ::testing::Values(v31, v311, v5),
                         [](const ::testing::TestParamInfo<ProtocolVersion>& info) {
                           return info.param == v31    ? std::string("v3_1")
                                  : info.param == v311 ? std::string("v3_1_1")
                                                       : std::string("v5");
                         });

// ---------------------------------------------------------------------------------------------
// encode_publish_header is encode() minus the payload.

TEST(CodecPublishHeader, MatchesEncodeWithoutPayload) {
  for (ProtocolVersion version : {v31, v311, v5}) {
    for (std::uint8_t qos = 0; qos <= 2; ++qos) {
      for (std::size_t payload_size : {0u, 1u, 100u, 20'000u, 3'000'000u}) {
        Publish publish{
            qos, qos == 0, qos == 2, "topic/name", 77, {}, std::string(payload_size, 'z')};
        if (version == v5) publish.properties = all_publish_properties();
        const std::string whole = encoded(publish, version);
        std::string header = "prefix";
        encode_publish_header(header, version, qos, publish.retain, publish.dup, publish.topic,
                              publish.packet_id, publish.properties, payload_size);
        ASSERT_EQ(header.substr(0, 6), "prefix");
        EXPECT_EQ(header.substr(6) + publish.payload, whole)
            << "version " << static_cast<int>(version) << " qos " << int{qos} << " payload "
            << payload_size;
      }
    }
  }
}

TEST(CodecEncode, AppendsToExistingOutput) {
  std::string out = "xy";
  encode(Pingreq{}, v311, out);
  encode(Pingresp{}, v311, out);
  EXPECT_EQ(out, bytes({'x', 'y', 0xC0, 0x00, 0xD0, 0x00}));
}

// A property block on its own, as persistence stores a message's or will's properties.
TEST(CodecPropertyBlock, RoundTripsMessageAndWillProperties) {
  Properties properties;
  properties.payload_format_indicator = 1;
  properties.message_expiry_interval = 3600;
  properties.content_type = "text/plain";
  properties.response_topic = "r/1";
  properties.correlation_data = std::string("\x00\xff", 2);
  properties.will_delay_interval = 30;
  properties.user_properties = {{"k", "v"}, {"k", "w"}};
  std::string block;
  encode_properties(properties, block);
  EXPECT_EQ(block.size(), 51u);  // Property Length 50, then the properties
  EXPECT_EQ(block.substr(0, 6), bytes({50, 0x01, 1, 0x02, 0x00, 0x00}));
  Properties back;
  const std::vector<std::uint8_t> data(block.begin(), block.end());
  EXPECT_FALSE(decode_properties(data, back));
  EXPECT_EQ(back, properties);

  std::string empty;
  encode_properties(Properties{}, empty);
  EXPECT_EQ(empty, bytes({0}));
  back.content_type = "stale";
  const std::vector<std::uint8_t> zero{0};
  EXPECT_FALSE(decode_properties(zero, back));
  EXPECT_TRUE(back.empty());  // the output is reset
}

TEST(CodecPropertyBlock, RefusesWhatAStoredMessageNeverHolds) {
  auto code = [](std::initializer_list<int> block) {
    Properties out;
    const std::string text = bytes(block);
    const std::vector<std::uint8_t> data(text.begin(), text.end());
    return decode_properties(data, out);
  };
  EXPECT_EQ(code({2, 0x0B, 5}), make_error_code(ReasonCode::malformed_packet));     // sub. id
  EXPECT_EQ(code({3, 0x23, 0, 1}), make_error_code(ReasonCode::malformed_packet));  // alias
  EXPECT_EQ(code({5, 0x11, 0, 0, 0, 1}),
            make_error_code(ReasonCode::malformed_packet));  // Session Expiry (CONNECT)
  EXPECT_EQ(code({2, 0x01, 1, 0}), make_error_code(ReasonCode::malformed_packet));      // trailing
  EXPECT_EQ(code({2, 0x01}), make_error_code(ReasonCode::malformed_packet));            // short
  EXPECT_EQ(code({4, 0x01, 1, 0x01, 1}), make_error_code(ReasonCode::protocol_error));  // twice
}

}  // namespace
}  // namespace credmq::mqtt
