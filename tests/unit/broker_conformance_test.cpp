// Conformance tests named after the normative statements of MQTT 3.1.1, 5.0 and 3.1 that the
// other broker tests did not cover (docs/conformance.md maps every statement to its test).
// Raw bytes in, exact bytes out, against the in-process broker of broker_test_support.hpp.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;
using Clock = std::chrono::steady_clock;

// Bytes written as small integers, for exact-byte expectations.
std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// A two-byte length followed by the text.
std::string str(std::string_view text) {
  return bytes({static_cast<int>(text.size() >> 8), static_cast<int>(text.size() & 0xFF)}) +
         std::string(text);
}

// Fixed header (body shorter than 128 bytes) followed by the body.
std::string packet(int first_byte, const std::string& body) {
  return bytes({first_byte, static_cast<int>(body.size())}) + body;
}

// CONNECT without user name (the anonymous instance accepts it): protocol name and level,
// flags, keep alive 60, properties (5.0 only) and client id.
std::string raw_connect(std::string_view name, int level, int flags, std::string_view client_id,
                        const std::string& properties = "") {
  std::string body = str(name) + bytes({level, flags, 0, 60});
  if (level == 5) body += bytes({static_cast<int>(properties.size())}) + properties;
  return packet(0x10, body + str(client_id));
}

// The DISCONNECT credmq sends: the reason code and its Reason String.
std::string disconnect_bytes(mqtt::ReasonCode reason) {
  const std::string text = mqtt::make_error_code(reason).message();
  const int size = static_cast<int>(text.size());
  return bytes({0xE0, 5 + size, static_cast<int>(reason), 3 + size, 0x1F, 0, size}) + text;
}

// True if the broker closed the connection without sending anything more.
bool closed_silently(Client& c) { return !c.receive_bytes() && c.eof(); }

class ConformanceTest : public BrokerTest {
 protected:
  std::unique_ptr<Client> connected5(mqtt::Connect connect, mqtt::Connack* connack_out = nullptr) {
    auto c = client(ProtocolVersion::v5);
    auto connack = c->connect(connect);
    EXPECT_EQ(connack.reason_code, 0) << connect.client_id;
    if (connack_out) *connack_out = connack;
    return c;
  }
  // Sends `raw` on a fresh connected client of `version`; returns the client.
  std::unique_ptr<Client> connected_and_sent(ProtocolVersion version, const std::string& raw) {
    auto c = connected("sender", version);
    c->send_bytes(raw);
    return c;
  }
};

class Conformance311 : public ConformanceTest {};
class Conformance5 : public ConformanceTest {};
class Conformance31 : public ConformanceTest {};

// =========================================================================================
// MQTT 3.1.1

TEST_F(Conformance311, MQTT_3_1_0_2_SecondConnectClosesWithoutReplyAndPublishesWill) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto c = client();
  auto connect = make_connect("twice", user());
  connect.will = mqtt::Will{"will/twice", "gone", 0, false, {}};
  ASSERT_EQ(c->connect(connect).reason_code, 0);
  c->send(make_connect("twice", user()));
  EXPECT_TRUE(closed_silently(*c));
  expect_publish(*watcher, "will/twice", "gone");  // a protocol violation is no DISCONNECT
}

TEST_F(Conformance311, MQTT_3_1_2_1_UnknownProtocolNameGetsReturnCode1) {
  auto c = client();
  c->send_bytes(raw_connect("MQTX", 4, 0x02, "c"));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x01}));
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(Conformance311, MQTT_3_1_2_3_ReservedConnectFlagClosesWithoutConnack) {
  auto c = client();
  c->send_bytes(raw_connect("MQTT", 4, 0x03, "c"));
  EXPECT_TRUE(closed_silently(*c));  // [MQTT-3.1.4-1]: no CONNACK for a malformed CONNECT
}

TEST_F(Conformance311, MQTT_3_1_2_22_PasswordWithoutUserNameClosesWithoutConnack) {
  auto c = client();
  c->send_bytes(packet(0x10, str("MQTT") + bytes({4, 0x42, 0, 60}) + str("c") + str("pw")));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance311, MQTT_3_1_2_7_RetainedMessagesOutliveThePublishersSession) {
  {
    auto pub = connected("short-lived");
    pub->publish("keep/me", "retained", 1, true);
    pub->send(mqtt::Disconnect{});
    EXPECT_TRUE(pub->wait_eof());
  }
  auto sub = connected("late");
  sub->subscribe("keep/#", 0);
  EXPECT_EQ(sub->receive_bytes(), packet(0x31, str("keep/me") + "retained"));
}

TEST_F(Conformance311, MQTT_3_1_2_16_17_WillRetainFlagIsHonoured) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  for (bool retain : {true, false}) {
    auto c = client();
    auto connect = make_connect(retain ? "retained-will" : "plain-will", user());
    connect.will = mqtt::Will{retain ? "will/r" : "will/n", "bye", 1, retain, {}};
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->close();
    // An established subscription gets RETAIN 0 either way [MQTT-3.3.1-9].
    expect_publish(*watcher, retain ? "will/r" : "will/n", "bye");
  }
  auto late = connected("late");
  late->subscribe("will/+", 1);
  auto m = expect_publish(*late, "will/r", "bye");  // only the retained will
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.qos, 1);
  late->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  late->ping();
}

// One client with Keep Alive 0 and one with 1 s, for each version: the second is closed after
// 1.5 s, the first never is.
TEST_F(Conformance311, MQTT_3_1_2_24_KeepAliveOneAndAHalfTimesAndZeroMeansNever) {
  auto idle3 = client();
  ASSERT_EQ(idle3->connect(make_connect("idle3", user(), true, 0)).reason_code, 0);
  auto idle5 = client(ProtocolVersion::v5);
  mqtt::Connack connack5;
  connack5 = idle5->connect(make_connect("idle5", user(), true, 0));
  ASSERT_EQ(connack5.reason_code, 0);
  EXPECT_FALSE(
      connack5.properties.server_keep_alive);  // the client's value is used [MQTT-3.2.2-22]

  auto timed3 = client();
  auto timed5 = client(ProtocolVersion::v5);
  timed3->send(make_connect("timed3", user(), true, 1));
  timed5->send(make_connect("timed5", user(), true, 1));
  timed3->expect<mqtt::Connack>();
  timed5->expect<mqtt::Connack>();
  const auto connected_at = Clock::now();
  EXPECT_EQ(timed5->receive_bytes(3s), disconnect_bytes(mqtt::ReasonCode::keep_alive_timeout));
  EXPECT_TRUE(timed5->wait_eof(3s));
  EXPECT_TRUE(timed3->wait_eof(3s));
  const auto elapsed = Clock::now() - connected_at;
  EXPECT_GE(elapsed, 1400ms);  // 1.5 x 1 s, less the time the CONNACK took to reach us
  EXPECT_LT(elapsed, 3s);
  idle3->ping();  // Keep Alive 0: still connected after 1.5 s of silence
  idle5->ping();
}

