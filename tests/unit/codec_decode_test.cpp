// decode(): raw bytes as real clients send them, and every rejection with its exact reason code.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr ProtocolVersion v31 = ProtocolVersion::v3_1;
constexpr ProtocolVersion v311 = ProtocolVersion::v3_1_1;
constexpr ProtocolVersion v5 = ProtocolVersion::v5;

// Little builder so error cases read as fields rather than hand-counted lengths.
struct Body {
  Bytes bytes;
  Body& u8(int value) {
    bytes.push_back(static_cast<std::uint8_t>(value));
    return *this;
  }
  Body& u16(int value) { return u8(value >> 8).u8(value); }
  Body& u32(std::uint32_t value) {
    return u16(static_cast<int>(value >> 16)).u16(static_cast<int>(value));
  }
  Body& vbi(std::uint32_t value) {
    do {
      std::uint8_t byte = value & 0x7F;
      value >>= 7;
      if (value) byte |= 0x80;
      u8(byte);
    } while (value);
    return *this;
  }
  Body& raw(std::string_view text) {
    bytes.insert(bytes.end(), text.begin(), text.end());
    return *this;
  }
  Body& str(std::string_view text) { return u16(static_cast<int>(text.size())).raw(text); }
  Body& append(const Body& other) {
    bytes.insert(bytes.end(), other.bytes.begin(), other.bytes.end());
    return *this;
  }
  Body& props(const Body& properties) {
    return vbi(static_cast<std::uint32_t>(properties.bytes.size())).append(properties);
  }
};

Bytes packet(int first_byte, const Body& body) {
  Body whole;
  whole.u8(first_byte).vbi(static_cast<std::uint32_t>(body.bytes.size())).append(body);
  return whole.bytes;
}

ReasonCode decode_rc(const Bytes& bytes, ProtocolVersion version, Sender sender = Sender::client) {
  Packet out;
  const boost::system::error_code ec = decode(bytes, version, out, sender);
  if (!ec) return ReasonCode::success;
  EXPECT_EQ(&ec.category(), &reason_category());
  return static_cast<ReasonCode>(ec.value());
}

template <typename T>
T decode_as(const Bytes& bytes, ProtocolVersion version, Sender sender = Sender::client) {
  Packet out;
  const boost::system::error_code ec = decode(bytes, version, out, sender);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(std::holds_alternative<T>(out));
  return std::holds_alternative<T>(out) ? std::get<T>(out) : T{};
}

// CONNECT bodies: protocol name, level, flags, keep alive 60, then the rest.
Body connect311(int flags) { return Body{}.str("MQTT").u8(4).u8(flags).u16(60); }
Body connect5(int flags, const Body& properties = {}) {
  return Body{}.str("MQTT").u8(5).u8(flags).u16(60).props(properties);
}

// ---------------------------------------------------------------------------------------------
// Raw CONNECTs as real clients send them.

TEST(CodecDecodeConnect, MosquittoPubV311) {
  // mosquitto_pub -V mqttv311 -i mosq-abcde -t t -m x
  const Bytes bytes{0x10, 0x16, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C,
                    0x00, 0x0A, 'm',  'o',  's', 'q', '-', 'a', 'b',  'c',  'd',  'e'};
  const auto connect = decode_as<Connect>(bytes, v5 /* ignored for CONNECT */);
  EXPECT_EQ(connect.version, v311);
  EXPECT_TRUE(connect.clean_start);
  EXPECT_EQ(connect.keep_alive, 60);
  EXPECT_EQ(connect.client_id, "mosq-abcde");
  EXPECT_FALSE(connect.will);
  EXPECT_FALSE(connect.username);
  EXPECT_FALSE(connect.password);
  EXPECT_TRUE(connect.properties.empty());
  // Re-encoding gives the client's bytes back.
  std::string encoded;
  encode(connect, v311, encoded);
  EXPECT_EQ(encoded, std::string(bytes.begin(), bytes.end()));
}

TEST(CodecDecodeConnect, MosquittoPubV31) {
  const Bytes bytes{0x10, 0x18, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00,
                    0x3C, 0x00, 0x0A, 'm',  'o', 's', 'q', '-', 'a', 'b', 'c',  'd',  'e'};
  const auto connect = decode_as<Connect>(bytes, v311);
  EXPECT_EQ(connect.version, v31);
  EXPECT_EQ(connect.client_id, "mosq-abcde");
  std::string encoded;
  encode(connect, v31, encoded);
  EXPECT_EQ(encoded, std::string(bytes.begin(), bytes.end()));
}

