// In-process tests of the broker's MQTT 5.0 server features (docs/mqtt5.md): raw clients send
// exact packets and check reason codes, properties and flags of what comes back.
#include <algorithm>

#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;
using Clock = std::chrono::steady_clock;

class Mqtt5Test : public BrokerTest {
 protected:
  // A 5.0 client connected with `connect` (CONNACK 0 checked); returns the CONNACK too.
  std::unique_ptr<Client> connected5(mqtt::Connect connect, mqtt::Connack* connack_out = nullptr) {
    auto c = client(ProtocolVersion::v5);
    auto connack = c->connect(connect);
    EXPECT_EQ(connack.reason_code, 0) << connect.client_id;
    if (connack_out) *connack_out = connack;
    return c;
  }
};

// Bytes written as a C array of small integers, for exact-byte expectations.
std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

void subscribe_with(Client& c, const std::string& filter, mqtt::SubscribeOptions options,
                    std::uint16_t packet_id = 1, std::optional<std::uint32_t> identifier = {}) {
  mqtt::Subscribe subscribe;
  subscribe.packet_id = packet_id;
  if (identifier) subscribe.properties.subscription_identifiers.push_back(*identifier);
  subscribe.subscriptions.push_back({filter, options});
  c.send(subscribe);
  auto suback = c.expect<mqtt::Suback>();
  EXPECT_EQ(suback.packet_id, packet_id);
  EXPECT_EQ(suback.reason_codes, std::vector<std::uint8_t>{options.qos}) << filter;
}

mqtt::Connect with_will(mqtt::Connect connect, const std::string& topic,
                        std::optional<std::uint32_t> will_delay,
                        std::optional<std::uint32_t> session_expiry) {
  connect.will = mqtt::Will{topic, "gone", 0, false, {}};
  connect.will->properties.will_delay_interval = will_delay;
  connect.properties.session_expiry_interval = session_expiry;
  return connect;
}

// ---------------------------------------------------------------------------------------
// Will Delay Interval [MQTT-3.1.3-9]

TEST_F(Mqtt5Test, WillDelayPublishesAfterTheDelay) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto c = connected5(with_will(make_connect("delayed", user(), false), "will/delayed", 1, 60));
  const auto closed_at = Clock::now();
  c->close();
  expect_publish(*watcher, "will/delayed", "gone");
  EXPECT_GE(Clock::now() - closed_at, 1s);
}

TEST_F(Mqtt5Test, WillDelayCancelledByResumingConnection) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto connect = with_will(make_connect("flappy", user(), false), "will/flappy", 2, 60);
  auto first = connected5(connect);
  first->close();
  connect.will.reset();
  mqtt::Connack connack;
  auto second = connected5(connect, &connack);
  EXPECT_TRUE(connack.session_present);
  // Past the delay (2 s) plus the broker's 1 s sweep: still no will.
  EXPECT_FALSE(watcher->receive(3500ms));
  second->ping();
}

TEST_F(Mqtt5Test, WillDelayEndsWhenTheSessionEnds) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  {
    // Session Expiry 0: the session ends with the connection, so the will goes at once.
    auto c = connected5(with_will(make_connect("short", user()), "will/short", 100, std::nullopt));
    c->close();
    expect_publish(*watcher, "will/short", "gone");
  }
  {
    // Session Expiry 1 s < Will Delay 100 s: published when the session expires.
    auto c =
        connected5(with_will(make_connect("expiring", user(), false), "will/expiring", 100, 1));
    const auto closed_at = Clock::now();
    c->close();
    expect_publish(*watcher, "will/expiring", "gone");
    EXPECT_GE(Clock::now() - closed_at, 1s);
  }
  {
    // A Clean Start CONNECT ends the waiting session: the will goes at once.
    auto c =
        connected5(with_will(make_connect("replaced", user(), false), "will/replaced", 100, 60));
    c->close();
    auto marker = connected("marker-pub");
    // Wait until the broker has seen the close (the session is offline) before replacing it.
    ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 2; }));
    auto again = connected5(make_connect("replaced", user(), true));
    expect_publish(*watcher, "will/replaced", "gone");
  }
}