TEST_F(Conformance311, MQTT_3_1_3_5_AlphanumericClientIdOf23BytesIsAccepted) {
  auto c = client();
  c->send(make_connect("abcdefghijklmnopqrstuVW", user()));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));
  c->ping();
}

TEST_F(Conformance311, MQTT_3_1_3_6_EmptyClientIdsGetDistinctIds) {
  auto a = client();
  auto b = client();
  a->send(make_connect("", user(), true));
  EXPECT_EQ(a->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));
  b->send(make_connect("", user(), true));
  EXPECT_EQ(b->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));
  a->ping();  // neither took the other over
  b->ping();
  EXPECT_EQ(broker_->stats().sessions, 2u);
}

TEST_F(Conformance311, MQTT_3_1_3_8_EmptyClientIdWithCleanSession0GetsReturnCode2) {
  auto c = client();
  c->send(make_connect("", user(), false));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x02}));
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(Conformance311, MQTT_3_1_4_5_NothingIsProcessedAfterARefusedConnect) {
  auto watcher = connected("watcher");
  watcher->subscribe("pipelined", 0);
  auto c = client();
  std::string burst;
  mqtt::encode(make_connect("refused", "bad"), ProtocolVersion::v3_1_1, burst);
  mqtt::encode(mqtt::Subscribe{1, {}, {{"pipelined", mqtt::SubscribeOptions{0}}}},
               ProtocolVersion::v3_1_1, burst);
  mqtt::encode(mqtt::Publish{0, false, false, "pipelined", 0, {}, "must not be routed"},
               ProtocolVersion::v3_1_1, burst);
  mqtt::encode(mqtt::Pingreq{}, ProtocolVersion::v3_1_1, burst);
  c->send_bytes(burst);
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x04}));
  EXPECT_TRUE(closed_silently(*c));  // no SUBACK, no PINGRESP [MQTT-3.2.2-5]
  auto pub = connected("pub");
  pub->publish("pipelined", "marker");
  expect_publish(*watcher, "pipelined", "marker");
}

TEST_F(Conformance311, MQTT_3_2_2_1_2_3_SessionPresent) {
  auto connack_bytes = [this](bool clean) {
    auto c = client();
    c->send(make_connect("sp", user(), clean));
    auto reply = c->receive_bytes();
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
    return reply;
  };
  EXPECT_EQ(connack_bytes(false), bytes({0x20, 0x02, 0x00, 0x00}));  // no session yet
  EXPECT_EQ(connack_bytes(false), bytes({0x20, 0x02, 0x01, 0x00}));  // resumed
  EXPECT_EQ(connack_bytes(true), bytes({0x20, 0x02, 0x00, 0x00}));   // discarded
  EXPECT_EQ(connack_bytes(false), bytes({0x20, 0x02, 0x00, 0x00}));  // clean session ended it
}

TEST_F(Conformance311, MQTT_3_3_1_2_DupWithQos0Closes) {
  auto c = connected_and_sent(ProtocolVersion::v3_1_1, packet(0x38, str("t") + "x"));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance311, MQTT_3_3_1_3_DupIsNotPropagatedToSubscribers) {
  auto sub = connected("sub");
  sub->subscribe("d", 1);
  auto pub = connected("pub");
  pub->send(mqtt::Publish{1, false, true, "d", 9, {}, "x"});  // DUP 1 from the publisher
  EXPECT_EQ(pub->receive_bytes(), bytes({0x40, 0x02, 0x00, 0x09}));
  // First delivery to the subscriber: DUP 0, the broker's own packet id (1).
  EXPECT_EQ(sub->receive_bytes(), packet(0x32, str("d") + bytes({0, 1}) + "x"));
}

TEST_F(Conformance311, MQTT_3_3_1_5_7_8_9_12_RetainFlags) {
  auto live = connected("live");
  live->subscribe("r", 2);
  auto pub = connected("pub");
  pub->publish("r", "first", 1, true);
  // Established subscription: RETAIN 0 [MQTT-3.3.1-9].
  EXPECT_EQ(live->receive_bytes(), packet(0x32, str("r") + bytes({0, 1}) + "first"));
  live->send(mqtt::Ack{mqtt::PacketType::puback, 1, 0, {}});
  pub->publish("r", "second", 0, false);  // RETAIN 0 replaces nothing [MQTT-3.3.1-12]
  EXPECT_EQ(live->receive_bytes(), packet(0x30, str("r") + "second"));
  // New subscription: the retained message with RETAIN 1 [MQTT-3.3.1-8], at the minimum of
  // its stored QoS (1) and the granted QoS (2) [MQTT-3.3.1-5].
  auto late = connected("late");
  late->subscribe("r", 2);
  EXPECT_EQ(late->receive_bytes(), packet(0x33, str("r") + bytes({0, 1}) + "first"));
  // A QoS 0 retained message replaces it [MQTT-3.3.1-7].
  pub->publish("r", "third", 0, true);
  EXPECT_EQ(live->receive_bytes(), packet(0x30, str("r") + "third"));
  auto later = connected("later");
  later->subscribe("r", 2);
  EXPECT_EQ(later->receive_bytes(), packet(0x31, str("r") + "third"));
}

TEST_F(Conformance311, MQTT_3_3_1_10_11_EmptyRetainedMessageIsForwardedAndDeletes) {
  auto live = connected("live");
  live->subscribe("e", 0);
  auto pub = connected("pub");
  pub->publish("e", "x", 0, true);
  EXPECT_EQ(live->receive_bytes(), packet(0x30, str("e") + "x"));
  pub->publish("e", "", 0, true);
  EXPECT_EQ(live->receive_bytes(), packet(0x30, str("e")));  // processed as normal
  auto late = connected("late");
  late->subscribe("e", 0);
  pub->publish("e", "marker");
  EXPECT_EQ(late->receive_bytes(), packet(0x30, str("e") + "marker"));  // nothing retained
}

TEST_F(Conformance311, MQTT_3_3_2_2_WildcardInTopicNameCloses) {
  for (const char* topic : {"a/+", "#", "a/#"}) {
    auto c = connected_and_sent(ProtocolVersion::v3_1_1, packet(0x30, str(topic)));
    EXPECT_TRUE(closed_silently(*c)) << topic;
  }
}

TEST_F(Conformance311, MQTT_1_5_3_1_2_IllFormedUtf8AndNulClose) {
  // PUBLISH topic with an encoded surrogate; SUBSCRIBE filter with U+0000.
  for (const std::string& raw :
       {packet(0x30, str("\xED\xA0\x80")),
        packet(0x82, bytes({0, 1}) + str(std::string_view("a\0b", 3)) + bytes({0}))}) {
    auto c = connected_and_sent(ProtocolVersion::v3_1_1, raw);
    EXPECT_TRUE(closed_silently(*c));
  }
}