TEST(CodecDecodeConnect, MosquittoPubV5WithProperties) {
  // Session Expiry 3600, Receive Maximum 20, then client id.
  const Bytes bytes{0x10, 0x1F, 0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0x02, 0x00,
                    0x3C, 0x08, 0x11, 0x00, 0x00, 0x0E, 0x10, 0x21, 0x00, 0x14, 0x00,
                    0x0A, 'm',  'o',  's',  'q',  '-',  'a',  'b',  'c',  'd',  'e'};
  const auto connect = decode_as<Connect>(bytes, v311);
  EXPECT_EQ(connect.version, v5);
  EXPECT_EQ(connect.properties.session_expiry_interval, 3600u);
  EXPECT_EQ(connect.properties.receive_maximum, 20);
  EXPECT_EQ(connect.client_id, "mosq-abcde");
  std::string encoded;
  encode(connect, v5, encoded);
  EXPECT_EQ(encoded, std::string(bytes.begin(), bytes.end()));
}

TEST(CodecDecodeConnect, WillUserNameAndPassword311) {
  // flags: user name, password, will retain, will QoS 1, will, clean session.
  const Bytes bytes = packet(0x10, connect311(0xEE)
                                       .str("client")
                                       .str("last/will")
                                       .str("gone")
                                       .str("alice")
                                       .str(std::string_view("p\0w", 3)));
  const auto connect = decode_as<Connect>(bytes, v311);
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->topic, "last/will");
  EXPECT_EQ(connect.will->payload, "gone");
  EXPECT_EQ(connect.will->qos, 1);
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.username, "alice");
  EXPECT_EQ(connect.password, std::string("p\0w", 3));  // binary, NUL allowed
}

TEST(CodecDecodeConnect, EmptyClientIdIsLeftToTheBroker) {
  const auto connect = decode_as<Connect>(packet(0x10, connect311(0x02).str("")), v311);
  EXPECT_EQ(connect.client_id, "");
}

TEST(CodecDecodeConnect, V5PasswordWithoutUserNameIsAllowed) {
  const auto connect = decode_as<Connect>(packet(0x10, connect5(0x42).str("c").str("pw")), v5);
  EXPECT_FALSE(connect.username);
  EXPECT_EQ(connect.password, "pw");
}

TEST(CodecDecodeConnect, V5WillProperties) {
  const Body will_properties =
      Body{}.u8(0x18).u32(30).u8(0x01).u8(1).u8(0x03).str("text/plain").u8(0x26).str("k").str("v");
  const auto connect = decode_as<Connect>(
      packet(0x10, connect5(0x0E).str("c").props(will_properties).str("w/t").str("bye")), v5);
  ASSERT_TRUE(connect.will);
  EXPECT_EQ(connect.will->qos, 1);
  EXPECT_EQ(connect.will->properties.will_delay_interval, 30u);
  EXPECT_EQ(connect.will->properties.payload_format_indicator, 1);
  EXPECT_EQ(connect.will->properties.content_type, "text/plain");
  ASSERT_EQ(connect.will->properties.user_properties.size(), 1u);
  EXPECT_EQ(connect.will->properties.user_properties[0].first, "k");
}

// ---------------------------------------------------------------------------------------------
// Rejections: one table, exact codes.

struct ErrorCase {
  const char* name;
  ProtocolVersion version;
  Bytes bytes;
  ReasonCode expected;
  Sender sender = Sender::client;
};

constexpr ReasonCode malformed = ReasonCode::malformed_packet;
constexpr ReasonCode protocol = ReasonCode::protocol_error;
constexpr ReasonCode success = ReasonCode::success;

