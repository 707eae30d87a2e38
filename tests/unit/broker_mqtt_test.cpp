// In-process broker tests: a Broker on 127.0.0.1:0 with a fake Authenticator and a real
// RevocationHub, driven by raw TCP clients that send exact MQTT bytes and check the replies.
#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// CONNECT

TEST_F(BrokerTest, RefusalCodes311) {
  for (auto [username, code] :
       std::vector<std::pair<std::string, std::uint8_t>>{{"bad", 4}, {"deny", 5}, {"down", 3}}) {
    auto c = client();
    c->send(make_connect("dev", username));
    // Exact bytes: 20 02 00 <code>.
    auto connack = c->expect<mqtt::Connack>();
    EXPECT_EQ(connack.reason_code, code) << username;
    EXPECT_FALSE(connack.session_present);
    EXPECT_TRUE(c->wait_eof()) << username;
  }
  EXPECT_EQ(auth_.failures.load(), 0);  // the authenticator throttles its own refusals
}

TEST_F(BrokerTest, RefusalCodes5) {
  for (auto [username, code] : std::vector<std::pair<std::string, std::uint8_t>>{
           {"bad", 0x86}, {"deny", 0x87}, {"down", 0x88}}) {
    auto c = client(ProtocolVersion::v5);
    auto connack = c->connect(make_connect("dev", username));
    EXPECT_EQ(connack.reason_code, code) << username;
    EXPECT_TRUE(c->wait_eof()) << username;
  }
}

TEST_F(BrokerTest, UnsupportedProtocolLevelGetsReturnCode1) {
  auto c = client();
  // CONNECT "MQTT" level 6, clean session, keep alive 60, client id "x".
  const char connect[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 1, 'x'};
  c->send_bytes(std::string_view(connect, sizeof connect));
  auto connack = c->expect<mqtt::Connack>();
  EXPECT_EQ(connack.reason_code, 0x01);
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(BrokerTest, FirstPacketNotConnectCloses) {
  auto c = client();
  c->send(mqtt::Pingreq{});
  EXPECT_TRUE(c->wait_eof());
}

// Like Mosquitto: bytes that cannot start a CONNECT (here an HTTP request, whose "GET " reads as
// an incomplete PUBACK) end the connection at once, not when the CONNECT deadline expires.
TEST_F(BrokerTest, IncompleteNonConnectClosesAtOnce) {
  auto config = default_config();
  config.connect_timeout = 60s;  // far beyond wait_eof's deadline
  start_broker(config);
  auto c = client();
  c->send_bytes("GET / HTTP/1.1\r\n");
  EXPECT_TRUE(c->wait_eof());
}

TEST_F(BrokerTest, EmptyClientId) {
  {
    auto c = client();  // 3.1.1, clean session 0: identifier rejected
    auto connack = c->connect(make_connect("", user(), false));
    EXPECT_EQ(connack.reason_code, 0x02);
    EXPECT_TRUE(c->wait_eof());
  }
  {
    auto c = client();  // 3.1.1, clean session 1: an id is assigned
    EXPECT_EQ(c->connect(make_connect("", user(), true)).reason_code, 0);
    c->ping();
  }
  {
    auto c = client(ProtocolVersion::v5);  // 5.0: assigned and returned
    auto connack = c->connect(make_connect("", user()));
    EXPECT_EQ(connack.reason_code, 0);
    ASSERT_TRUE(connack.properties.assigned_client_identifier);
    EXPECT_FALSE(connack.properties.assigned_client_identifier->empty());
    EXPECT_EQ(connack.properties.topic_alias_maximum, 10);
  }
}

TEST_F(BrokerTest, AnonymousClientUsesConfiguredInstance) {
  auto c = client();
  auto connack = c->connect(make_connect("anon-1", std::nullopt));
  EXPECT_EQ(connack.reason_code, 0);
  c->ping();
}

TEST_F(BrokerTest, ConnectTimeoutCloses) {
  auto c = client();
  EXPECT_TRUE(c->wait_eof(3s));
}

TEST_F(BrokerTest, PacketsPipelinedBehindConnectWaitForTheVerdict) {
  auth_.hold();
  auto c = client();
  mqtt::Packet connect = [] {
    auto p = make_connect("pipelined", user());
    return p;
  }();
  mqtt::Subscribe subscribe;
  subscribe.packet_id = 7;
  subscribe.subscriptions.push_back({"p/t", mqtt::SubscribeOptions{1}});
  std::string bytes;
  mqtt::encode(connect, ProtocolVersion::v3_1_1, bytes);
  mqtt::encode(subscribe, ProtocolVersion::v3_1_1, bytes);
  mqtt::encode(mqtt::Pingreq{}, ProtocolVersion::v3_1_1, bytes);
  c->send_bytes(bytes);
  EXPECT_FALSE(c->receive(100ms));  // nothing before the verdict
  auth_.release();
  EXPECT_EQ(c->expect<mqtt::Connack>().reason_code, 0);
  EXPECT_EQ(c->expect<mqtt::Suback>().packet_id, 7);
  c->expect<mqtt::Pingresp>();
}

TEST_F(BrokerTest, SecondConnectIsProtocolError) {
  auto c = connected("twice", ProtocolVersion::v5);
  c->send(make_connect("twice", user()));
  EXPECT_EQ(c->expect<mqtt::Disconnect>().reason_code, 0x82);
  EXPECT_TRUE(c->wait_eof());
}

// ---------------------------------------------------------------------------------------
// Publish / subscribe

TEST_F(BrokerTest, PublishQos0And1And2ThroughToSubscriber) {
  auto sub = connected("sub");
  auto pub = connected("pub");
  sub->subscribe("a/b", 2);

  pub->publish("a/b", "zero", 0);
  auto m0 = expect_publish(*sub, "a/b", "zero");
  EXPECT_EQ(m0.qos, 0);

  pub->publish("a/b", "one", 1);
  auto m1 = expect_publish(*sub, "a/b", "one");
  EXPECT_EQ(m1.qos, 1);
  EXPECT_NE(m1.packet_id, 0);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m1.packet_id, 0, {}});

  pub->publish("a/b", "two", 2);
  auto m2 = expect_publish(*sub, "a/b", "two");
  EXPECT_EQ(m2.qos, 2);
  sub->send(mqtt::Ack{mqtt::PacketType::pubrec, m2.packet_id, 0, {}});
  auto pubrel = sub->expect<mqtt::Ack>();
  EXPECT_EQ(pubrel.type, mqtt::PacketType::pubrel);
  EXPECT_EQ(pubrel.packet_id, m2.packet_id);
  sub->send(mqtt::Ack{mqtt::PacketType::pubcomp, m2.packet_id, 0, {}});
  sub->ping();

  auto stats = broker_->stats();
  EXPECT_EQ(stats.messages_received, 3u);
  EXPECT_EQ(stats.messages_sent, 3u);
  EXPECT_EQ(stats.connections, 2u);
  EXPECT_EQ(stats.sessions, 2u);
}