TEST_F(Conformance311, MQTT_1_5_3_3_4_7_3_4_NoNormalizationOfTopics) {
  auto sub = connected("sub");
  sub->subscribe("ACCOUNTS", 0, 1);
  sub->subscribe(
      "\xEF\xBB\xBF"
      "bom",
      0, 2);
  auto pub = connected("pub");
  pub->publish("Accounts", "case differs");
  pub->publish("bom", "BOM stripped");
  pub->publish(
      "\xEF\xBB\xBF"
      "bom",
      "with BOM");
  pub->publish("ACCOUNTS", "marker");
  // The BOM is part of the topic, byte for byte [MQTT-1.5.3-3].
  EXPECT_EQ(sub->receive_bytes(), packet(0x30, str("\xEF\xBB\xBF"
                                                   "bom") +
                                                   "with BOM"));
  expect_publish(*sub, "ACCOUNTS", "marker");
}

TEST_F(Conformance311, MQTT_2_3_1_1_PacketIdentifierZeroCloses) {
  auto c = connected_and_sent(ProtocolVersion::v3_1_1, packet(0x32, str("t") + bytes({0, 0})));
  EXPECT_TRUE(closed_silently(*c));
}

// PUBREL [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1], PUBACK and
// PINGREQ [MQTT-2.2.2-2] with reserved fixed-header flags: closed, nothing sent.
TEST_F(Conformance311, MQTT_2_2_2_2_ReservedFixedHeaderFlagsClose) {
  for (const std::string& raw :
       {packet(0x60, bytes({0, 1})), packet(0x80, bytes({0, 1}) + str("a") + bytes({0})),
        packet(0xA0, bytes({0, 1}) + str("a")), packet(0x41, bytes({0, 1})), packet(0xC1, "")}) {
    auto c = connected_and_sent(ProtocolVersion::v3_1_1, raw);
    EXPECT_TRUE(closed_silently(*c)) << static_cast<int>(static_cast<std::uint8_t>(raw[0]));
  }
}

TEST_F(Conformance311, MQTT_3_14_1_1_DisconnectWithReservedBitsClosesAndPublishesWill) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto c = client();
  auto connect = make_connect("sloppy", user());
  connect.will = mqtt::Will{"will/sloppy", "gone", 0, false, {}};
  ASSERT_EQ(c->connect(connect).reason_code, 0);
  c->send_bytes(bytes({0xE1, 0x00}));
  EXPECT_TRUE(closed_silently(*c));
  expect_publish(*watcher, "will/sloppy", "gone");  // not a valid DISCONNECT [MQTT-3.14.4-3]
}

TEST_F(Conformance311, MQTT_3_8_3_3_4_SubscribeWithoutFiltersOrWithQos3Closes) {
  for (const std::string& raw :
       {packet(0x82, bytes({0, 1})), packet(0x82, bytes({0, 1}) + str("a") + bytes({3})),
        packet(0x82, bytes({0, 1}) + str("a") + bytes({0x04})), packet(0xA2, bytes({0, 1}))}) {
    auto c = connected_and_sent(ProtocolVersion::v3_1_1, raw);
    EXPECT_TRUE(closed_silently(*c));
  }
}

TEST_F(Conformance311, MQTT_3_8_4_3_ResubscribeReplacesAndResendsRetained) {
  auto pub = connected("pub");
  pub->publish("rs", "kept", 1, true);
  auto sub = connected("sub");
  sub->subscribe("rs", 0, 1);
  EXPECT_EQ(sub->receive_bytes(), packet(0x31, str("rs") + "kept"));
  sub->subscribe("rs", 1, 2);  // same filter: replaced, retained message sent again
  auto again = expect_publish(*sub, "rs", "kept");
  EXPECT_EQ(again.qos, 1);
  EXPECT_TRUE(again.retain);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, again.packet_id, 0, {}});
  pub->publish("rs", "live", 1);
  auto live = expect_publish(*sub, "rs", "live");  // one subscription: one copy, QoS 1
  EXPECT_EQ(live.qos, 1);
  EXPECT_FALSE(live.retain);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, live.packet_id, 0, {}});
  pub->publish("rs", "marker");
  expect_publish(*sub, "rs", "marker");
}

TEST_F(Conformance311, MQTT_3_8_4_4_5_3_9_3_1_2_OneSubackInOrderWithFailures) {
  auto c = connected("multi");
  mqtt::Subscribe subscribe{7, {}, {}};
  subscribe.subscriptions = {{"a/+", {1}}, {"a/#/b", {0}}, {"b", {2}}, {"", {0}}};
  c->send(subscribe);
  EXPECT_EQ(c->receive_bytes(), bytes({0x90, 0x06, 0x00, 0x07, 0x01, 0x80, 0x02, 0x80}));
}

TEST_F(Conformance311, MQTT_3_10_4_1_to_6_UnsubscribeComparesFiltersCharacterByCharacter) {
  auto sub = connected("sub");
  sub->subscribe("u/+", 0, 1);
  sub->subscribe("u/b", 0, 2);
  sub->send(mqtt::Unsubscribe{5, {}, {"u/#", "u/+"}});
  EXPECT_EQ(sub->receive_bytes(), bytes({0xB0, 0x02, 0x00, 0x05}));  // one UNSUBACK
  sub->send(mqtt::Unsubscribe{6, {}, {"never"}});
  EXPECT_EQ(sub->receive_bytes(), bytes({0xB0, 0x02, 0x00, 0x06}));  // even if none deleted
  auto pub = connected("pub");
  pub->publish("u/c", "u/+ is gone");
  pub->publish("u/b", "u/b stays");
  EXPECT_EQ(sub->receive_bytes(), packet(0x30, str("u/b") + "u/b stays"));
}

TEST_F(Conformance311, MQTT_4_3_2_2_4_3_3_2_SamePacketIdAfterTheFlowEndsIsANewMessage) {
  auto sub = connected("sub");
  sub->subscribe("q1", 0, 1);
  sub->subscribe("q2", 0, 2);
  auto pub = connected("pub");
  // QoS 1: after the PUBACK the id is free, whatever the DUP flag says.
  for (bool dup : {false, true}) {
    pub->send(mqtt::Publish{1, false, dup, "q1", 5, {}, dup ? "dup" : "first"});
    EXPECT_EQ(pub->receive_bytes(), bytes({0x40, 0x02, 0x00, 0x05}));
  }
  expect_publish(*sub, "q1", "first");
  expect_publish(*sub, "q1", "dup");
  // QoS 2: after the PUBCOMP.
  for (const char* payload : {"one", "two"}) {
    pub->send(mqtt::Publish{2, false, false, "q2", 5, {}, payload});
    EXPECT_EQ(pub->receive_bytes(), bytes({0x50, 0x02, 0x00, 0x05}));
    pub->send(mqtt::Ack{mqtt::PacketType::pubrel, 5, 0, {}});
    EXPECT_EQ(pub->receive_bytes(), bytes({0x70, 0x02, 0x00, 0x05}));
  }
  expect_publish(*sub, "q2", "one");
  expect_publish(*sub, "q2", "two");
}