std::vector<ErrorCase> connect_cases() {
  return {
      {"connect: reserved flag bit 0 [MQTT-3.1.2-3]", v311, packet(0x10, connect311(0x03).str("c")),
       malformed},
      {"connect v5: reserved flag bit 0", v5, packet(0x10, connect5(0x03).str("c")), malformed},
      {"connect: fixed header flags", v311, packet(0x11, connect311(0x02).str("c")), malformed},
      {"connect: will QoS 3", v311, packet(0x10, connect311(0x1E).str("c").str("t").str("p")),
       malformed},
      {"connect: will QoS without will flag", v311, packet(0x10, connect311(0x0A).str("c")),
       malformed},
      {"connect: will retain without will flag", v311, packet(0x10, connect311(0x22).str("c")),
       malformed},
      {"connect v5: will QoS without will flag", v5, packet(0x10, connect5(0x12).str("c")),
       malformed},
      {"connect: password without user name [MQTT-3.1.2-22]", v311,
       packet(0x10, connect311(0x42).str("c").str("pw")), protocol},
      {"connect 3.1: password without user name", v31,
       packet(0x10, Body{}.str("MQIsdp").u8(3).u8(0x42).u16(60).str("c").str("pw")), protocol},
      {"connect: MQTT level 6", v311, packet(0x10, Body{}.str("MQTT").u8(6).u8(2).u16(60).str("c")),
       ReasonCode::unsupported_protocol_version},
      {"connect: MQTT level 3", v311, packet(0x10, Body{}.str("MQTT").u8(3).u8(2).u16(60).str("c")),
       ReasonCode::unsupported_protocol_version},
      {"connect: MQIsdp level 4", v311,
       packet(0x10, Body{}.str("MQIsdp").u8(4).u8(2).u16(60).str("c")),
       ReasonCode::unsupported_protocol_version},
      {"connect: unknown protocol name", v311,
       packet(0x10, Body{}.str("MQTX").u8(4).u8(2).u16(60).str("c")),
       ReasonCode::unsupported_protocol_version},
      {"connect: lowercase protocol name", v311,
       packet(0x10, Body{}.str("mqtt").u8(4).u8(2).u16(60).str("c")),
       ReasonCode::unsupported_protocol_version},
      {"connect: protocol name truncated", v311, packet(0x10, Body{}.u16(4).raw("MQ")), malformed},
      {"connect: no keep alive", v311, packet(0x10, Body{}.str("MQTT").u8(4).u8(2)), malformed},
      {"connect: no client id", v311, packet(0x10, connect311(0x02)), malformed},
      {"connect: trailing byte", v311, packet(0x10, connect311(0x02).str("c").u8(0)), malformed},
      {"connect: client id overruns", v311, packet(0x10, connect311(0x02).u16(5).raw("abc")),
       malformed},
      {"connect: client id overlong NUL", v311, packet(0x10, connect311(0x02).str("\xC0\x80")),
       malformed},
      {"connect: client id U+0000", v311,
       packet(0x10, connect311(0x02).str(std::string_view("a\0", 2))), malformed},
      {"connect: client id surrogate", v311, packet(0x10, connect311(0x02).str("\xED\xA0\x80")),
       malformed},
      {"connect: will topic wildcard", v311,
       packet(0x10, connect311(0x06).str("c").str("a/#").str("p")), ReasonCode::topic_name_invalid},
      {"connect: will topic empty", v311, packet(0x10, connect311(0x06).str("c").str("").str("p")),
       ReasonCode::topic_name_invalid},
      {"connect: will topic bad UTF-8", v311,
       packet(0x10, connect311(0x06).str("c").str("\xFF").str("p")), malformed},
      {"connect: will payload missing", v311, packet(0x10, connect311(0x06).str("c").str("t")),
       malformed},
      {"connect: user name missing", v311, packet(0x10, connect311(0x82).str("c")), malformed},
      {"connect: user name bad UTF-8", v311,
       packet(0x10, connect311(0x82).str("c").str("\xE4\xB8")), malformed},
      {"connect: password missing", v311, packet(0x10, connect311(0xC2).str("c").str("u")),
       malformed},
      {"connect v5: no property length", v5, packet(0x10, Body{}.str("MQTT").u8(5).u8(2).u16(60)),
       malformed},
      {"connect v5: unknown property", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x05).u8(0)).str("c")), malformed},
      {"connect v5: property id 0", v5, packet(0x10, connect5(0x02, Body{}.u8(0x00)).str("c")),
       malformed},
      {"connect v5: property beyond table", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x7F)).str("c")), malformed},
      {"connect v5: topic alias not allowed", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x23).u16(1)).str("c")), malformed},
      {"connect v5: will delay not allowed outside will", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x18).u32(1)).str("c")), malformed},
      {"connect v5: duplicate session expiry", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x11).u32(1).u8(0x11).u32(2)).str("c")), protocol},
      {"connect v5: duplicate auth method", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x15).str("a").u8(0x15).str("b")).str("c")), protocol},
      {"connect v5: receive maximum 0", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x21).u16(0)).str("c")), protocol},
      {"connect v5: maximum packet size 0", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x27).u32(0)).str("c")), protocol},
      {"connect v5: request problem information 2", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x17).u8(2)).str("c")), protocol},
      {"connect v5: request response information 2", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x19).u8(2)).str("c")), protocol},
      {"connect v5: auth data without method", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x16).str("d")).str("c")), protocol},
      {"connect v5: property length overruns packet", v5,
       packet(0x10, Body{}.str("MQTT").u8(5).u8(2).u16(60).vbi(20).u8(0x11)), malformed},
      {"connect v5: property value overruns property length", v5,
       packet(0x10, Body{}.str("MQTT").u8(5).u8(2).u16(60).vbi(3).u8(0x11).u16(0).u16(0).str("c")),
       malformed},
      {"connect v5: user property value missing", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x26).str("k")).str("c")), malformed},
      {"connect v5: user property bad UTF-8", v5,
       packet(0x10, connect5(0x02, Body{}.u8(0x26).str("k").str("\xC1\xBF")).str("c")), malformed},
      {"connect v5: property length 5 bytes", v5,
       packet(0x10,
              Body{}.str("MQTT").u8(5).u8(2).u16(60).u8(0x80).u8(0x80).u8(0x80).u8(0x80).u8(0x01)),
       malformed},
      {"connect v5: will payload format 2", v5,
       packet(0x10, connect5(0x06).str("c").props(Body{}.u8(0x01).u8(2)).str("t").str("p")),
       protocol},
      {"connect v5: session expiry in will", v5,
       packet(0x10, connect5(0x06).str("c").props(Body{}.u8(0x11).u32(1)).str("t").str("p")),
       malformed},
      {"connect v5: will response topic wildcard", v5,
       packet(0x10, connect5(0x06).str("c").props(Body{}.u8(0x08).str("r/+")).str("t").str("p")),
       protocol},
      {"connect v5: will properties missing", v5, packet(0x10, connect5(0x06).str("c")), malformed},
      {"connect v5: repeated user properties", v5,
       packet(
           0x10,
           connect5(0x02, Body{}.u8(0x26).str("a").str("1").u8(0x26).str("a").str("2")).str("c")),
       success},
  };
}