TEST_F(Mqtt5Test, TakeoverWithCleanStartEndsTheLiveSessionAndItsDelayedWillGoesAtOnce) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  // A live 5.0 connection with a delayed will, taken over by a Clean Start CONNECT: its
  // session ends there, so the will goes at once (not after 100 s).
  auto old5 =
      connected5(with_will(make_connect("taken5", user("i1", 44), false), "will/taken5", 100, 60));
  auto successor5 = connected5(make_connect("taken5", user("i1", 44), true));
  EXPECT_EQ(old5->expect<mqtt::Disconnect>().reason_code, 0x8E);
  expect_publish(*watcher, "will/taken5", "gone");
  // A live 3.1.1 persistent session taken over with clean session 1.
  auto old311 = connected("taken311", ProtocolVersion::v3_1_1, user("i1", 45), false);
  auto successor311 = connected("taken311", ProtocolVersion::v3_1_1, user("i1", 45), true);
  EXPECT_TRUE(old311->wait_eof());
  // Nothing of the ended sessions stays bound to the credentials (no offline session, no
  // waiting will): only the two successors' connections.
  EXPECT_TRUE(eventually([&] { return hub_.bound_sessions() == 2u; })) << hub_.bound_sessions();
  EXPECT_EQ(broker_->stats().sessions, 3u);
  // Past the 1 s sweep, with the old connections gone: nothing more for the watcher.
  old5.reset();
  old311.reset();
  EXPECT_FALSE(watcher->receive(1500ms));
  successor5->ping();
}

TEST_F(Mqtt5Test, WillDelayNeverForRevokedSession) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  {
    // Revoked while connected: no will, delayed or not.
    auto c = connected5(with_will(make_connect("victim", user("i1", 42), false), "will/v", 1, 60));
    auth_.mark_revoked(42);
    EXPECT_EQ(hub_.revoke(42), 1u);
    EXPECT_EQ(c->expect<mqtt::Disconnect>().reason_code, 0x98);
    EXPECT_TRUE(c->wait_eof());
  }
  {
    // Revoked while the will waits: the waiting will is bound to the credential and dropped.
    auto c = connected5(with_will(make_connect("waiting", user("i1", 43), false), "will/w", 1, 60));
    c->close();
    ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 1; }));
    EXPECT_EQ(hub_.bound_sessions(), 2u);  // the delayed will and the offline session
    auth_.mark_revoked(43);
    EXPECT_EQ(hub_.revoke(43), 2u);
  }
  EXPECT_FALSE(watcher->receive(2500ms));
  auto pub = connected("pub");
  pub->publish("will/marker", "marker");
  expect_publish(*watcher, "will/marker", "marker");
  EXPECT_TRUE(eventually([&] { return hub_.bound_sessions() == 0; }));
}

// ---------------------------------------------------------------------------------------
// Message Expiry Interval [MQTT-3.3.2-5, -6]

mqtt::Publish expiring_publish(const std::string& topic, const std::string& payload,
                               std::uint8_t qos, std::optional<std::uint32_t> expiry,
                               std::uint16_t packet_id, bool retain = false) {
  mqtt::Publish publish{qos, retain, false, topic, packet_id, {}, payload};
  publish.properties.message_expiry_interval = expiry;
  return publish;
}

// Lets the clock pass a message's expiry: time itself is what is tested here.
void wait_past(Clock::time_point when) {
  while (Clock::now() < when) std::this_thread::sleep_for(10ms);
}

TEST_F(Mqtt5Test, MessageExpiredInOfflineSessionIsNotDelivered) {
  auto connect = make_connect("offline", user(), false);
  connect.properties.session_expiry_interval = 60;
  {
    auto c = connected5(connect);
    c->subscribe("e/#", 1);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  auto pub = connected("pub", ProtocolVersion::v5);
  const auto published_at = Clock::now();
  pub->send(expiring_publish("e/short", "short", 1, 1, 1));
  pub->send(expiring_publish("e/long", "long", 1, 60, 2));
  pub->send(expiring_publish("e/none", "none", 1, std::nullopt, 3));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::puback);
  wait_past(published_at + 1100ms);
  mqtt::Connack connack;
  auto c = connected5(connect, &connack);
  EXPECT_TRUE(connack.session_present);
  auto long_lived = expect_publish(*c, "e/long", "long");
  ASSERT_TRUE(long_lived.properties.message_expiry_interval);
  // Received 60, minus the time it waited (just over 1 s): 59 whole seconds left, rounded up.
  EXPECT_GE(*long_lived.properties.message_expiry_interval, 58u);
  EXPECT_LE(*long_lived.properties.message_expiry_interval, 59u);
  auto no_expiry = expect_publish(*c, "e/none", "none");
  EXPECT_FALSE(no_expiry.properties.message_expiry_interval);
}