TEST_F(Conformance311, MQTT_4_4_0_1_PubrelResentAfterReconnectNotThePublish) {
  auto pub = connected("pub");
  std::uint16_t packet_id = 0;
  {
    auto sub = connected("flaky", ProtocolVersion::v3_1_1, user(), false);
    sub->subscribe("q2", 2);
    pub->publish("q2", "exactly once", 2);
    packet_id = expect_publish(*sub, "q2", "exactly once").packet_id;
    sub->send(mqtt::Ack{mqtt::PacketType::pubrec, packet_id, 0, {}});
    EXPECT_EQ(sub->receive_bytes(),
              bytes({0x62, 0x02, packet_id >> 8, packet_id & 0xFF}));  // PUBREL
    sub->close();                                                      // no PUBCOMP
  }
  auto sub = client();
  EXPECT_TRUE(sub->connect(make_connect("flaky", user(), false)).session_present);
  // The PUBREL again with its original id [MQTT-4.3.3-1: no PUBLISH once PUBREL was sent].
  EXPECT_EQ(sub->receive_bytes(), bytes({0x62, 0x02, packet_id >> 8, packet_id & 0xFF}));
  sub->send(mqtt::Ack{mqtt::PacketType::pubcomp, packet_id, 0, {}});
  sub->ping();
}

TEST_F(Conformance311, MQTT_4_6_0_6_MessagesArriveInPublishOrder) {
  auto sub = connected("sub");
  sub->subscribe("o/#", 1);
  auto pub = connected("pub");
  constexpr int kCount = 50;
  for (int i = 0; i < kCount; ++i) {
    pub->send(mqtt::Publish{
        1, false, false, "o/1", static_cast<std::uint16_t>(i + 1), {}, std::to_string(i)});
    pub->send(mqtt::Publish{0, false, false, "o/0", 0, {}, std::to_string(i)});
  }
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(pub->expect<mqtt::Ack>().packet_id, i + 1);
  for (int i = 0; i < kCount; ++i) {
    auto m1 = expect_publish(*sub, "o/1", std::to_string(i));
    sub->send(mqtt::Ack{mqtt::PacketType::puback, m1.packet_id, 0, {}});
    expect_publish(*sub, "o/0", std::to_string(i));
  }
}

TEST_F(Conformance311, MQTT_4_7_2_1_LeadingWildcardsDoNotMatchDollarTopics) {
  auto sub = connected("sub");
  sub->subscribe("+/load", 0, 1);
  sub->subscribe("+", 0, 2);
  sub->subscribe("+/+", 0, 3);
  auto sys = connected("sys");
  sys->subscribe("$internal/+", 0);  // clients may not publish to $SYS (broker_sys_test)
  auto pub = connected("pub");
  pub->publish("$internal/load", "dollar");
  pub->publish("$x", "dollar");
  pub->publish("cpu/load", "plain");
  expect_publish(*sys, "$internal/load", "dollar");
  expect_publish(*sub, "cpu/load", "plain");  // one copy for two matching filters
  pub->publish("end", "marker");
  expect_publish(*sub, "end", "marker");
}

TEST_F(Conformance311, MQTT_4_8_0_1_ProtocolViolationClosesAndPublishesWill) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto c = client();
  auto connect = make_connect("violator", user());
  connect.will = mqtt::Will{"will/violator", "gone", 0, false, {}};
  ASSERT_EQ(c->connect(connect).reason_code, 0);
  c->send_bytes(bytes({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}));  // QoS 3 [MQTT-3.3.1-4]
  EXPECT_TRUE(closed_silently(*c));
  expect_publish(*watcher, "will/violator", "gone");
}

TEST_F(Conformance311, MQTT_3_7_PubrelOrPubrecForUnknownIdIsAnswered) {
  auto c = connected("lost");
  c->send_bytes(bytes({0x62, 0x02, 0x00, 0x07}));
  EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x02, 0x00, 0x07}));  // PUBCOMP
  c->send_bytes(bytes({0x50, 0x02, 0x00, 0x08}));
  EXPECT_EQ(c->receive_bytes(), bytes({0x62, 0x02, 0x00, 0x08}));  // PUBREL
  c->ping();
}

// =========================================================================================
// MQTT 3.1 ("MQIsdp", level 3): what Mosquitto accepts.

TEST_F(Conformance31, ClientIdLongerThan23BytesIsAccepted) {
  auto c = client(ProtocolVersion::v3_1);
  c->send(make_connect("a-client-id-of-thirty-bytes-xx", user()));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));
  c->ping();
}

TEST_F(Conformance31, EmptyClientIdGetsReturnCode2) {
  auto c = client(ProtocolVersion::v3_1);
  c->send(make_connect("", user(), true));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x02}));
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(Conformance31, ConnackNeverSetsSessionPresent) {
  {
    auto c = client(ProtocolVersion::v3_1);
    c->send(make_connect("kept31", user(), false));
    EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));
    c->subscribe("k", 1);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  auto pub = connected("pub");
  pub->publish("k", "queued", 1);
  auto c = client(ProtocolVersion::v3_1);
  c->send(make_connect("kept31", user(), false));
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x02, 0x00, 0x00}));  // byte 1 is reserved in 3.1
  expect_publish(*c, "k", "queued");                               // the session was resumed
}

TEST_F(Conformance31, RetransmissionsWithDupAreAccepted) {
  auto c = client(ProtocolVersion::v3_1);
  ASSERT_EQ(c->connect(make_connect("dup31", user())).reason_code, 0);
  c->send_bytes(bytes({0x6A, 0x02, 0x00, 0x05}));  // PUBREL with DUP, as 3.1 allowed
  EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x02, 0x00, 0x05}));
  c->send_bytes(packet(0x8A, bytes({0, 6}) + str("s") + bytes({0})));  // SUBSCRIBE with DUP
  EXPECT_EQ(c->receive_bytes(), bytes({0x90, 0x03, 0x00, 0x06, 0x00}));
}

// =========================================================================================
// MQTT 5.0