std::vector<ErrorCase> publish_cases() {
  return {
      {"publish: QoS 3 [MQTT-3.3.1-4]", v311, packet(0x36, Body{}.str("t").u16(1)), malformed},
      {"publish: DUP with QoS 0 [MQTT-3.3.1-2]", v311, packet(0x38, Body{}.str("t")), malformed},
      {"publish: packet id 0", v311, packet(0x32, Body{}.str("t").u16(0)), protocol},
      {"publish v5: packet id 0", v5, packet(0x34, Body{}.str("t").u16(0).u8(0)), protocol},
      {"publish: '+' in topic", v311, packet(0x30, Body{}.str("a/+")),
       ReasonCode::topic_name_invalid},
      {"publish: '#' in topic", v311, packet(0x30, Body{}.str("#")),
       ReasonCode::topic_name_invalid},
      {"publish v5: wildcard in topic", v5, packet(0x30, Body{}.str("a/#").u8(0)),
       ReasonCode::topic_name_invalid},
      {"publish: empty topic", v311, packet(0x30, Body{}.str("")), ReasonCode::topic_name_invalid},
      {"publish v5: empty topic without alias", v5, packet(0x30, Body{}.str("").u8(0)), protocol},
      {"publish v5: empty topic with alias", v5,
       packet(0x30, Body{}.str("").props(Body{}.u8(0x23).u16(3))), success},
      {"publish v5: topic alias 0 [MQTT-3.3.2-8]", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x23).u16(0))),
       ReasonCode::topic_alias_invalid},
      {"publish: topic bad UTF-8", v311, packet(0x30, Body{}.str("\xED\xBF\xBF")), malformed},
      {"publish: topic with U+0000", v311, packet(0x30, Body{}.str(std::string_view("a\0", 2))),
       malformed},
      {"publish: topic overruns", v311, packet(0x30, Body{}.u16(9).raw("abc")), malformed},
      {"publish: packet id truncated", v311, packet(0x32, Body{}.str("t").u8(1)), malformed},
      {"publish: empty body", v311, packet(0x30, Body{}), malformed},
      {"publish v5: no property length", v5, packet(0x30, Body{}.str("t")), malformed},
      {"publish v5: subscription id from client [MQTT-3.3.4-6]", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x0B).vbi(1))), protocol},
      {"publish v5: subscription ids from server", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x0B).vbi(1).u8(0x0B).vbi(200))), success,
       Sender::server},
      {"publish v5: subscription id 0 from server", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x0B).vbi(0))), protocol, Sender::server},
      {"publish v5: payload format indicator 2", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x01).u8(2))), protocol},
      {"publish v5: response topic wildcard", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x08).str("r/#"))), protocol},
      {"publish v5: response topic empty", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x08).str(""))), protocol},
      {"publish v5: session expiry not allowed", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x11).u32(1))), malformed},
      {"publish v5: duplicate message expiry", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x02).u32(1).u8(0x02).u32(1))), protocol},
      {"publish v5: duplicate topic alias", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x23).u16(1).u8(0x23).u16(1))), protocol},
      {"publish v5: content type bad UTF-8", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x03).str("\x80"))), malformed},
      {"publish v5: subscription id 5 bytes", v5,
       packet(0x30,
              Body{}.str("t").props(Body{}.u8(0x0B).u8(0xFF).u8(0xFF).u8(0xFF).u8(0xFF).u8(0x01))),
       malformed, Sender::server},
      {"publish v5: non-UTF-8 payload with indicator 1 is the broker's call", v5,
       packet(0x30, Body{}.str("t").props(Body{}.u8(0x01).u8(1)).raw("\xFF")), success},
  };
}