TEST_F(Mqtt5Test, MessageExpiredWhileWaitingForReceiveMaximumIsNotDelivered) {
  auto connect = make_connect("slow", user());
  connect.properties.receive_maximum = 1;
  auto sub = connected5(connect);
  sub->subscribe("e", 1);
  auto pub = connected("pub", ProtocolVersion::v5);
  const auto published_at = Clock::now();
  pub->send(expiring_publish("e", "first", 1, 1, 1));
  pub->send(expiring_publish("e", "second", 1, 1, 2));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::puback);
  auto first = expect_publish(*sub, "e", "first");
  EXPECT_EQ(first.properties.message_expiry_interval, 1u);
  wait_past(published_at + 1100ms);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, first.packet_id, 0, {}});
  pub->publish("e", "marker", 0);
  expect_publish(*sub, "e", "marker");  // "second" expired in the queue
}

TEST_F(Mqtt5Test, RetainedMessageExpires) {
  auto pub = connected("pub", ProtocolVersion::v5);
  const auto published_at = Clock::now();
  pub->send(expiring_publish("r/short", "short", 1, 1, 1, true));
  pub->send(expiring_publish("r/long", "long", 1, 100, 2, true));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::puback);
  {
    auto sub = connected("early", ProtocolVersion::v5);
    sub->subscribe("r/short", 0);
    auto m = expect_publish(*sub, "r/short", "short");
    EXPECT_TRUE(m.retain);
    EXPECT_EQ(m.properties.message_expiry_interval, 1u);
  }
  wait_past(published_at + 1100ms);
  auto sub = connected("late", ProtocolVersion::v5);
  sub->subscribe("r/#", 0);
  auto m = expect_publish(*sub, "r/long", "long");  // r/short has expired
  EXPECT_GE(m.properties.message_expiry_interval.value_or(0), 98u);
  EXPECT_LE(m.properties.message_expiry_interval.value_or(0), 99u);
  pub->publish("r/marker", "marker");
  expect_publish(*sub, "r/marker", "marker");
}

// ---------------------------------------------------------------------------------------
// Subscription options: No Local, Retain As Published, Retain Handling

TEST_F(Mqtt5Test, NoLocalSkipsOwnMessagesPerSubscription) {
  auto c = connected("self", ProtocolVersion::v5);
  auto other = connected("other", ProtocolVersion::v5);
  subscribe_with(*c, "nl/a", {0, true, false, 0}, 1);
  c->publish("nl/a", "own");  // not delivered back [MQTT-3.8.3-3]
  other->publish("nl/a", "from other");
  expect_publish(*c, "nl/a", "from other");
  // An overlapping subscription without No Local still delivers it (one copy).
  subscribe_with(*c, "nl/+", {0, false, false, 0}, 2);
  c->publish("nl/a", "own again");
  expect_publish(*c, "nl/a", "own again");
  other->publish("nl/a", "marker");
  expect_publish(*c, "nl/a", "marker");
}

TEST_F(Mqtt5Test, RetainAsPublished) {
  auto as_published = connected("rap1", ProtocolVersion::v5);
  auto cleared = connected("rap0", ProtocolVersion::v5);
  subscribe_with(*as_published, "rap", {0, false, true, 0});
  subscribe_with(*cleared, "rap", {0, false, false, 0});
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("rap", "kept", 0, true);
  // Exact bytes: 31 0A 00 03 "rap" 00 (no properties) "kept" for RAP 1 [MQTT-3.3.1-12]
  EXPECT_EQ(as_published->receive_bytes(),
            bytes({0x31, 0x0A, 0, 3, 'r', 'a', 'p', 0, 'k', 'e', 'p', 't'}));
  // and 30 ... with the retain flag cleared for RAP 0 [MQTT-3.3.1-13].
  EXPECT_EQ(cleared->receive_bytes(),
            bytes({0x30, 0x0A, 0, 3, 'r', 'a', 'p', 0, 'k', 'e', 'p', 't'}));
  // A retained message sent because of a new subscription has RETAIN 1 either way.
  auto late = connected("late", ProtocolVersion::v5);
  subscribe_with(*late, "rap", {0, false, false, 0});
  EXPECT_TRUE(expect_publish(*late, "rap", "kept").retain);
}

TEST_F(Mqtt5Test, RetainHandling) {
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("rh/x", "retained", 1, true);
  auto c = connected("sub", ProtocolVersion::v5);
  // 0: sent at every subscribe, new or not [MQTT-3.3.1-9].
  subscribe_with(*c, "rh/#", {0, false, false, 0}, 1);
  expect_publish(*c, "rh/x", "retained");
  subscribe_with(*c, "rh/#", {0, false, false, 0}, 2);
  expect_publish(*c, "rh/x", "retained");
  // 1: only if the subscription did not exist [MQTT-3.3.1-10].
  subscribe_with(*c, "rh/#", {0, false, false, 1}, 3);
  subscribe_with(*c, "rh/+", {0, false, false, 1}, 4);
  expect_publish(*c, "rh/x", "retained");
  // 2: never [MQTT-3.3.1-11].
  subscribe_with(*c, "rh/x", {0, false, false, 2}, 5);
  pub->publish("rh/marker", "marker");
  expect_publish(*c, "rh/marker", "marker");  // one copy: rh/# and rh/+ overlap
}