TEST_F(BrokerTest, Qos2DuplicateBeforePubrelIsDeliveredOnce) {
  auto sub = connected("sub");
  auto pub = connected("pub");
  sub->subscribe("x", 0);
  mqtt::Publish publish{2, false, false, "x", 5, {}, "once"};
  pub->send(publish);
  EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
  publish.dup = true;
  pub->send(publish);
  EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::pubrec);
  pub->send(mqtt::Ack{mqtt::PacketType::pubrel, 5, 0, {}});
  EXPECT_EQ(pub->expect<mqtt::Ack>().type, mqtt::PacketType::pubcomp);
  pub->publish("x", "marker");
  expect_publish(*sub, "x", "once");
  expect_publish(*sub, "x", "marker");
}

TEST_F(BrokerTest, GrantedQosCapsDelivery) {
  auto sub = connected("sub");
  auto pub = connected("pub");
  sub->subscribe("q", 0);
  pub->publish("q", "m", 2);
  EXPECT_EQ(expect_publish(*sub, "q", "m").qos, 0);
}

TEST_F(BrokerTest, WildcardsAndDollarTopics) {
  auto sub = connected("sub");
  auto sys = connected("sys");
  auto pub = connected("pub");
  sub->subscribe("sport/+/score", 0, 1);
  sub->subscribe("#", 0, 2);
  sys->subscribe("$internal/#", 0);

  pub->publish("$internal/load", "hidden");  // not for "#" [MQTT-4.7.2-1]
  pub->publish("sport/tennis/score", "15-0");
  expect_publish(*sub, "sport/tennis/score", "15-0");  // one copy despite two matches
  expect_publish(*sys, "$internal/load", "hidden");
  pub->publish("sport", "parent");
  expect_publish(*sub, "sport", "parent");
  pub->publish("end", "marker");
  expect_publish(*sub, "end", "marker");
}