std::vector<ErrorCase> ack_cases() {
  return {
      {"puback: flags", v311, packet(0x41, Body{}.u16(1)), malformed},
      {"pubrec: flags", v311, packet(0x52, Body{}.u16(1)), malformed},
      {"pubrel: flags 0 [MQTT-3.6.1-1]", v311, packet(0x60, Body{}.u16(1)), malformed},
      {"pubrel: flags 0b0010", v311, packet(0x62, Body{}.u16(1)), success},
      {"pubrel 3.1.1: DUP set", v311, packet(0x6A, Body{}.u16(1)), malformed},
      {"pubrel 3.1: DUP set on retransmission", v31, packet(0x6A, Body{}.u16(1)), success},
      {"pubcomp: flags", v311, packet(0x78, Body{}.u16(1)), malformed},
      {"puback: packet id 0", v311, packet(0x40, Body{}.u16(0)), protocol},
      {"pubcomp v5: packet id 0", v5, packet(0x70, Body{}.u16(0)), protocol},
      {"puback: too short", v311, packet(0x40, Body{}.u8(1)), malformed},
      {"puback 3.1.1: remaining length 3", v311, packet(0x40, Body{}.u16(1).u8(0)), malformed},
      {"puback v5: remaining length 3", v5, packet(0x40, Body{}.u16(1).u8(0x10)), success},
      {"puback v5: unknown reason", v5, packet(0x40, Body{}.u16(1).u8(0x05)), protocol},
      {"pubrel v5: PUBACK-only reason", v5, packet(0x62, Body{}.u16(1).u8(0x10)), protocol},
      {"pubrel v5: packet id not found", v5, packet(0x62, Body{}.u16(1).u8(0x92)), success},
      {"pubrec v5: reason string", v5,
       packet(0x50, Body{}.u16(1).u8(0x80).props(Body{}.u8(0x1F).str("no"))), success},
      {"puback v5: duplicate reason string", v5,
       packet(0x40, Body{}.u16(1).u8(0).props(Body{}.u8(0x1F).str("a").u8(0x1F).str("b"))),
       protocol},
      {"puback v5: topic alias not allowed", v5,
       packet(0x40, Body{}.u16(1).u8(0).props(Body{}.u8(0x23).u16(1))), malformed},
      {"puback v5: property length overruns", v5, packet(0x40, Body{}.u16(1).u8(0).vbi(4).u8(0x1F)),
       malformed},
      {"puback v5: trailing byte after properties", v5,
       packet(0x40, Body{}.u16(1).u8(0).vbi(0).u8(0)), malformed},
  };
}