// ---------------------------------------------------------------------------------------
// Receive Maximum [MQTT-3.3.4-7, -9]

TEST_F(Mqtt5Test, NeverMoreInFlightThanClientReceiveMaximum) {
  auto connect = make_connect("small-window", user());
  connect.properties.receive_maximum = 2;
  auto sub = connected5(connect);
  sub->subscribe("rm", 2);
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("rm", "1", 1);
  pub->publish("rm", "2", 2);
  pub->publish("rm", "3", 1);
  pub->publish("rm", "4", 0);  // QoS 0 is not counted, but keeps its place in the order
  auto m1 = expect_publish(*sub, "rm", "1");
  auto m2 = expect_publish(*sub, "rm", "2");
  EXPECT_FALSE(sub->receive(300ms));  // window full: "3" (and "4" behind it) wait
  sub->send(mqtt::Ack{mqtt::PacketType::pubrec, m2.packet_id, 0, {}});
  EXPECT_EQ(sub->expect<mqtt::Ack>().type, mqtt::PacketType::pubrel);
  EXPECT_FALSE(sub->receive(300ms));  // PUBREC does not free the slot; PUBCOMP does
  sub->send(mqtt::Ack{mqtt::PacketType::pubcomp, m2.packet_id, 0, {}});
  auto m3 = expect_publish(*sub, "rm", "3");
  expect_publish(*sub, "rm", "4");
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m1.packet_id, 0, {}});
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m3.packet_id, 0, {}});
  sub->ping();
}

TEST_F(Mqtt5Test, ResendsAfterReconnectRespectTheNewReceiveMaximum) {
  auto connect = make_connect("resumer", user(), false);
  connect.properties.session_expiry_interval = 60;
  auto pub = connected("pub", ProtocolVersion::v5);
  std::vector<std::uint16_t> ids;
  {
    auto sub = connected5(connect);
    sub->subscribe("rs", 1);
    for (int i = 0; i < 3; ++i) pub->publish("rs", std::to_string(i), 1);
    for (int i = 0; i < 3; ++i)
      ids.push_back(expect_publish(*sub, "rs", std::to_string(i)).packet_id);
    sub->close();  // none acknowledged
  }
  connect.properties.receive_maximum = 1;
  mqtt::Connack connack;
  auto sub = connected5(connect, &connack);
  ASSERT_TRUE(connack.session_present);
  pub->publish("rs", "new", 1);  // queued behind the three resends
  for (int i = 0; i < 3; ++i) {
    auto m = expect_publish(*sub, "rs", std::to_string(i));
    EXPECT_TRUE(m.dup);
    EXPECT_EQ(m.packet_id, ids[i]);
    EXPECT_FALSE(sub->receive(200ms));  // one at a time
    sub->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  }
  auto m = expect_publish(*sub, "rs", "new");
  EXPECT_FALSE(m.dup);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  sub->ping();
}

TEST_F(Mqtt5Test, ClientExceedingOurReceiveMaximumIsDisconnected) {
  auto config = default_config();
  config.receive_maximum = 2;
  start_broker(config);
  mqtt::Connack connack;
  auto c = connected5(make_connect("eager", user()), &connack);
  EXPECT_EQ(connack.properties.receive_maximum, 2);
  for (std::uint16_t id : {1, 2}) {
    c->send(mqtt::Publish{2, false, false, "q2", id, {}, "x"});
    EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
  }
  c->send(mqtt::Ack{mqtt::PacketType::pubrel, 1, 0, {}});
  EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::pubcomp);
  c->send(mqtt::Publish{2, false, false, "q2", 3, {}, "x"});  // 2 unreleased again: fine
  EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
  c->send(mqtt::Publish{1, false, false, "q1", 4, {}, "x"});  // QoS 1 is acked at once
  EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::puback);
  c->send(mqtt::Publish{2, false, false, "q2", 2, {}, "x"});  // a duplicate is no new one
  EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
  c->send(mqtt::Publish{2, false, false, "q2", 5, {}, "x"});  // the third: 0x93
  // DISCONNECT 0x93 with a Reason String (property 0x1F).
  EXPECT_EQ(c->receive_bytes(),
            bytes({0xE0, 0x1D, 0x93, 0x1B, 0x1F, 0, 0x18}) + "receive maximum exceeded");
  EXPECT_TRUE(c->wait_eof());
}