TEST_F(BrokerTest, OverlappingSubscriptionsDeliverOneCopyAtMaxQos) {
  auto sub = connected("sub");
  auto pub = connected("pub");
  sub->subscribe("a/#", 1, 1);
  sub->subscribe("a/b", 0, 2);
  pub->publish("a/b", "m", 1);
  auto m = expect_publish(*sub, "a/b", "m");
  EXPECT_EQ(m.qos, 1);
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
  pub->publish("a/b", "marker");
  expect_publish(*sub, "a/b", "marker");
}

TEST_F(BrokerTest, InvalidFilterGetsFailureCodePerFilter) {
  for (auto version : {ProtocolVersion::v3_1_1, ProtocolVersion::v5}) {
    auto c = connected("subber", version);
    mqtt::Subscribe subscribe;
    subscribe.packet_id = 3;
    subscribe.subscriptions.push_back({"a/#/b", mqtt::SubscribeOptions{1}});
    subscribe.subscriptions.push_back({"ok/+", mqtt::SubscribeOptions{2}});
    c->send(subscribe);
    auto suback = c->expect<mqtt::Suback>();
    std::uint8_t failure = version == ProtocolVersion::v5 ? 0x8F : 0x80;
    EXPECT_EQ(suback.reason_codes, (std::vector<std::uint8_t>{failure, 2}));
  }
}

TEST_F(BrokerTest, Unsubscribe) {
  auto sub = connected("sub", ProtocolVersion::v5);
  auto pub = connected("pub");
  sub->subscribe("u/1", 0, 1);
  sub->subscribe("u/2", 0, 2);
  mqtt::Unsubscribe unsubscribe;
  unsubscribe.packet_id = 9;
  unsubscribe.topic_filters = {"u/1", "never"};
  sub->send(unsubscribe);
  auto unsuback = sub->expect<mqtt::Unsuback>();
  EXPECT_EQ(unsuback.packet_id, 9);
  EXPECT_EQ(unsuback.reason_codes, (std::vector<std::uint8_t>{0x00, 0x11}));
  pub->publish("u/1", "gone");
  pub->publish("u/2", "marker");
  expect_publish(*sub, "u/2", "marker");
}

TEST_F(BrokerTest, RetainedSetDeliveredAndDeleted) {
  auto pub = connected("pub");
  pub->publish("r/1", "kept", 1, true);
  {
    auto sub = connected("sub1");
    sub->subscribe("r/#", 1);
    auto m = expect_publish(*sub, "r/1", "kept");
    EXPECT_TRUE(m.retain);
  }
  pub->publish("r/1", "", 0, true);  // delete
  {
    auto sub = connected("sub2");
    sub->subscribe("r/#", 0);
    pub->publish("r/1", "live");
    auto m = expect_publish(*sub, "r/1", "live");
    EXPECT_FALSE(m.retain);
  }
}

TEST_F(BrokerTest, InstancesAreIsolated) {
  auto sub = connected("same-id", ProtocolVersion::v3_1_1, user("i1"));
  auto other = connected("same-id", ProtocolVersion::v3_1_1, user("i2"));  // no takeover
  auto pub1 = connected("pub", ProtocolVersion::v3_1_1, user("i1"));
  auto pub2 = connected("pub", ProtocolVersion::v3_1_1, user("i2"));
  sub->subscribe("t", 0);
  pub2->publish("t", "other instance", 0, true);
  pub1->publish("t", "marker");
  expect_publish(*sub, "t", "marker");
  other->ping();  // not taken over by the same client id on i1
  auto late = connected("late", ProtocolVersion::v3_1_1, user("i1"));
  late->subscribe("t", 0);  // i2's retained message is not visible here
  pub1->publish("t", "marker2");
  expect_publish(*late, "t", "marker2");
}

TEST_F(BrokerTest, TopicAliasFromClient) {
  auto sub = connected("sub");
  auto pub = connected("pub", ProtocolVersion::v5);
  sub->subscribe("al/t", 0);
  mqtt::Publish first{0, false, false, "al/t", 0, {}, "one"};
  first.properties.topic_alias = 1;
  pub->send(first);
  mqtt::Publish second{0, false, false, "", 0, {}, "two"};
  second.properties.topic_alias = 1;
  pub->send(second);
  expect_publish(*sub, "al/t", "one");
  expect_publish(*sub, "al/t", "two");
  mqtt::Publish bad{0, false, false, "al/t", 0, {}, "x"};
  bad.properties.topic_alias = 11;  // above the announced maximum
  pub->send(bad);
  EXPECT_EQ(pub->expect<mqtt::Disconnect>().reason_code, 0x94);
  EXPECT_TRUE(pub->wait_eof());
}