std::vector<ErrorCase> subscribe_cases() {
  return {
      {"subscribe: flags 0 [MQTT-3.8.1-1]", v311, packet(0x80, Body{}.u16(1).str("a").u8(0)),
       malformed},
      {"subscribe: flags 0b0011", v311, packet(0x83, Body{}.u16(1).str("a").u8(0)), malformed},
      {"subscribe 3.1: DUP on retransmission", v31, packet(0x8A, Body{}.u16(1).str("a").u8(0)),
       success},
      {"subscribe: packet id 0", v311, packet(0x82, Body{}.u16(0).str("a").u8(0)), protocol},
      {"subscribe: no filters [MQTT-3.8.3-3]", v311, packet(0x82, Body{}.u16(1)), protocol},
      {"subscribe v5: no filters", v5, packet(0x82, Body{}.u16(1).u8(0)), protocol},
      {"subscribe: reserved option bits [MQTT-3-8.3-4]", v311,
       packet(0x82, Body{}.u16(1).str("a").u8(0x04)), malformed},
      {"subscribe: QoS 3", v311, packet(0x82, Body{}.u16(1).str("a").u8(0x03)), malformed},
      {"subscribe: options byte missing", v311, packet(0x82, Body{}.u16(1).str("a")), malformed},
      {"subscribe: filter bad UTF-8", v311, packet(0x82, Body{}.u16(1).str("\xC0\xAF").u8(0)),
       malformed},
      {"subscribe: invalid filter is the broker's call", v311,
       packet(0x82, Body{}.u16(1).str("a/#/b").u8(0)), success},
      {"subscribe: empty filter is the broker's call", v311,
       packet(0x82, Body{}.u16(1).str("").u8(0)), success},
      {"subscribe v5: reserved option bits [MQTT-3.8.3-5]", v5,
       packet(0x82, Body{}.u16(1).u8(0).str("a").u8(0x40)), malformed},
      {"subscribe v5: QoS 3", v5, packet(0x82, Body{}.u16(1).u8(0).str("a").u8(0x03)), protocol},
      {"subscribe v5: retain handling 3", v5, packet(0x82, Body{}.u16(1).u8(0).str("a").u8(0x30)),
       protocol},
      {"subscribe v5: no local on shared [MQTT-3.8.3-4]", v5,
       packet(0x82, Body{}.u16(1).u8(0).str("$share/g/a").u8(0x04)), protocol},
      {"subscribe v5: no local on non-shared", v5,
       packet(0x82, Body{}.u16(1).u8(0).str("a").u8(0x04)), success},
      {"subscribe v5: subscription id 0", v5,
       packet(0x82, Body{}.u16(1).props(Body{}.u8(0x0B).vbi(0)).str("a").u8(0)), protocol},
      {"subscribe v5: subscription id twice", v5,
       packet(0x82, Body{}.u16(1).props(Body{}.u8(0x0B).vbi(1).u8(0x0B).vbi(2)).str("a").u8(0)),
       protocol},
      {"subscribe v5: reason string not allowed", v5,
       packet(0x82, Body{}.u16(1).props(Body{}.u8(0x1F).str("x")).str("a").u8(0)), malformed},
      {"subscribe v5: no property length", v5, packet(0x82, Body{}.u16(1)), malformed},
      {"unsubscribe: flags 0 [MQTT-3.10.1-1]", v311, packet(0xA0, Body{}.u16(1).str("a")),
       malformed},
      {"unsubscribe 3.1: DUP on retransmission", v31, packet(0xAA, Body{}.u16(1).str("a")),
       success},
      {"unsubscribe: packet id 0", v311, packet(0xA2, Body{}.u16(0).str("a")), protocol},
      {"unsubscribe: no filters [MQTT-3.10.3-2]", v311, packet(0xA2, Body{}.u16(1)), protocol},
      {"unsubscribe v5: no filters", v5, packet(0xA2, Body{}.u16(1).u8(0)), protocol},
      {"unsubscribe: filter overruns", v311, packet(0xA2, Body{}.u16(1).u16(3).raw("a")),
       malformed},
      {"unsubscribe: filter bad UTF-8", v311, packet(0xA2, Body{}.u16(1).str("\xF8")), malformed},
      {"unsubscribe v5: subscription id not allowed", v5,
       packet(0xA2, Body{}.u16(1).props(Body{}.u8(0x0B).vbi(1)).str("a")), malformed},
      {"unsubscribe v5: user property", v5,
       packet(0xA2, Body{}.u16(1).props(Body{}.u8(0x26).str("k").str("v")).str("a")), success},
  };
}