TEST_F(Conformance5, MQTT_3_1_2_3_ReservedConnectFlagGetsConnack0x81) {
  auto c = client(ProtocolVersion::v5);
  c->send_bytes(raw_connect("MQTT", 5, 0x03, "c"));
  // CONNACK 0x81, not DISCONNECT: no DISCONNECT before a successful CONNACK [MQTT-3.14.0-1].
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x03, 0x00, 0x81, 0x00}));
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(Conformance5, MQTT_2_2_2_DuplicatePropertyIsProtocolErrorUnknownIsMalformed) {
  struct Case {
    std::string properties;
    int code;
  };
  for (const Case& c : {Case{bytes({0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2}), 0x82},  // twice
                        Case{bytes({0x05, 0x00}), 0x81},                          // unknown id
                        Case{bytes({0x23, 0x00, 0x01}), 0x81}}) {  // not allowed on CONNECT
    auto connection = client(ProtocolVersion::v5);
    connection->send_bytes(raw_connect("MQTT", 5, 0x02, "p", c.properties));
    EXPECT_EQ(connection->receive_bytes(), bytes({0x20, 0x03, 0x00, c.code, 0x00}));
    EXPECT_TRUE(connection->wait_eof());
  }
  struct PublishCase {
    std::string properties;
    mqtt::ReasonCode reason;
  };
  for (const PublishCase& c :
       {PublishCase{bytes({0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1}), mqtt::ReasonCode::protocol_error},
        PublishCase{bytes({0x11, 0, 0, 0, 1}), mqtt::ReasonCode::malformed_packet},
        PublishCase{bytes({0x7F, 0x00}), mqtt::ReasonCode::malformed_packet}}) {
    auto sender = connected_and_sent(
        ProtocolVersion::v5,
        packet(0x30, str("t") + bytes({static_cast<int>(c.properties.size())}) + c.properties));
    EXPECT_EQ(sender->receive_bytes(), disconnect_bytes(c.reason));
    EXPECT_TRUE(closed_silently(*sender));
  }
}

TEST_F(Conformance5, MQTT_3_1_2_28_NoResponseInformationAndNoOptionalRefusals) {
  auto connect = make_connect("asks", user());
  connect.properties.request_response_information = 1;
  connect.properties.topic_alias_maximum = 10;
  mqtt::Connack connack;
  auto c = connected5(connect, &connack);
  EXPECT_FALSE(connack.session_present);
  const auto& p = connack.properties;
  EXPECT_FALSE(p.response_information);   // allowed: Response Information is optional
  EXPECT_FALSE(p.server_keep_alive);      // [MQTT-3.2.2-22]: the client's Keep Alive holds
  EXPECT_FALSE(p.authentication_method);  // [MQTT-4.12.0-6]
  EXPECT_FALSE(p.assigned_client_identifier);
  EXPECT_FALSE(p.maximum_qos);  // QoS 2 supported [MQTT-3.2.2-9]
  EXPECT_FALSE(p.retain_available);
  EXPECT_FALSE(p.wildcard_subscription_available);
  EXPECT_FALSE(p.reason_string);  // [MQTT-3.2.2-19], [MQTT-3.2.2-20]
  EXPECT_TRUE(p.user_properties.empty());
  EXPECT_EQ(p.topic_alias_maximum, 10);
  c->ping();
}

TEST_F(Conformance5, MQTT_3_1_3_7_3_2_2_16_AssignedClientIdsAreUniqueAndUsable) {
  auto connect = make_connect("", user(), false);
  connect.properties.session_expiry_interval = 60;
  mqtt::Connack first_connack, second_connack;
  auto first = connected5(connect, &first_connack);
  auto second = connected5(connect, &second_connack);
  ASSERT_TRUE(first_connack.properties.assigned_client_identifier);
  ASSERT_TRUE(second_connack.properties.assigned_client_identifier);
  const std::string assigned = *first_connack.properties.assigned_client_identifier;
  EXPECT_NE(assigned, *second_connack.properties.assigned_client_identifier);
  first->subscribe("assigned", 1);
  first->send(mqtt::Disconnect{});
  EXPECT_TRUE(first->wait_eof());
  second->ping();
  // The assigned id names the session like any other [MQTT-3.1.3-7].
  connect.client_id = assigned;
  mqtt::Connack resumed;
  auto again = connected5(connect, &resumed);
  EXPECT_TRUE(resumed.session_present);
  EXPECT_FALSE(resumed.properties.assigned_client_identifier);
}

TEST_F(Conformance5, MQTT_3_2_2_6_RefusedConnackHasNoSessionPresent) {
  auto connect = make_connect("dev", user(), false);
  connect.properties.session_expiry_interval = 60;
  {
    auto c = connected5(connect);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  auto intruder = client(ProtocolVersion::v5);
  auto refused = make_connect("dev", "bad", false);
  refused.properties.session_expiry_interval = 60;
  intruder->send(refused);
  EXPECT_EQ(intruder->receive_bytes(), bytes({0x20, 0x03, 0x00, 0x86, 0x00}));
  EXPECT_TRUE(intruder->wait_eof());
  mqtt::Connack connack;
  connected5(connect, &connack);
  EXPECT_TRUE(connack.session_present);  // the refusal left the session alone
}

TEST_F(Conformance5, MQTT_3_3_1_2_DupWithQos0IsMalformed) {
  auto c = connected_and_sent(ProtocolVersion::v5, packet(0x38, str("t") + bytes({0}) + "x"));
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::malformed_packet));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_3_3_2_2_1_5_4_IllFormedTopicsAndIdentifiers) {
  struct Case {
    std::string raw;
    mqtt::ReasonCode reason;
  };
  for (const Case& c : {
           Case{packet(0x30, str("a/+") + bytes({0})), mqtt::ReasonCode::topic_name_invalid},
           Case{packet(0x30, str("\xED\xA0\x80") + bytes({0})), mqtt::ReasonCode::malformed_packet},
           Case{packet(0x82, bytes({0, 1, 0}) + str(std::string_view("a\0b", 3)) + bytes({0})),
                mqtt::ReasonCode::malformed_packet},
           Case{packet(0x32, str("t") + bytes({0, 0, 0})), mqtt::ReasonCode::protocol_error},
       }) {
    auto sender = connected_and_sent(ProtocolVersion::v5, c.raw);
    EXPECT_EQ(sender->receive_bytes(), disconnect_bytes(c.reason));
    EXPECT_TRUE(closed_silently(*sender));
  }
}

// PUBREL, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT with reserved flags; SUBSCRIBE with
// reserved option bits [MQTT-3.8.3-5]: DISCONNECT 0x81 [MQTT-3.14.1-1].
TEST_F(Conformance5, MQTT_2_1_3_1_ReservedBitsAreMalformed) {
  for (const std::string& raw :
       {packet(0x60, bytes({0, 1})), packet(0x80, bytes({0, 1, 0}) + str("a") + bytes({0})),
        packet(0xA0, bytes({0, 1, 0}) + str("a")), packet(0xC1, ""), packet(0xE1, ""),
        packet(0x82, bytes({0, 1, 0}) + str("a") + bytes({0xC0}))}) {
    auto c = connected_and_sent(ProtocolVersion::v5, raw);
    EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::malformed_packet))
        << static_cast<int>(static_cast<std::uint8_t>(raw[0]));
    EXPECT_TRUE(closed_silently(*c));
  }
}

TEST_F(Conformance5, MQTT_3_8_3_2_3_10_3_2_NoFiltersIsProtocolError) {
  for (const std::string& raw : {packet(0x82, bytes({0, 1, 0})), packet(0xA2, bytes({0, 1, 0})),
                                 packet(0x82, bytes({0, 1, 0}) + str("a") + bytes({3}))}) {
    auto c = connected_and_sent(ProtocolVersion::v5, raw);
    EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
    EXPECT_TRUE(closed_silently(*c));
  }
}