TEST_F(BrokerTest, NeverSendsMoreThanClientMaximumPacketSize) {
  auto sub = client(ProtocolVersion::v5);
  auto connect = make_connect("small", user());
  connect.properties.maximum_packet_size = 64;
  ASSERT_EQ(sub->connect(connect).reason_code, 0);
  sub->subscribe("big", 1);
  auto pub = connected("pub");
  pub->publish("big", std::string(100, 'x'), 1);
  pub->publish("big", "fits", 1);
  auto m = expect_publish(*sub, "big", "fits");
  sub->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});
}

// ---------------------------------------------------------------------------------------
// Will, keep alive, malformed input

TEST_F(BrokerTest, WillOnAbnormalCloseOnly) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto pub = connected("pub");
  {
    auto c = client();
    auto connect = make_connect("dies", user());
    connect.will = mqtt::Will{"will/dies", "gone", 0, false, {}};
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->close();  // no DISCONNECT
  }
  expect_publish(*watcher, "will/dies", "gone");
  {
    auto c = client();
    auto connect = make_connect("polite", user());
    connect.will = mqtt::Will{"will/polite", "gone", 0, false, {}};
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  {
    auto c = client(ProtocolVersion::v5);
    auto connect = make_connect("with-will", user());
    connect.will = mqtt::Will{"will/v5", "asked", 0, false, {}};
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->send(mqtt::Disconnect{0x04, {}});  // Disconnect with Will Message
    EXPECT_TRUE(c->wait_eof());
  }
  expect_publish(*watcher, "will/v5", "asked");  // and nothing from "polite" before it
}

TEST_F(BrokerTest, KeepAliveTimeoutCloses) {
  auto c3 = client();
  ASSERT_EQ(c3->connect(make_connect("idle3", user(), true, 1)).reason_code, 0);
  auto c5 = client(ProtocolVersion::v5);
  ASSERT_EQ(c5->connect(make_connect("idle5", user(), true, 1)).reason_code, 0);
  const auto start = Clock::now();
  EXPECT_EQ(c5->expect<mqtt::Disconnect>(3s).reason_code, 0x8D);
  EXPECT_TRUE(c5->wait_eof(3s));
  EXPECT_TRUE(c3->wait_eof(3s));
  EXPECT_GE(Clock::now() - start, 1s);
}

TEST_F(BrokerTest, MalformedPacketClosesWithReason) {
  auto c5 = connected("bad5", ProtocolVersion::v5);
  const char publish_qos3[] = {0x36, 5, 0, 1, 't', 0, 1};  // QoS 3 is malformed
  c5->send_bytes(std::string_view(publish_qos3, sizeof publish_qos3));
  EXPECT_EQ(c5->expect<mqtt::Disconnect>().reason_code, 0x81);
  EXPECT_TRUE(c5->wait_eof());

  auto c3 = connected("bad3");
  c3->send_bytes(std::string_view(publish_qos3, sizeof publish_qos3));
  EXPECT_TRUE(c3->wait_eof());
  EXPECT_FALSE(c3->receive(0ms));
}

TEST_F(BrokerTest, PacketTooLarge) {
  auto config = default_config();
  config.max_packet_size = 1024;
  start_broker(config);
  auto c5 = connected("big5", ProtocolVersion::v5);
  auto connack_check = client(ProtocolVersion::v5);
  auto connack = connack_check->connect(make_connect("probe", user()));
  EXPECT_EQ(connack.properties.maximum_packet_size, 1024u);
  c5->publish("t", std::string(2000, 'x'));
  EXPECT_EQ(c5->expect<mqtt::Disconnect>().reason_code, 0x95);
  EXPECT_TRUE(c5->wait_eof());
  auto c3 = connected("big3");
  c3->publish("t", std::string(2000, 'x'));
  EXPECT_TRUE(c3->wait_eof());
}

// ---------------------------------------------------------------------------------------
// Sessions and takeover