// ---------------------------------------------------------------------------------------
// PUBACK/PUBREC reason codes, Payload Format Indicator, Request Problem Information

TEST_F(Mqtt5Test, NoMatchingSubscribersReasonCode) {
  auto c = connected("lonely", ProtocolVersion::v5);
  c->send(mqtt::Publish{1, false, false, "nobody", 1, {}, "x"});
  // PUBACK 0x10, no properties: 40 03 00 01 10.
  EXPECT_EQ(c->receive_bytes(), bytes({0x40, 0x03, 0, 1, 0x10}));
  c->send(mqtt::Publish{2, false, false, "nobody", 2, {}, "x"});
  EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x03, 0, 2, 0x10}));  // PUBREC 0x10
  c->send(mqtt::Ack{mqtt::PacketType::pubrel, 2, 0, {}});          // the flow goes on
  EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x02, 0, 2}));        // PUBCOMP 0
  // With a subscriber: 0 (short form).
  auto sub = connected("sub", ProtocolVersion::v5);
  sub->subscribe("somebody", 0);
  c->send(mqtt::Publish{1, false, false, "somebody", 3, {}, "x"});
  EXPECT_EQ(c->receive_bytes(), bytes({0x40, 0x02, 0, 3}));
  // 3.1.1 acks carry no reason code.
  auto old = connected("old");
  old->send(mqtt::Publish{1, false, false, "nobody", 4, {}, "x"});
  EXPECT_EQ(old->receive_bytes(), bytes({0x40, 0x02, 0, 4}));
}

TEST_F(Mqtt5Test, PayloadFormatInvalid) {
  auto sub = connected("sub", ProtocolVersion::v5);
  sub->subscribe("pf", 0);
  auto c = connected("pub", ProtocolVersion::v5);
  mqtt::Publish bad{1, false, false, "pf", 1, {}, std::string("\xC3\x28", 2)};
  bad.properties.payload_format_indicator = 1;
  c->send(bad);
  EXPECT_EQ(c->receive_bytes(), bytes({0x40, 0x03, 0, 1, 0x99}));  // PUBACK 0x99
  bad.qos = 2;
  bad.packet_id = 2;
  c->send(bad);
  EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x03, 0, 2, 0x99}));  // PUBREC 0x99: flow ends
  mqtt::Publish good{1, false, false, "pf", 3, {}, "h\xC3\xA9llo"};
  good.properties.payload_format_indicator = 1;
  c->send(good);
  EXPECT_EQ(c->expect<mqtt::Ack>().reason_code, 0);
  auto m = expect_publish(*sub, "pf", "h\xC3\xA9llo");  // the bad ones were not routed
  EXPECT_EQ(m.properties.payload_format_indicator, 1);
  bad.qos = 0;
  bad.packet_id = 0;
  c->send(bad);
  EXPECT_EQ(c->expect<mqtt::Disconnect>().reason_code, 0x99);
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(Mqtt5Test, RequestProblemInformationZeroStillGetsDisconnectReasonString) {
  auto connect = make_connect("quiet", user());
  connect.properties.request_problem_information = 0;
  auto c = connected5(connect);
  // Acks carry no Reason String or User Property [MQTT-3.1.2-29]...
  c->send(mqtt::Publish{1, false, false, "nobody", 1, {}, "x"});
  EXPECT_EQ(c->receive_bytes(), bytes({0x40, 0x03, 0, 1, 0x10}));
  mqtt::Unsubscribe unsubscribe{2, {}, {"never"}};
  c->send(unsubscribe);
  EXPECT_EQ(c->receive_bytes(), bytes({0xB0, 0x04, 0, 2, 0, 0x11}));
  // ...DISCONNECT may.
  c->send(mqtt::Publish{0, false, false, "a/+", 0, {}, "x"});
  auto disconnect = c->expect<mqtt::Disconnect>();
  EXPECT_EQ(disconnect.reason_code, 0x90);
  EXPECT_TRUE(disconnect.properties.reason_string);
}

// ---------------------------------------------------------------------------------------
// Subscription Identifiers [MQTT-3.3.4-3..5]