TEST_F(Conformance5, MQTT_3_8_4_6_7_3_9_3_1_SubackReasonCodesInOrder) {
  auto c = connected("multi", ProtocolVersion::v5);
  mqtt::Subscribe subscribe{7, {}, {}};
  subscribe.subscriptions = {{"a/+", {1}}, {"a/#/b", {0}}, {"b", {2}}, {"", {0}}};
  c->send(subscribe);
  EXPECT_EQ(c->receive_bytes(), bytes({0x90, 0x07, 0x00, 0x07, 0x00, 0x01, 0x8F, 0x02, 0x8F}));
  c->send(mqtt::Unsubscribe{8, {}, {"b", "never", "a/+"}});
  EXPECT_EQ(c->receive_bytes(), bytes({0xB0, 0x06, 0x00, 0x08, 0x00, 0x00, 0x11, 0x00}));
}

TEST_F(Conformance5, MQTT_3_3_2_7_TopicAliasesAreNotCarriedForward) {
  auto connect = make_connect("aliaser", user(), false);
  connect.properties.session_expiry_interval = 60;
  {
    auto c = connected5(connect);
    mqtt::Publish set{0, false, false, "al/x", 0, {}, "set"};
    set.properties.topic_alias = 1;
    c->send(set);
    c->ping();
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  mqtt::Connack connack;
  auto c = connected5(connect, &connack);
  EXPECT_TRUE(connack.session_present);  // the session survives, its aliases do not
  mqtt::Publish use{0, false, false, "", 0, {}, "use"};
  use.properties.topic_alias = 1;
  c->send(use);
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_3_3_2_8_12_TopicAliasRange) {
  auto sub = connected("sub");
  sub->subscribe("al/#", 0);
  auto c = connected("aliaser", ProtocolVersion::v5);
  mqtt::Publish set{0, false, false, "al/ten", 0, {}, "set"};
  set.properties.topic_alias = 10;  // the maximum we announce
  c->send(set);
  mqtt::Publish use{0, false, false, "", 0, {}, "use"};
  use.properties.topic_alias = 10;
  c->send(use);
  expect_publish(*sub, "al/ten", "set");
  expect_publish(*sub, "al/ten", "use");
  c->send_bytes(packet(0x30, str("al/zero") + bytes({3, 0x23, 0, 0})));  // alias 0
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::topic_alias_invalid));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_3_1_2_26_27_3_3_2_11_TopicAliasesSentUpToTheClientsMaximum) {
  auto connect = make_connect("sub", user());
  connect.properties.topic_alias_maximum = 1;
  auto sub = connected5(connect);
  sub->subscribe("ta/#", 0);
  auto plain = connected5(make_connect("plain", user()));  // no Topic Alias Maximum
  plain->subscribe("ta/#", 0);
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("ta/x", "m");
  // The first PUBLISH sets alias 1 (topic + Topic Alias 1), the next uses it (empty topic).
  EXPECT_EQ(sub->receive_bytes(), packet(0x30, str("ta/x") + bytes({3, 0x23, 0, 1}) + "m"));
  pub->publish("ta/x", "m");
  EXPECT_EQ(sub->receive_bytes(), packet(0x30, str("") + bytes({3, 0x23, 0, 1}) + "m"));
  // Only one alias allowed: another topic goes without one.
  pub->publish("ta/y", "m");
  EXPECT_EQ(sub->receive_bytes(), packet(0x30, str("ta/y") + bytes({0}) + "m"));
  // Topic Alias Maximum absent: the full topic each time, no Topic Alias property.
  for (const char* topic : {"ta/x", "ta/x", "ta/y"}) {
    EXPECT_EQ(plain->receive_bytes(), packet(0x30, str(topic) + bytes({0}) + "m"));
  }
}

TEST_F(Conformance5, MQTT_3_3_2_14_ResponseTopicWithWildcardIsProtocolError) {
  auto c = connected("requester", ProtocolVersion::v5);
  mqtt::Publish request{0, false, false, "req", 0, {}, "?"};
  request.properties.response_topic = "reply/#";
  c->send(request);
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_3_3_2_4_15_to_20_PublishPropertiesAreForwardedUnaltered) {
  auto sub = connected("sub", ProtocolVersion::v5);
  sub->subscribe("props", 0);
  auto pub = connected("pub", ProtocolVersion::v5);
  mqtt::Publish publish{0, false, false, "props", 0, {}, "{}"};
  auto& p = publish.properties;
  p.payload_format_indicator = 1;
  p.content_type = "application/json";
  p.response_topic = "reply/to/me";
  p.correlation_data = std::string("\x00\xFF\x01", 3);
  p.user_properties = {{"b", "2"}, {"a", "1"}, {"b", "1"}};  // order kept [MQTT-3.3.2-18]
  pub->send(publish);
  auto m = expect_publish(*sub, "props", "{}");
  EXPECT_EQ(m.properties, p);
}

TEST_F(Conformance5, MQTT_3_3_4_6_SubscriptionIdentifierFromClientIsProtocolError) {
  auto c = connected_and_sent(ProtocolVersion::v5, packet(0x30, str("t") + bytes({2, 0x0B, 1})));
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_3_3_4_10_4_9_0_3_OtherPacketsFlowWhileTheQuotaIsUsedUp) {
  auto connect = make_connect("narrow", user());
  connect.properties.receive_maximum = 1;
  auto sub = connected5(connect);
  sub->subscribe("quota", 1);
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("quota", "1", 1);
  pub->publish("quota", "2", 1);
  auto first = expect_publish(*sub, "quota", "1");
  sub->ping();  // PINGRESP comes although "2" is waiting for a slot
  sub->subscribe("other", 0, 2);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, first.packet_id, 0, {}});
  auto second = expect_publish(*sub, "quota", "2");
  sub->send(mqtt::Ack{mqtt::PacketType::puback, second.packet_id, 0, {}});
}

TEST_F(Conformance5, MQTT_3_7_2_1_PubrelForUnknownIdGetsPubcomp0x92) {
  auto c = connected("lost", ProtocolVersion::v5);
  c->send_bytes(bytes({0x62, 0x02, 0x00, 0x07}));
  EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x03, 0x00, 0x07, 0x92}));
  c->send_bytes(bytes({0x50, 0x02, 0x00, 0x08}));  // PUBREC for nothing we sent
  EXPECT_EQ(c->receive_bytes(), bytes({0x62, 0x03, 0x00, 0x08, 0x92}));
  c->ping();
}