TEST_F(BrokerTest, TakeoverDisconnectsOldConnection) {
  auto first = client(ProtocolVersion::v5);
  auto connect = make_connect("dev", user(), false);
  connect.properties.session_expiry_interval = 60;
  ASSERT_EQ(first->connect(connect).reason_code, 0);
  first->subscribe("keep", 1);

  auto second = client(ProtocolVersion::v5);
  auto connack = second->connect(connect);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_TRUE(connack.session_present);
  EXPECT_EQ(first->expect<mqtt::Disconnect>().reason_code, 0x8E);
  EXPECT_TRUE(first->wait_eof());

  auto pub = connected("pub");
  pub->publish("keep", "still subscribed", 1);
  auto m = expect_publish(*second, "keep", "still subscribed");
  second->send(mqtt::Ack{mqtt::PacketType::puback, m.packet_id, 0, {}});

  auto third = client();  // 3.1.1 clean session replaces the session
  EXPECT_FALSE(third->connect(make_connect("dev", user(), true)).session_present);
  EXPECT_EQ(second->expect<mqtt::Disconnect>().reason_code, 0x8E);
  EXPECT_TRUE(second->wait_eof());
  EXPECT_EQ(broker_->stats().sessions, 2u);
}

TEST_F(BrokerTest, RefusedConnectLeavesLiveSessionAlone) {
  auto live = connected("dev", ProtocolVersion::v5);
  auto intruder = client(ProtocolVersion::v5);
  EXPECT_EQ(intruder->connect(make_connect("dev", "bad")).reason_code, 0x86);
  EXPECT_TRUE(intruder->wait_eof());
  live->ping();
}

TEST_F(BrokerTest, RacingTakeoversNeverWedgeAClientId) {
  std::vector<std::thread> racers;
  for (int i = 0; i < 8; ++i) {
    racers.emplace_back([this] {
      for (int round = 0; round < 10; ++round) {
        Client c(endpoint_, ProtocolVersion::v5);
        c.send(make_connect("contended", user(), round % 2 == 0));
        c.receive();  // CONNACK, or EOF if already taken over
      }
    });
  }
  for (auto& racer : racers) racer.join();
  auto last = connected("contended", ProtocolVersion::v5);
  last->ping();
}