TEST_F(Mqtt5Test, SubscriptionIdentifiersAreForwarded) {
  mqtt::Connack connack;
  auto sub = connected5(make_connect("ids", user()), &connack);
  EXPECT_EQ(connack.properties.subscription_identifier_available, 1);
  subscribe_with(*sub, "si", {0, false, false, 0}, 1, 5);
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("si", "one");
  // Exact bytes: PUBLISH, topic "si", properties (2 bytes): 0B 05.
  EXPECT_EQ(sub->receive_bytes(), bytes({0x30, 0x0A, 0, 2, 's', 'i', 2, 0x0B, 5, 'o', 'n', 'e'}));
  // Overlapping subscriptions: one copy with every matching identifier.
  subscribe_with(*sub, "si/#", {1, false, false, 0}, 2, 200);
  subscribe_with(*sub, "+", {0, false, false, 0}, 3);  // none
  pub->publish("si", "two", 1);
  auto m = expect_publish(*sub, "si", "two");
  auto ids = m.properties.subscription_identifiers;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{5, 200}));
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  // Subscribing again without an identifier removes it.
  subscribe_with(*sub, "si/#", {0, false, false, 0}, 4);
  subscribe_with(*sub, "si", {0, false, false, 0}, 5);
  pub->publish("si", "three");
  EXPECT_TRUE(expect_publish(*sub, "si", "three").properties.subscription_identifiers.empty());
}

TEST_F(Mqtt5Test, RetainedMessageCarriesTheNewSubscriptionsIdentifier) {
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("ri", "kept", 0, true);
  auto sub = connected("sub", ProtocolVersion::v5);
  subscribe_with(*sub, "ri", {0, false, false, 0}, 1, 268'435'455);  // the largest
  auto m = expect_publish(*sub, "ri", "kept");
  EXPECT_EQ(m.properties.subscription_identifiers, std::vector<std::uint32_t>{268'435'455});
  // A 3.1.1 subscriber gets no properties at all.
  auto old = connected("old");
  old->subscribe("ri", 0);
  EXPECT_EQ(old->receive_bytes(), bytes({0x31, 0x08, 0, 2, 'r', 'i', 'k', 'e', 'p', 't'}));
}

TEST_F(Mqtt5Test, SubscriptionIdentifierZeroIsProtocolError) {
  auto c = connected("zero", ProtocolVersion::v5);
  // SUBSCRIBE id 1, properties 0B 00, filter "a", options 0.
  c->send_bytes(bytes({0x82, 0x09, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0}));
  EXPECT_EQ(c->expect<mqtt::Disconnect>().reason_code, 0x82);
  EXPECT_TRUE(c->wait_eof());
}

// ---------------------------------------------------------------------------------------
// Shared subscriptions ($share/<group>/<filter>)

TEST_F(Mqtt5Test, SharedSubscriptionDeliversEachMessageToOneMember) {
  mqtt::Connack connack;
  auto a = connected5(make_connect("member-a", user()), &connack);
  EXPECT_EQ(connack.properties.shared_subscription_available, 1);
  auto b = connected("member-b");  // 3.1.1 clients may share too
  auto plain = connected("plain", ProtocolVersion::v5);
  subscribe_with(*a, "$share/g/sh/#", {0, false, false, 0}, 1, 9);
  b->subscribe("$share/g/sh/#", 0);
  plain->subscribe("sh/#", 0);
  a->subscribe("end", 0, 2);
  b->subscribe("end", 0, 2);
  auto pub = connected("pub", ProtocolVersion::v5);
  for (int i = 0; i < 4; ++i) pub->publish("sh/t", std::to_string(i));
  pub->publish("end", "marker");
  // Round-robin between two live members: two each, in order; the plain subscriber gets all.
  auto a1 = expect_publish(*a, "sh/t", "0");
  EXPECT_EQ(a1.properties.subscription_identifiers, std::vector<std::uint32_t>{9});
  expect_publish(*a, "sh/t", "2");
  expect_publish(*a, "end", "marker");
  expect_publish(*b, "sh/t", "1");
  expect_publish(*b, "sh/t", "3");
  expect_publish(*b, "end", "marker");
  for (int i = 0; i < 4; ++i) expect_publish(*plain, "sh/t", std::to_string(i));
  // Two groups on one filter each get a copy.
  plain->subscribe("$share/other/sh/#", 0, 2);
  pub->publish("sh/t", "both");
  expect_publish(*plain, "sh/t", "both");
  expect_publish(*plain, "sh/t", "both");
}