TEST_F(Conformance5, MQTT_4_3_3_9_AfterPubrecFailureTheSameIdIsANewMessage) {
  auto sub = connected("sub", ProtocolVersion::v5);
  sub->subscribe("pf", 0);
  auto c = connected("pub", ProtocolVersion::v5);
  mqtt::Publish bad{2, false, false, "pf", 7, {}, std::string("\xC3\x28", 2)};
  bad.properties.payload_format_indicator = 1;
  c->send(bad);
  EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x03, 0x00, 0x07, 0x99}));
  c->send(mqtt::Publish{2, false, false, "pf", 7, {}, "fine"});
  EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x02, 0x00, 0x07}));  // new, routed: Success
  c->send(mqtt::Ack{mqtt::PacketType::pubrel, 7, 0, {}});
  EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x02, 0x00, 0x07}));
  expect_publish(*sub, "pf", "fine");
}

TEST_F(Conformance5, MQTT_4_4_0_2_RefusedDeliveryIsNotRetransmitted) {
  auto connect = make_connect("refuser", user(), false);
  connect.properties.session_expiry_interval = 60;
  auto pub = connected("pub", ProtocolVersion::v5);
  {
    auto sub = connected5(connect);
    sub->subscribe("rf/#", 2);
    pub->publish("rf/1", "refused at QoS 1", 1);
    pub->publish("rf/2", "refused at QoS 2", 2);
    auto m1 = expect_publish(*sub, "rf/1", "refused at QoS 1");
    auto m2 = expect_publish(*sub, "rf/2", "refused at QoS 2");
    sub->send(mqtt::Ack{mqtt::PacketType::puback, m1.packet_id, 0x80, {}});
    sub->send(mqtt::Ack{mqtt::PacketType::pubrec, m2.packet_id, 0x80, {}});
    sub->ping();  // no PUBREL after a failed PUBREC [MQTT-4.3.3-4]
    sub->close();
  }
  mqtt::Connack connack;
  auto sub = connected5(connect, &connack);
  EXPECT_TRUE(connack.session_present);
  sub->ping();  // nothing resent
}

TEST_F(Conformance5, MQTT_3_14_2_SessionExpiryCannotBeRaisedFromZeroOnDisconnect) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto connect = make_connect("raiser", user());
  connect.will = mqtt::Will{"will/raiser", "gone", 0, false, {}};
  auto c = connected5(connect);
  mqtt::Disconnect disconnect;
  disconnect.properties.session_expiry_interval = 60;
  c->send(disconnect);
  EXPECT_EQ(c->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
  EXPECT_TRUE(closed_silently(*c));
  expect_publish(*watcher, "will/raiser", "gone");  // not a normal disconnection
}

TEST_F(Conformance5, MQTT_4_13_1_1_ServerToClientPacketsFromTheClientAreProtocolErrors) {
  struct Case {
    std::string v5;
    std::string v311;
  };
  for (const Case& c :
       {Case{bytes({0xD0, 0x00}), bytes({0xD0, 0x00})},  // PINGRESP
        Case{bytes({0x20, 0x03, 0x00, 0x00, 0x00}), bytes({0x20, 0x02, 0x00, 0x00})},
        Case{bytes({0x90, 0x04, 0x00, 0x01, 0x00, 0x00}),  // SUBACK
             bytes({0x90, 0x03, 0x00, 0x01, 0x00})}}) {
    auto five = connected_and_sent(ProtocolVersion::v5, c.v5);
    EXPECT_EQ(five->receive_bytes(), disconnect_bytes(mqtt::ReasonCode::protocol_error));
    EXPECT_TRUE(closed_silently(*five));
    auto old = connected_and_sent(ProtocolVersion::v3_1_1, c.v311);
    EXPECT_TRUE(closed_silently(*old));
  }
}

// A PUBLISH resent after a reconnect must fit the Maximum Packet Size of the new connection;
// one that does not is discarded as if it had been delivered.
TEST_F(Conformance5, MQTT_3_1_2_24_25_ResendTooLargeForTheNewConnectionIsDiscarded) {
  auto connect = make_connect("shrinking", user(), false);
  connect.properties.session_expiry_interval = 60;
  auto pub = connected("pub", ProtocolVersion::v5);
  {
    auto sub = connected5(connect);
    sub->subscribe("mps", 1);
    pub->publish("mps", std::string(100, 'x'), 1);
    pub->publish("mps", "small", 1);
    expect_publish(*sub, "mps", std::string(100, 'x'));
    expect_publish(*sub, "mps", "small");
    sub->close();  // neither acknowledged
  }
  connect.properties.maximum_packet_size = 64;
  mqtt::Connack connack;
  auto sub = connected5(connect, &connack);
  ASSERT_TRUE(connack.session_present);
  auto small = expect_publish(*sub, "mps", "small");  // the large one is not resent
  EXPECT_TRUE(small.dup);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, small.packet_id, 0, {}});
  pub->publish("mps", std::string(100, 'y'), 1);
  pub->publish("mps", "after", 1);
  auto after = expect_publish(*sub, "mps", "after");
  EXPECT_FALSE(after.dup);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, after.packet_id, 0, {}});
  sub->ping();
}

// A QoS 2 message sent to a shared-subscription member whose session then ends goes to no
// other member [MQTT-4.8.2-5]; nor does one the member refused [MQTT-4.8.2-6].
TEST_F(Conformance5, MQTT_4_8_2_5_6_SharedMessageSentAtQos2OrRefusedGoesNowhereElse) {
  struct Case {
    std::uint8_t qos;
    bool refuse;
  };
  int round = 0;
  for (const Case& c : {Case{2, false}, Case{1, true}, Case{2, true}}) {
    const std::string filter = "$share/g" + std::to_string(++round) + "/work";
    auto first = connected("first", ProtocolVersion::v5);
    first->subscribe(filter, c.qos, 1);
    auto second = connected("second", ProtocolVersion::v5);
    second->subscribe(filter, c.qos, 1);
    auto pub = connected("pub", ProtocolVersion::v5);
    pub->publish("work", "job", c.qos);
    auto m = expect_publish(*first, "work", "job");  // the first member's turn
    EXPECT_EQ(m.qos, c.qos);
    if (c.refuse) {
      first->send(mqtt::Ack{
          c.qos == 1 ? mqtt::PacketType::puback : mqtt::PacketType::pubrec, m.packet_id, 0x80, {}});
      first->ping();
    }
    first->close();  // Session Expiry 0: the session ends with the connection
    ASSERT_TRUE(eventually([&] { return broker_->stats().sessions == 2; }));
    pub->publish("work", "next", 0);
    expect_publish(*second, "work", "next");  // and not "job" before it
    second->close();
    pub->close();
    ASSERT_TRUE(eventually([&] { return broker_->stats().sessions == 0; }));
  }
}