TEST_F(BrokerTest, PersistentSessionQueuesWhileOffline) {
  {
    auto c = connected("persist", ProtocolVersion::v3_1_1, user(), false);
    c->subscribe("q/#", 2);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  auto pub = connected("pub");
  pub->publish("q/1", "first", 1);
  pub->publish("q/2", "dropped qos0", 0);
  pub->publish("q/3", "second", 2);
  auto c = client();
  auto connack = c->connect(make_connect("persist", user(), false));
  EXPECT_TRUE(connack.session_present);
  auto m1 = expect_publish(*c, "q/1", "first");
  EXPECT_EQ(m1.qos, 1);
  auto m2 = expect_publish(*c, "q/3", "second");
  EXPECT_EQ(m2.qos, 2);
  c->send(mqtt::Ack{mqtt::PacketType::puback, m1.packet_id, 0, {}});
  c->send(mqtt::Ack{mqtt::PacketType::pubrec, m2.packet_id, 0, {}});
  EXPECT_EQ(c->expect<mqtt::Ack>().type, mqtt::PacketType::pubrel);
  c->send(mqtt::Ack{mqtt::PacketType::pubcomp, m2.packet_id, 0, {}});
  c->ping();
}

TEST_F(BrokerTest, UnackedMessagesResentWithDupAfterReconnect) {
  auto pub = connected("pub");
  std::uint16_t packet_id = 0;
  {
    auto c = connected("flaky", ProtocolVersion::v3_1_1, user(), false);
    c->subscribe("d", 1);
    pub->publish("d", "unacked", 1);
    auto m = expect_publish(*c, "d", "unacked");
    EXPECT_FALSE(m.dup);
    packet_id = m.packet_id;
    c->close();  // no PUBACK
  }
  // The broker may see the reconnect before the old socket's EOF: takeover covers that.
  auto c = client();
  EXPECT_TRUE(c->connect(make_connect("flaky", user(), false)).session_present);
  auto again = expect_publish(*c, "d", "unacked");
  EXPECT_TRUE(again.dup);
  EXPECT_EQ(again.packet_id, packet_id);
  c->send(mqtt::Ack{mqtt::PacketType::puback, packet_id, 0, {}});
  c->ping();
}

TEST_F(BrokerTest, SessionExpiryZeroEndsWithConnection) {
  {
    auto c = client(ProtocolVersion::v5);
    ASSERT_EQ(c->connect(make_connect("short", user(), false)).reason_code, 0);
    c->subscribe("s", 1);
    c->send(mqtt::Disconnect{});
    EXPECT_TRUE(c->wait_eof());
  }
  auto c = client(ProtocolVersion::v5);
  EXPECT_FALSE(c->connect(make_connect("short", user(), false)).session_present);
}

// ---------------------------------------------------------------------------------------
// Revocation

TEST_F(BrokerTest, RevocationClosesV5WithAdministrativeActionAndNoWill) {
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  auto bystander = connected("bystander", ProtocolVersion::v5, user("i1", 43));

  auto victim = client(ProtocolVersion::v5);
  auto connect = make_connect("victim", user("i1", 42));
  connect.will = mqtt::Will{"will/victim", "should not appear", 0, false, {}};
  ASSERT_EQ(victim->connect(connect).reason_code, 0);
  victim->subscribe("news", 0);
  EXPECT_EQ(hub_.bound_sessions(), 2u);

  auth_.mark_revoked(42);
  EXPECT_EQ(hub_.revoke(42), 1u);
  EXPECT_EQ(victim->expect<mqtt::Disconnect>().reason_code, 0x98);
  EXPECT_TRUE(victim->wait_eof());

  auto pub = connected("pub");
  pub->publish("will/marker", "marker");
  expect_publish(*watcher, "will/marker", "marker");  // the will would have come first
  bystander->ping();
  EXPECT_TRUE(eventually([&] { return hub_.bound_sessions() == 1; }));

  auto again = client(ProtocolVersion::v5);
  EXPECT_EQ(again->connect(make_connect("victim", user("i1", 42))).reason_code, 0x86);
}

TEST_F(BrokerTest, RevocationClosesV311AndDropsItsLaterPublishes) {
  auto sub = connected("sub");
  sub->subscribe("t", 0);
  auto victim = connected("victim", ProtocolVersion::v3_1_1, user("i1", 7));
  victim->publish("t", "before", 0);
  expect_publish(*sub, "t", "before");

  auth_.mark_revoked(7);
  ASSERT_EQ(hub_.revoke(7), 1u);
  victim->publish("t", "after revoke", 0);  // must not reach anyone
  EXPECT_TRUE(victim->wait_eof());
  EXPECT_FALSE(victim->receive(0ms));  // 3.1.1: no DISCONNECT, just closed

  auto pub = connected("pub");
  pub->publish("t", "marker");
  expect_publish(*sub, "t", "marker");
}

TEST_F(BrokerTest, RevocationDiscardsPersistentSession) {
  {
    auto victim = connected("persistent", ProtocolVersion::v3_1_1, user("i1", 9), false);
    victim->subscribe("p", 1);
    auth_.mark_revoked(9);
    ASSERT_EQ(hub_.revoke(9), 1u);
    EXPECT_TRUE(victim->wait_eof());
  }
  auto pub = connected("pub");
  pub->publish("p", "not queued for the revoked session", 1);
  // The device comes back with its new credential: no old session.
  auto c = client();
  auto connack = c->connect(make_connect("persistent", user("i1", 10), false));
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_FALSE(connack.session_present);
  c->ping();
}

// Revocation item 4 holds for a session that is offline when its credential is revoked:
// nothing more is queued for it and it is never resumed.
TEST_F(BrokerTest, RevocationDiscardsOfflinePersistentSession) {
  {
    auto device = connected("offline", ProtocolVersion::v3_1_1, user("i1", 31), false);
    device->subscribe("q", 1);
    device->send(mqtt::Disconnect{});
    EXPECT_TRUE(device->wait_eof());
  }
  // The offline session stays bound to its credential.
  ASSERT_TRUE(eventually([&] { return hub_.bound_sessions() == 1; }));
  auto pub = connected("pub");
  pub->publish("q", "queued before the revocation", 1);
  auth_.mark_revoked(31);
  EXPECT_EQ(hub_.revoke(31), 1u);
  pub->publish("q", "published after the revocation", 1);
  auto c = client();
  auto connack = c->connect(make_connect("offline", user("i1", 32), false));
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_FALSE(connack.session_present);
  c->ping();                             // a queued PUBLISH would arrive first
  EXPECT_EQ(hub_.bound_sessions(), 1u);  // only the new connection
}

TEST_F(BrokerTest, OfflinePersistentSessionResumesWithItsCredential) {
  {
    auto device = connected("resume", ProtocolVersion::v3_1_1, user("i1", 41), false);
    device->subscribe("r", 1);
    device->send(mqtt::Disconnect{});
    EXPECT_TRUE(device->wait_eof());
  }
  ASSERT_TRUE(eventually([&] { return hub_.bound_sessions() == 1; }));
  auto pub = connected("pub");
  pub->publish("r", "kept while offline", 1);
  auto c = client();
  auto connack = c->connect(make_connect("resume", user("i1", 41), false));
  EXPECT_TRUE(connack.session_present);
  expect_publish(*c, "r", "kept while offline");
  EXPECT_EQ(hub_.bound_sessions(), 1u);  // the offline binding gave way to the connection
}

TEST_F(BrokerTest, RevokeClosesEverySessionOfTheCredential) {
  auto a = connected("shared-a", ProtocolVersion::v5, user("i1", 77));
  auto b = connected("shared-b", ProtocolVersion::v3_1_1, user("i2", 77));
  auth_.mark_revoked(77);
  EXPECT_EQ(hub_.revoke(77), 2u);
  EXPECT_EQ(a->expect<mqtt::Disconnect>().reason_code, 0x98);
  EXPECT_TRUE(a->wait_eof());
  EXPECT_TRUE(b->wait_eof());
}

TEST_F(BrokerTest, RevokedPeerThatDoesNotReadIsHardClosed) {
  auto victim = std::make_unique<Client>(endpoint_, ProtocolVersion::v5, 4096);
  ASSERT_EQ(victim->connect(make_connect("stuck", user("i1", 55))).reason_code, 0);
  victim->subscribe("flood", 0);
  auto pub = connected("pub");
  const std::string payload(64 * 1024, 'x');
  // Enough to fill the victim's window and the broker's send buffer: writes stall.
  for (int i = 0; i < 200; ++i) pub->publish("flood", payload, 1);
  ASSERT_EQ(broker_->stats().connections, 2u);
  auth_.mark_revoked(55);
  const auto revoked_at = Clock::now();
  ASSERT_EQ(hub_.revoke(55), 1u);
  // The victim never reads; the broker must not wait for it beyond close_timeout (200 ms).
  EXPECT_TRUE(eventually([&] { return broker_->stats().connections == 1; }, 2s));
  EXPECT_LT(Clock::now() - revoked_at, 1s);
  pub->ping();
}

// A CONNECT whose authentication overlaps revoke() either is refused or is closed: never
// left open once revoke() has returned.
TEST_F(BrokerTest, RevokeRacingConnectNeverLeavesSessionOpen) {
  int refused = 0;
  int closed_after_accept = 0;
  for (std::int64_t serial = 1000; serial < 1100; ++serial) {
    Client c(endpoint_, serial % 2 ? ProtocolVersion::v5 : ProtocolVersion::v3_1_1);
    c.send(make_connect("racer", user("i1", serial)));
    // Revoke at a varying point of the authentication.
    std::this_thread::sleep_for(std::chrono::microseconds((serial % 10) * 50));
    auth_.mark_revoked(serial);
    hub_.revoke(serial);
    auto reply = c.receive();
    ASSERT_TRUE(reply) << "no CONNACK, serial " << serial;
    auto* connack = std::get_if<mqtt::Connack>(&*reply);
    ASSERT_TRUE(connack);
    if (connack->reason_code == 0) {
      ++closed_after_accept;
    } else {
      EXPECT_EQ(connack->reason_code, serial % 2 ? 0x86 : 4);
      ++refused;
    }
    EXPECT_TRUE(c.wait_eof()) << "session left open, serial " << serial;
  }
  EXPECT_EQ(refused + closed_after_accept, 100);
  EXPECT_TRUE(eventually([&] { return hub_.bound_sessions() == 0; }));
}

// ---------------------------------------------------------------------------------------
// Shutdown

TEST_F(BrokerTest, StopSendsServerShuttingDown) {
  auto c5 = connected("five", ProtocolVersion::v5);
  auto c3 = connected("three");
  broker_->stop();
  EXPECT_EQ(c5->expect<mqtt::Disconnect>().reason_code, 0x8B);
  EXPECT_TRUE(c5->wait_eof());
  EXPECT_TRUE(c3->wait_eof());
  broker_->stop();  // idempotent
}

}  // namespace
}  // namespace credmq::broker