std::vector<ErrorCase> other_cases() {
  return {
      {"reserved packet type 0", v311, Bytes{0x00, 0x00}, malformed},
      {"pingreq", v311, Bytes{0xC0, 0x00}, success},
      {"pingreq: flags", v311, Bytes{0xC1, 0x00}, malformed},
      {"pingreq: body", v311, Bytes{0xC0, 0x01, 0x00}, malformed},
      {"pingresp: body", v5, Bytes{0xD0, 0x01, 0x00}, malformed},
      {"remaining length longer than the bytes", v311, Bytes{0xC0, 0x01}, malformed},
      {"bytes beyond the remaining length", v311, Bytes{0xC0, 0x00, 0x00}, malformed},
      {"empty input", v311, Bytes{}, malformed},
      {"length field truncated", v311, Bytes{0x30, 0x80}, malformed},
      {"5-byte remaining length", v311, Bytes{0x30, 0x80, 0x80, 0x80, 0x80, 0x00}, malformed},
      {"disconnect 3.1.1", v311, Bytes{0xE0, 0x00}, success},
      {"disconnect 3.1.1: body", v311, Bytes{0xE0, 0x01, 0x00}, malformed},
      {"disconnect: flags", v311, Bytes{0xE1, 0x00}, malformed},
      {"disconnect v5: reason only", v5, Bytes{0xE0, 0x01, 0x04}, success},
      {"disconnect v5: server-only reason from client", v5, Bytes{0xE0, 0x01, 0x8B}, protocol},
      {"disconnect v5: server-only reason from server", v5, Bytes{0xE0, 0x01, 0x8B}, success,
       Sender::server},
      {"disconnect v5: client-only reason from server", v5, Bytes{0xE0, 0x01, 0x04}, protocol,
       Sender::server},
      {"disconnect v5: unknown reason", v5, Bytes{0xE0, 0x01, 0x05}, protocol},
      {"disconnect v5: session expiry", v5,
       packet(0xE0, Body{}.u8(0).props(Body{}.u8(0x11).u32(0))), success},
      {"disconnect v5: topic alias not allowed", v5,
       packet(0xE0, Body{}.u8(0).props(Body{}.u8(0x23).u16(1))), malformed},
      {"disconnect v5: property length overruns", v5, Bytes{0xE0, 0x02, 0x00, 0x05}, malformed},
      {"auth 3.1.1: reserved type", v311, Bytes{0xF0, 0x00}, malformed},
      {"auth v5: remaining length 0", v5, Bytes{0xF0, 0x00}, success},
      {"auth v5: flags", v5, Bytes{0xF1, 0x00}, malformed},
      {"auth v5: continue with method", v5,
       packet(0xF0, Body{}.u8(0x18).props(Body{}.u8(0x15).str("SCRAM").u8(0x16).str("x"))),
       success},
      {"auth v5: properties without method", v5,
       packet(0xF0, Body{}.u8(0x18).props(Body{}.u8(0x1F).str("r"))), protocol},
      {"auth v5: data without method", v5,
       packet(0xF0, Body{}.u8(0x18).props(Body{}.u8(0x16).str("x"))), protocol},
      {"auth v5: unknown reason", v5, Bytes{0xF0, 0x01, 0x01}, protocol},
      {"auth v5: session expiry not allowed", v5,
       packet(0xF0, Body{}.u8(0x18).props(Body{}.u8(0x11).u32(1))), malformed},
      // Server-to-client packets, decoded for tests and benchmarks.
      {"connack: reserved acknowledge flags [MQTT-3.2.2-1]", v311, Bytes{0x20, 0x02, 0x02, 0x00},
       malformed},
      {"connack 3.1.1: reserved return code", v311, Bytes{0x20, 0x02, 0x00, 0x06}, protocol},
      {"connack: session present on refusal", v311, Bytes{0x20, 0x02, 0x01, 0x05}, protocol},
      {"connack 3.1.1: trailing byte", v311, Bytes{0x20, 0x03, 0x00, 0x00, 0x00}, malformed},
      {"connack: flags", v311, Bytes{0x21, 0x02, 0x00, 0x00}, malformed},
      {"connack v5: unknown reason", v5, Bytes{0x20, 0x03, 0x00, 0x01, 0x00}, protocol},
      {"connack v5: no property length", v5, Bytes{0x20, 0x02, 0x00, 0x00}, malformed},
      {"connack v5: maximum QoS 2", v5,
       packet(0x20, Body{}.u8(0).u8(0).props(Body{}.u8(0x24).u8(2))), protocol},
      {"connack v5: retain available 2", v5,
       packet(0x20, Body{}.u8(0).u8(0).props(Body{}.u8(0x25).u8(2))), protocol},
      {"connack v5: shared subscription available 2", v5,
       packet(0x20, Body{}.u8(0).u8(0).props(Body{}.u8(0x2A).u8(2))), protocol},
      {"connack v5: will delay not allowed", v5,
       packet(0x20, Body{}.u8(0).u8(0).props(Body{}.u8(0x18).u32(2))), malformed},
      {"suback 3.1.1: code 3", v311, Bytes{0x90, 0x03, 0x00, 0x01, 0x03}, protocol},
      {"suback 3.1.1: failure", v311, Bytes{0x90, 0x03, 0x00, 0x01, 0x80}, success},
      {"suback v5: unknown code", v5, Bytes{0x90, 0x04, 0x00, 0x01, 0x00, 0x10}, protocol},
      {"suback: packet id 0", v311, Bytes{0x90, 0x03, 0x00, 0x00, 0x00}, protocol},
      {"unsuback 3.1.1: trailing byte", v311, Bytes{0xB0, 0x03, 0x00, 0x01, 0x00}, malformed},
      {"unsuback v5: unknown code", v5, Bytes{0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}, protocol},
      {"unsuback v5: no subscription existed", v5, Bytes{0xB0, 0x04, 0x00, 0x01, 0x00, 0x11},
       success},
  };
}

void run_cases(const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(static_cast<int>(decode_rc(c.bytes, c.version, c.sender)),
              static_cast<int>(c.expected))
        << c.name;
  }
}

TEST(CodecDecodeErrors, Connect) { run_cases(connect_cases()); }
TEST(CodecDecodeErrors, Publish) { run_cases(publish_cases()); }
TEST(CodecDecodeErrors, Acks) { run_cases(ack_cases()); }
TEST(CodecDecodeErrors, SubscribeAndUnsubscribe) { run_cases(subscribe_cases()); }
TEST(CodecDecodeErrors, OtherPackets) { run_cases(other_cases()); }

TEST(CodecDecodeErrors, ThreeArgumentDecodeIsServerSide) {
  const Bytes with_subscription_id = packet(0x30, Body{}.str("t").props(Body{}.u8(0x0B).vbi(1)));
  Packet out;
  EXPECT_EQ(decode(with_subscription_id, v5, out), ReasonCode::protocol_error);
  EXPECT_FALSE(decode(with_subscription_id, v5, out, Sender::server));
}