TEST_F(Mqtt5Test, SharedSubscriptionPrefersOnlineMembersAndGetsNoRetained) {
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("job", "retained", 1, true);
  auto persistent = make_connect("sleeper", user(), false);
  persistent.properties.session_expiry_interval = 60;
  {
    auto sleeper = connected5(persistent);
    subscribe_with(*sleeper, "$share/w/job", {1, false, false, 0}, 1);
    sleeper->send(mqtt::Disconnect{});
    EXPECT_TRUE(sleeper->wait_eof());
  }
  auto worker = connected("worker", ProtocolVersion::v5);
  // No retained message on a shared subscribe, whatever Retain Handling says.
  subscribe_with(*worker, "$share/w/job", {1, false, false, 0}, 1);
  ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 2; }));
  for (int i = 0; i < 3; ++i) pub->publish("job", std::to_string(i), 1);
  for (int i = 0; i < 3; ++i) {
    auto m = expect_publish(*worker, "job", std::to_string(i));  // all to the online member
    EXPECT_FALSE(m.retain);
    worker->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  }
  mqtt::Connack connack;
  auto sleeper = connected5(persistent, &connack);
  EXPECT_TRUE(connack.session_present);
  sleeper->ping();  // nothing was queued for it
}

TEST_F(Mqtt5Test, SharedInFlightMessageGoesToAnotherMemberWhenSessionEnds) {
  auto first = connected("first", ProtocolVersion::v5);
  subscribe_with(*first, "$share/g/work", {1, false, false, 0}, 1);
  auto second = connected("second", ProtocolVersion::v5);
  subscribe_with(*second, "$share/g/work", {2, false, false, 0}, 1, 4);
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->publish("work", "job-1", 2);
  auto m = expect_publish(*first, "work", "job-1");  // the first member's turn
  EXPECT_EQ(m.qos, 1);
  first->close();  // never acknowledged; Session Expiry 0: the session ends
  auto again = expect_publish(*second, "work", "job-1");
  EXPECT_EQ(again.qos, 2);  // the new member's granted QoS
  EXPECT_FALSE(again.dup);
  EXPECT_EQ(again.properties.subscription_identifiers, std::vector<std::uint32_t>{4});
  second->send(mqtt::Ack{mqtt::PacketType::pubrec, again.packet_id, 0, {}});
  EXPECT_EQ(second->expect<mqtt::Ack>().type, mqtt::PacketType::pubrel);
  second->send(mqtt::Ack{mqtt::PacketType::pubcomp, again.packet_id, 0, {}});
  second->ping();
}

TEST_F(Mqtt5Test, SharedSubscriptionFiltersAndUnsubscribe) {
  auto c = connected("c", ProtocolVersion::v5);
  mqtt::Subscribe subscribe;
  subscribe.packet_id = 1;
  for (const char* filter :
       {"$share/g", "$share//a", "$share/g+/a", "$share/g/a/#/b", "$share/g/a"}) {
    subscribe.subscriptions.push_back({filter, mqtt::SubscribeOptions{1}});
  }
  c->send(subscribe);
  EXPECT_EQ(c->expect<mqtt::Suback>().reason_codes,
            (std::vector<std::uint8_t>{0x8F, 0x8F, 0x8F, 0x8F, 1}));
  mqtt::Unsubscribe unsubscribe{2, {}, {"$share/g/a", "$share/g/a"}};
  c->send(unsubscribe);
  EXPECT_EQ(c->expect<mqtt::Unsuback>().reason_codes, (std::vector<std::uint8_t>{0x00, 0x11}));
  auto pub = connected("pub", ProtocolVersion::v5);
  pub->send(mqtt::Publish{1, false, false, "a", 1, {}, "x"});
  EXPECT_EQ(pub->expect<mqtt::Ack>().reason_code, 0x10);  // nobody left
  // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
  subscribe.subscriptions = {{"$share/g/a", mqtt::SubscribeOptions{0, true, false, 0}}};
  c->send(subscribe);
  EXPECT_EQ(c->expect<mqtt::Disconnect>().reason_code, 0x82);
  EXPECT_TRUE(c->wait_eof());
}

// ---------------------------------------------------------------------------------------
// Enhanced authentication is not offered

TEST_F(Mqtt5Test, AuthenticationMethodGetsBadAuthenticationMethod) {
  auto c = client(ProtocolVersion::v5);
  auto connect = make_connect("enhanced", user());
  connect.properties.authentication_method = "SCRAM-SHA-1";
  c->send(connect);
  EXPECT_EQ(c->receive_bytes(), bytes({0x20, 0x03, 0x00, 0x8C, 0x00}));  // CONNACK 0x8C
  EXPECT_TRUE(c->wait_eof());
  EXPECT_EQ(broker_->stats().sessions, 0u);
}