TEST_F(Conformance311, MQTT_3_10_4_2_3_InFlightDeliveriesCompleteAfterUnsubscribe) {
  for (auto version : {ProtocolVersion::v3_1_1, ProtocolVersion::v5}) {
    auto sub = connected("sub", version);
    sub->subscribe("un", 2);
    auto pub = connected("pub");
    pub->publish("un", "one", 1);
    pub->publish("un", "two", 2);
    auto one = expect_publish(*sub, "un", "one");
    auto two = expect_publish(*sub, "un", "two");
    sub->send(mqtt::Unsubscribe{3, {}, {"un"}});
    EXPECT_EQ(sub->expect<mqtt::Unsuback>().packet_id, 3);
    pub->publish("un", "three", 1);  // no longer added for this client
    sub->send(mqtt::Ack{mqtt::PacketType::puback, one.packet_id, 0, {}});
    sub->send(mqtt::Ack{mqtt::PacketType::pubrec, two.packet_id, 0, {}});
    auto pubrel = sub->expect<mqtt::Ack>();  // the QoS 2 flow goes on
    EXPECT_EQ(pubrel.type, mqtt::PacketType::pubrel);
    EXPECT_EQ(pubrel.packet_id, two.packet_id);
    sub->send(mqtt::Ack{mqtt::PacketType::pubcomp, two.packet_id, 0, {}});
    sub->ping();
  }
}

TEST_F(Conformance5, MQTT_2_2_1_4_PacketIdsInFlightAreDistinct) {
  auto sub = connected("sub", ProtocolVersion::v5);
  sub->subscribe("ids", 1);
  auto pub = connected("pub", ProtocolVersion::v5);
  constexpr int kCount = 5;
  for (int i = 0; i < kCount; ++i) pub->publish("ids", std::to_string(i), 1);
  std::vector<std::uint16_t> ids;
  for (int i = 0; i < kCount; ++i)
    ids.push_back(expect_publish(*sub, "ids", std::to_string(i)).packet_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
  EXPECT_NE(ids.front(), 0);
  for (auto id : ids) sub->send(mqtt::Ack{mqtt::PacketType::puback, id, 0, {}});
  sub->ping();
}

TEST_F(Conformance5, MQTT_3_14_2_3_ReasonStringLeftOutBeyondMaximumPacketSize) {
  auto connect = make_connect("tiny", user());
  connect.properties.maximum_packet_size = 16;
  auto c = connected5(connect);
  c->send_bytes(bytes({0xF0, 0x00}));                        // AUTH: a protocol error here
  EXPECT_EQ(c->receive_bytes(), bytes({0xE0, 0x01, 0x82}));  // no Reason String: it would not fit
  EXPECT_TRUE(closed_silently(*c));
}

TEST_F(Conformance5, MQTT_4_1_0_2_SessionIsDiscardedWhenItsExpiryHasPassed) {
  auto connect = make_connect("brief", user(), false);
  connect.properties.session_expiry_interval = 1;
  {
    auto c = connected5(connect);
    c->subscribe("brief", 1);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  EXPECT_EQ(broker_->stats().sessions, 1u);  // kept while the interval runs
  EXPECT_TRUE(eventually([&] { return broker_->stats().sessions == 0; }));
  mqtt::Connack connack;
  auto c = connected5(connect, &connack);
  EXPECT_FALSE(connack.session_present);
}

TEST_F(Conformance5, MQTT_4_3_3_7_NoExpiryOnceThePublishWasSent) {
  auto connect = make_connect("slow", user(), false);
  connect.properties.session_expiry_interval = 60;
  auto pub = connected("pub", ProtocolVersion::v5);
  std::uint16_t packet_id = 0;
  {
    auto sub = connected5(connect);
    sub->subscribe("ex", 2);
    mqtt::Publish publish{2, false, false, "ex", 1, {}, "short-lived"};
    publish.properties.message_expiry_interval = 1;
    pub->send(publish);
    EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
    pub->send(mqtt::Ack{mqtt::PacketType::pubrel, 1, 0, {}});
    EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::pubcomp);
    packet_id = expect_publish(*sub, "ex", "short-lived").packet_id;
    sub->close();  // no PUBREC
  }
  const auto expired_at = Clock::now() + 1100ms;
  while (Clock::now() < expired_at) std::this_thread::sleep_for(10ms);  // time is the subject
  mqtt::Connack connack;
  auto sub = connected5(connect, &connack);
  ASSERT_TRUE(connack.session_present);
  auto again = expect_publish(*sub, "ex", "short-lived");  // resent although expired
  EXPECT_TRUE(again.dup);
  EXPECT_EQ(again.packet_id, packet_id);
  sub->send(mqtt::Ack{mqtt::PacketType::pubrec, packet_id, 0, {}});
  EXPECT_EQ(sub->expect<mqtt::Ack>().type, mqtt::PacketType::pubrel);
  sub->send(mqtt::Ack{mqtt::PacketType::pubcomp, packet_id, 0, {}});
  sub->ping();
}

TEST_F(Conformance5, MQTT_4_8_2_4_SharedQos2DeliveryIsCompletedWithTheSameMember) {
  auto connect = make_connect("member", user(), false);
  connect.properties.session_expiry_interval = 60;
  auto other = connected("other", ProtocolVersion::v5);
  std::uint16_t packet_id = 0;
  {
    auto member = connected5(connect);
    member->subscribe("$share/g/q2", 2);
    other->subscribe("$share/g/q2", 2);
    auto pub = connected("pub", ProtocolVersion::v5);
    pub->publish("q2", "once", 2);
    packet_id = expect_publish(*member, "q2", "once").packet_id;  // the first member's turn
    member->close();                                              // no PUBREC; the session stays
  }
  mqtt::Connack connack;
  auto member = connected5(connect, &connack);
  ASSERT_TRUE(connack.session_present);
  auto again = expect_publish(*member, "q2", "once");
  EXPECT_TRUE(again.dup);
  EXPECT_EQ(again.packet_id, packet_id);
  member->send(mqtt::Ack{mqtt::PacketType::pubrec, packet_id, 0, {}});
  EXPECT_EQ(member->expect<mqtt::Ack>().type, mqtt::PacketType::pubrel);
  member->send(mqtt::Ack{mqtt::PacketType::pubcomp, packet_id, 0, {}});
  other->ping();  // the other member never got it
}

TEST_F(Conformance5, MQTT_3_3_4_5_EachCopyCarriesItsOwnSubscriptionIdentifier) {
  auto c = connected("both", ProtocolVersion::v5);
  for (auto [filter, identifier] :
       std::vector<std::pair<std::string, std::uint32_t>>{{"$share/g/x", 3}, {"x", 4}}) {
    mqtt::Subscribe subscribe{static_cast<std::uint16_t>(identifier), {}, {{filter, {0}}}};
    subscribe.properties.subscription_identifiers = {identifier};
    c->send(subscribe);
    EXPECT_EQ(c->expect<mqtt::Suback>().reason_codes, std::vector<std::uint8_t>{0});
  }
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("x", "twice");
  // A shared and a plain subscription: two copies, each with its subscription's identifier.
  std::vector<std::vector<std::uint32_t>> seen;
  for (int i = 0; i < 2; ++i) {
    seen.push_back(expect_publish(*c, "x", "twice").properties.subscription_identifiers);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::vector<std::uint32_t>>{{3}, {4}}));
}

}  // namespace
}  // namespace credmq::broker