// Every proper prefix of a valid packet, re-labelled with that prefix's length, is malformed
// (or a different valid packet); none reads out of bounds.
TEST(CodecDecodeErrors, TruncatedConnectIsMalformed) {
  const Body body = connect5(0xEE, Body{}.u8(0x11).u32(10))
                        .str("client")
                        .props(Body{}.u8(0x18).u32(5))
                        .str("will/topic")
                        .str("payload")
                        .str("user")
                        .str("password");
  for (std::size_t cut = 0; cut < body.bytes.size(); ++cut) {
    Body truncated;
    truncated.bytes.assign(body.bytes.begin(), body.bytes.begin() + static_cast<long>(cut));
    EXPECT_EQ(decode_rc(packet(0x10, truncated), v5), malformed) << "cut at " << cut;
  }
  EXPECT_EQ(decode_rc(packet(0x10, body), v5), success);
}

// ---------------------------------------------------------------------------------------------
// Values of successfully decoded packets.

TEST(CodecDecodeValues, PublishV311) {
  const auto publish =
      decode_as<Publish>(packet(0x3B, Body{}.str("a/b").u16(0x1234).raw("hello")), v311);
  EXPECT_EQ(publish.qos, 1);
  EXPECT_TRUE(publish.dup);
  EXPECT_TRUE(publish.retain);
  EXPECT_EQ(publish.topic, "a/b");
  EXPECT_EQ(publish.packet_id, 0x1234);
  EXPECT_EQ(publish.payload, "hello");
}

TEST(CodecDecodeValues, PublishV5EmptyTopicWithAlias) {
  const auto publish =
      decode_as<Publish>(packet(0x30, Body{}.str("").props(Body{}.u8(0x23).u16(3)).raw("x")), v5);
  EXPECT_EQ(publish.topic, "");
  EXPECT_EQ(publish.properties.topic_alias, 3);
  EXPECT_EQ(publish.payload, "x");
}

TEST(CodecDecodeValues, PublishReusesThePreviousPacketCleanly) {
  Packet out;
  ASSERT_FALSE(decode(packet(0x32, Body{}
                                       .str("first/topic")
                                       .u16(5)
                                       .props(Body{}.u8(0x02).u32(9).u8(0x26).str("k").str("v"))
                                       .raw("one")),
                      v5, out));
  ASSERT_FALSE(decode(packet(0x30, Body{}.str("t").u8(0).raw("2")), v5, out));
  const Publish expected{0, false, false, "t", 0, {}, "2"};
  EXPECT_EQ(std::get<Publish>(out), expected);
}

TEST(CodecDecodeValues, SubscribeV5Options) {
  const auto subscribe = decode_as<Subscribe>(
      packet(0x82, Body{}
                       .u16(10)
                       .props(Body{}.u8(0x0B).vbi(268'435'455).u8(0x26).str("a").str("b"))
                       .str("a/+")
                       .u8(0x2E)  // retain handling 2, RAP, no local, QoS 2
                       .str("$share/g/x")
                       .u8(0x01)),
      v5);
  EXPECT_EQ(subscribe.packet_id, 10);
  EXPECT_EQ(subscribe.properties.subscription_identifiers, std::vector<std::uint32_t>{268'435'455});
  ASSERT_EQ(subscribe.subscriptions.size(), 2u);
  EXPECT_EQ(subscribe.subscriptions[0].first, "a/+");
  const SubscribeOptions expected_first{2, true, true, 2};
  EXPECT_EQ(subscribe.subscriptions[0].second, expected_first);
  EXPECT_EQ(subscribe.subscriptions[1].first, "$share/g/x");
  EXPECT_EQ(subscribe.subscriptions[1].second.qos, 1);
}

TEST(CodecDecodeValues, AckShortForms) {
  const auto two = decode_as<Ack>(Bytes{0x50, 0x02, 0x00, 0x07}, v5);
  EXPECT_EQ(two.type, PacketType::pubrec);
  EXPECT_EQ(two.packet_id, 7);
  EXPECT_EQ(two.reason_code, 0);
  const auto three = decode_as<Ack>(Bytes{0x40, 0x03, 0x00, 0x07, 0x10}, v5);
  EXPECT_EQ(three.reason_code, 0x10);
  EXPECT_TRUE(three.properties.empty());
  const auto disconnect = decode_as<Disconnect>(Bytes{0xE0, 0x00}, v5);
  EXPECT_EQ(disconnect.reason_code, 0);
  const auto with_will = decode_as<Disconnect>(Bytes{0xE0, 0x01, 0x04}, v5);
  EXPECT_EQ(with_will.reason_code, 0x04);
}

}  // namespace
}  // namespace credmq::mqtt