TEST_F(Mqtt5Test, AuthPacketIsProtocolError) {
  auto c = connected("auth", ProtocolVersion::v5);
  c->send_bytes(bytes({0xF0, 0x00}));  // AUTH, Success, no properties
  EXPECT_EQ(c->receive_bytes(),
            bytes({0xE0, 0x13, 0x82, 0x11, 0x1F, 0x00, 0x0E}) + "protocol error");
  EXPECT_TRUE(c->wait_eof());
}

}  // namespace
}  // namespace credmq::broker

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;

// ---------------------------------------------------------------------------------------
// Server Keep Alive [MQTT-3.2.2-21], [MQTT-3.2.2-22] (--max-keepalive, as Mosquitto's)

class MaxKeepAliveTest : public BrokerTest {
 protected:
  void SetUp() override {
    auto config = default_config();
    config.max_keep_alive = 1;
    start_broker(std::move(config));
  }
};

TEST_F(MaxKeepAliveTest, Mqtt5ClientGetsServerKeepAliveAndItIsEnforced) {
  auto c = client(ProtocolVersion::v5);
  auto connack = c->connect(make_connect("forever", user(), true, 0));  // 0 = never
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.properties.server_keep_alive, std::optional<std::uint16_t>(1));
  // The server's value is the one used: silence for 1.5 s ends with DISCONNECT 0x8D.
  auto disconnect = c->expect<mqtt::Disconnect>(3s);
  EXPECT_EQ(disconnect.reason_code, 0x8D);
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(MaxKeepAliveTest, KeepAliveWithinTheMaximumIsKept) {
  auto c = client(ProtocolVersion::v5);
  auto connack = c->connect(make_connect("short", user(), true, 1));
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_FALSE(connack.properties.server_keep_alive);  // no Server Keep Alive: the client's
  auto v311 = client();
  EXPECT_EQ(v311->connect(make_connect("short311", user(), true, 1)).reason_code, 0);
}

TEST_F(MaxKeepAliveTest, Mqtt311ClientAskingForMoreIsRefused) {
  for (std::uint16_t keep_alive : {0, 2}) {
    auto c = client();
    auto connack = c->connect(make_connect("long", user(), true, keep_alive));
    EXPECT_EQ(connack.reason_code, 0x02) << keep_alive;  // identifier rejected, as Mosquitto
    EXPECT_TRUE(c->wait_eof());
  }
}

// ---------------------------------------------------------------------------------------
// Topic Alias from server to client (3.3.2.3.4): up to the client's Topic Alias Maximum

mqtt::Publish receive_publish(Client& c) { return c.expect<mqtt::Publish>(); }

TEST_F(BrokerTest, OutgoingTopicAliasesUpToTheClientsMaximum) {
  auto sub = client(ProtocolVersion::v5);
  auto connect = make_connect("aliased", user());
  connect.properties.topic_alias_maximum = 2;
  ASSERT_EQ(sub->connect(connect).reason_code, 0);
  sub->subscribe("a/#", 0);
  auto pub = connected("pub");
  for (const char* topic : {"a/1", "a/1", "a/2", "a/3", "a/3", "a/2"}) pub->publish(topic, topic);
  struct Expected {
    const char* topic;  // on the wire; "" = by alias only
    std::uint16_t alias;
    const char* payload;
  };
  for (const auto& [topic, alias, payload] :
       {Expected{"a/1", 1, "a/1"}, Expected{"", 1, "a/1"}, Expected{"a/2", 2, "a/2"},
        Expected{"a/3", 0, "a/3"}, Expected{"a/3", 0, "a/3"}, Expected{"", 2, "a/2"}}) {
    auto p = receive_publish(*sub);
    EXPECT_EQ(p.topic, topic) << payload;
    EXPECT_EQ(p.properties.topic_alias.value_or(0), alias) << payload;
    EXPECT_EQ(p.payload, payload);
  }
}

TEST_F(BrokerTest, NoOutgoingTopicAliasesWithoutTheClientsMaximum) {
  auto sub = client(ProtocolVersion::v5);
  ASSERT_EQ(sub->connect(make_connect("plain", user())).reason_code, 0);
  sub->subscribe("a/#", 0);
  auto pub = connected("pub");
  pub->publish("a/1", "x");
  pub->publish("a/1", "y");
  for (const char* payload : {"x", "y"}) {
    auto p = receive_publish(*sub);
    EXPECT_EQ(p.topic, "a/1");
    EXPECT_FALSE(p.properties.topic_alias);
    EXPECT_EQ(p.payload, payload);
  }
}

}  // namespace
}  // namespace credmq::broker
