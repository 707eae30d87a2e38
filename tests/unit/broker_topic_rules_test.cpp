// Per-instance topic rules (docs/security.md, "Authorization"): the rule matcher itself, and
// the broker in-process with raw packets for MQTT 3.1.1 and 5.0 (SUBACK failure codes,
// dropped PUBLISHes and their acks, per-message delivery checks, retained messages, wills,
// and sessions restored under changed rules).
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "broker_test_support.hpp"
#include "credmq/broker/topic_rules.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::PacketType;
using mqtt::ProtocolVersion;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

mqtt::Publish make_publish(std::string topic, std::uint8_t qos, std::uint16_t packet_id,
                           std::string payload) {
  mqtt::Publish publish;
  publish.topic = std::move(topic);
  publish.qos = qos;
  publish.packet_id = packet_id;
  publish.payload = std::move(payload);
  return publish;
}

TopicRules rules(std::initializer_list<const char*> texts) {
  std::vector<TopicRule> parsed;
  for (const char* text : texts) parsed.push_back(parse_topic_rule(text));
  return TopicRules(std::move(parsed));
}

// --- The matcher -------------------------------------------------------------------------

TEST(TopicRulesParse, AcceptsTheThreeAccessesAndRejectsTheRest) {
  auto rule = parse_topic_rule("allow publish devices/%d/#");
  EXPECT_TRUE(rule.allow);
  EXPECT_EQ(rule.access, RuleAccess::publish);
  EXPECT_EQ(rule.pattern, "devices/%d/#");
  EXPECT_EQ(parse_topic_rule("  deny   subscribe  a/+ ").access, RuleAccess::subscribe);
  EXPECT_FALSE(parse_topic_rule("deny subscribe a/+").allow);
  EXPECT_EQ(parse_topic_rule("allow pubsub %g/%c/x").access, RuleAccess::both);
  for (const char* bad : {"", "allow", "allow publish", "permit publish a", "allow read a",
                          "allow publish a b", "allow publish a/#/b", "allow publish a+",
                          "allow publish %x/a", "allow publish a/%", "allow publish $share/g/a"}) {
    EXPECT_THROW(parse_topic_rule(bad), std::invalid_argument) << bad;
  }
}

TEST(TopicRulesMatch, NoRulesAllowEverything) {
  TopicRules none;
  EXPECT_TRUE(none.may_publish("c", "any/topic"));
  EXPECT_TRUE(none.may_subscribe("c", "#"));
  EXPECT_TRUE(none.may_receive("c", "any/topic"));
}

TEST(TopicRulesMatch, FirstMatchWinsAndNothingMatchingIsDenied) {
  auto r = rules({"deny publish devices/%d/locked", "allow pubsub devices/%d/#",
                  "allow subscribe broadcast/#"});
  const char* id = "GID_g@@@dev1";
  EXPECT_TRUE(r.may_publish(id, "devices/dev1/temp"));
  EXPECT_TRUE(r.may_publish(id, "devices/dev1"));  // '#' covers the parent level
  EXPECT_FALSE(r.may_publish(id, "devices/dev1/locked"));
  EXPECT_FALSE(r.may_publish(id, "devices/dev2/temp"));
  EXPECT_FALSE(r.may_publish(id, "broadcast/all"));  // subscribe only
  EXPECT_TRUE(r.may_subscribe(id, "broadcast/#"));
  EXPECT_TRUE(r.may_receive(id, "broadcast/x"));
  EXPECT_FALSE(r.may_subscribe(id, "other"));
}

TEST(TopicRulesMatch, ClientGroupAndDeviceIdsAreSubstituted) {
  auto r = rules({"allow publish c/%c", "allow publish g/%g/+", "allow publish d/%d-x"});
  EXPECT_TRUE(r.may_publish("GID_a@@@d1", "c/GID_a@@@d1"));
  EXPECT_TRUE(r.may_publish("GID_a@@@d1", "g/GID_a/anything"));
  EXPECT_TRUE(r.may_publish("GID_a@@@d1", "d/d1-x"));
  EXPECT_FALSE(r.may_publish("GID_a@@@d1", "g/GID_b/anything"));
  EXPECT_FALSE(r.may_publish("GID_a@@@d1", "d/d2-x"));
  // The device id is everything after the first "@@@".
  EXPECT_TRUE(r.may_publish("GID_a@@@d@@@2", "d/d@@@2-x"));
  // No "@@@": no group or device id, so rules using them match nothing.
  EXPECT_FALSE(r.may_publish("plain", "g//anything"));
  EXPECT_FALSE(r.may_publish("plain", "d/-x"));
  EXPECT_TRUE(r.may_publish("plain", "c/plain"));
}

TEST(TopicRulesMatch, WildcardsOrSlashesInIdsNeverWidenAPattern) {
  auto r = rules({"allow pubsub devices/%d/#"});
  for (const char* id : {"GID_g@@@+", "GID_g@@@#", "GID_g@@@a/b", "GID_g@@@"}) {
    EXPECT_FALSE(r.may_publish(id, "devices/x/y")) << id;
    EXPECT_FALSE(r.may_publish(id, "devices/a/b/y")) << id;
    EXPECT_FALSE(r.may_subscribe(id, "devices/+/#")) << id;
    EXPECT_FALSE(r.may_receive(id, "devices/x/y")) << id;
  }
  // A deny rule whose value cannot be used denies (fails closed) instead of being skipped.
  auto with_deny = rules({"deny publish devices/%d/locked", "allow publish #"});
  EXPECT_FALSE(with_deny.may_publish("GID_g@@@+", "devices/x/unlocked"));
  EXPECT_TRUE(with_deny.may_publish("GID_g@@@ok", "devices/x/unlocked"));
  EXPECT_FALSE(with_deny.may_publish("GID_g@@@ok", "devices/ok/locked"));
}

TEST(TopicRulesMatch, AFilterIsAllowedOnlyWhenThePatternCoversIt) {
  EXPECT_TRUE(TopicRules::covers("a/#", "a/#"));
  EXPECT_TRUE(TopicRules::covers("a/#", "a"));
  EXPECT_TRUE(TopicRules::covers("a/#", "a/+/c"));
  EXPECT_TRUE(TopicRules::covers("a/+", "a/+"));
  EXPECT_TRUE(TopicRules::covers("a/+", "a/b"));
  EXPECT_TRUE(TopicRules::covers("#", "#"));
  EXPECT_TRUE(TopicRules::covers("+/b", "x/b"));
  EXPECT_FALSE(TopicRules::covers("a/+", "a/#"));  // '#' reaches deeper than '+'
  EXPECT_FALSE(TopicRules::covers("a/b", "a/+"));
  EXPECT_FALSE(TopicRules::covers("a/+", "a"));
  EXPECT_FALSE(TopicRules::covers("a/+/c", "a/+/#"));
  EXPECT_FALSE(TopicRules::covers("a", "a/#"));
  EXPECT_FALSE(TopicRules::covers("a/b", "+/b"));
  // Leading wildcards do not match '$' topics [MQTT-4.7.2-1].
  EXPECT_FALSE(TopicRules::covers("#", "$SYS/#"));
  EXPECT_FALSE(TopicRules::covers("+/x", "$SYS/x"));
  EXPECT_TRUE(TopicRules::covers("$SYS/#", "$SYS/broker/+"));
}

// --- The broker ----------------------------------------------------------------------------

constexpr char kDevice[] = "GID_g@@@dev1";

// Keeps what the broker saved, for the next Broker to load (the SQLite store's role).
class MemoryPersistence : public StatePersistence {
 public:
  std::vector<PersistedInstance> load() override {
    std::lock_guard lock(mutex_);
    return saved_;
  }
  void save(const std::vector<PersistedInstance>& instances) override {
    std::lock_guard lock(mutex_);
    for (const auto& instance : instances) {
      std::erase_if(saved_, [&](const auto& old) { return old.id == instance.id; });
      saved_.push_back(instance);
    }
  }

 private:
  std::mutex mutex_;
  std::vector<PersistedInstance> saved_;
};

class TopicRulesBrokerTest : public BrokerTest {
 protected:
  void SetUp() override {}

  // A test's persistence outlives the broker: BrokerTest::TearDown() stops the broker (which
  // saves its state into it) before the fixture's members are destroyed.
  MemoryPersistence persistence_;

  void start_with(std::initializer_list<const char*> texts,
                  StatePersistence* persistence = nullptr) {
    auto config = default_config();
    config.topic_rules.emplace("i1", rules(texts));
    config.persistence = persistence;
    start_broker(std::move(config));
  }

  // A client of the same instance subscribed to everything (the tests using it allow
  // "subscribe #").
  std::unique_ptr<Client> observer(ProtocolVersion version = ProtocolVersion::v3_1_1) {
    auto c = connected("observer", version);
    c->subscribe("#", 2);
    return c;
  }
};

TEST_F(TopicRulesBrokerTest, DeniedSubscribeGets0x80In311And0x87In5) {
  start_with({"allow pubsub devices/%d/#"});
  auto v3 = connected(kDevice, ProtocolVersion::v3_1_1);
  v3->send(mqtt::Subscribe{7, {}, {{"devices/dev1/#", {1}}, {"devices/dev2/#", {1}}, {"#", {0}}}});
  EXPECT_EQ(v3->receive_bytes(), bytes({0x90, 0x05, 0x00, 0x07, 0x01, 0x80, 0x80}));

  auto v5 = connected("GID_g@@@dev2", ProtocolVersion::v5);
  v5->send(mqtt::Subscribe{8, {}, {{"devices/dev1/#", {1}}, {"devices/dev2/+", {2}}}});
  EXPECT_EQ(v5->receive_bytes(), bytes({0x90, 0x05, 0x00, 0x08, 0x00, 0x87, 0x02}));
  // A shared subscription is checked on its filter.
  v5->send(mqtt::Subscribe{9, {}, {{"$share/g/devices/dev2/x", {0}}, {"$share/g/other", {0}}}});
  EXPECT_EQ(v5->receive_bytes(), bytes({0x90, 0x05, 0x00, 0x09, 0x00, 0x00, 0x87}));
}

TEST_F(TopicRulesBrokerTest, DeniedPublishIsDroppedAndAckedAsMosquittoDoes) {
  start_with({"allow publish devices/%d/#", "allow subscribe #"});
  auto watcher = observer();
  for (auto version : {ProtocolVersion::v3_1_1, ProtocolVersion::v5}) {
    SCOPED_TRACE(static_cast<int>(version));
    auto c = connected(kDevice, version);
    const bool v5 = version == ProtocolVersion::v5;
    // QoS 0: silently dropped, the connection stays.
    c->send(make_publish("devices/dev2/t", 0, 0, "q0"));
    // QoS 1: 3.1.1 PUBACK as usual; 5.0 PUBACK 0x87 Not authorized.
    c->send(make_publish("devices/dev2/t", 1, 5, "q1"));
    EXPECT_EQ(c->receive_bytes(),
              v5 ? bytes({0x40, 0x03, 0x00, 0x05, 0x87}) : bytes({0x40, 0x02, 0x00, 0x05}));
    // QoS 2: 3.1.1 PUBREC, PUBREL, PUBCOMP as usual; 5.0 PUBREC 0x87 ends the flow.
    c->send(make_publish("devices/dev2/t", 2, 6, "q2"));
    if (v5) {
      EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x03, 0x00, 0x06, 0x87}));
    } else {
      EXPECT_EQ(c->receive_bytes(), bytes({0x50, 0x02, 0x00, 0x06}));
      c->send_bytes(bytes({0x62, 0x02, 0x00, 0x06}));
      EXPECT_EQ(c->receive_bytes(), bytes({0x70, 0x02, 0x00, 0x06}));
    }
    // Allowed: routed. The observer sees only this one.
    c->publish("devices/dev1/t", "ok", 1);
    expect_publish(*watcher, "devices/dev1/t", "ok");
    c->ping();
  }
  EXPECT_FALSE(watcher->receive(100ms));
}

TEST_F(TopicRulesBrokerTest, DeliveriesAreCheckedPerMessageIncludingRetained) {
  start_with(
      {"deny subscribe devices/%d/secret", "allow subscribe devices/%d/#", "allow publish #"});
  auto publisher = connected("publisher", ProtocolVersion::v5);
  publisher->publish("devices/dev1/secret", "retained secret", 1, true);
  publisher->publish("devices/dev1/open", "retained open", 1, true);
  auto c = connected(kDevice, ProtocolVersion::v5);
  // The filter is covered by the allow rule; the deny rule still keeps its topic out.
  c->subscribe("devices/dev1/#", 1);
  auto retained = expect_publish(*c, "devices/dev1/open", "retained open");
  EXPECT_TRUE(retained.retain);
  publisher->publish("devices/dev1/secret", "live secret", 1);
  publisher->publish("devices/dev1/open", "live open", 1);
  auto live = expect_publish(*c, "devices/dev1/open", "live open");
  c->send(mqtt::Ack{PacketType::puback, retained.packet_id, 0, {}});
  c->send(mqtt::Ack{PacketType::puback, live.packet_id, 0, {}});
  EXPECT_FALSE(c->receive(100ms));
}

TEST_F(TopicRulesBrokerTest, SharedSubscriptionMembersReceiveOnlyWhatTheyMayRead) {
  start_with({"deny subscribe x/%d", "allow subscribe x/#", "allow publish #"});
  auto a = connected("GID_g@@@a", ProtocolVersion::v5);
  a->subscribe("$share/g/x/#", 0);
  auto b = connected("GID_g@@@b", ProtocolVersion::v5);
  b->subscribe("$share/g/x/#", 0);
  auto publisher = connected("publisher");
  // Round-robin would alternate; a member that may not read the topic is passed over.
  for (int i = 0; i < 4; ++i) publisher->publish("x/a", "for b", 0);
  for (int i = 0; i < 4; ++i) expect_publish(*b, "x/a", "for b");
  for (int i = 0; i < 4; ++i) publisher->publish("x/b", "for a", 0);
  for (int i = 0; i < 4; ++i) expect_publish(*a, "x/b", "for a");
  EXPECT_FALSE(a->receive(100ms));
  EXPECT_FALSE(b->receive(100ms));
}

TEST_F(TopicRulesBrokerTest, WillsAreCheckedLikePublishes) {
  start_with({"allow publish devices/%d/#", "allow subscribe #"});
  auto watcher = observer(ProtocolVersion::v5);
  for (const char* topic : {"devices/dev2/status", "devices/dev1/status"}) {
    auto c = client();
    auto connect = make_connect(kDevice, user());
    connect.will = mqtt::Will{topic, "gone", 0, false, {}};
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->close();  // no DISCONNECT: the will is due
  }
  // Only the allowed one arrives.
  expect_publish(*watcher, "devices/dev1/status", "gone");
  EXPECT_FALSE(watcher->receive(100ms));
}

TEST_F(TopicRulesBrokerTest, InstancesWithoutRulesAllowEverything) {
  start_with({"deny pubsub #"});
  // The anonymous instance "anon" has no rules.
  auto sub = client(ProtocolVersion::v5);
  ASSERT_EQ(sub->connect(make_connect("s", std::nullopt)).reason_code, 0);
  sub->subscribe("#", 1);
  auto pub = client();
  ASSERT_EQ(pub->connect(make_connect("p", std::nullopt)).reason_code, 0);
  pub->publish("any/topic", "x", 1);
  expect_publish(*sub, "any/topic", "x");
  // While in "i1" nothing goes.
  auto denied = connected(kDevice, ProtocolVersion::v5);
  denied->send(mqtt::Subscribe{1, {}, {{"#", {0}}}});
  EXPECT_EQ(denied->receive_bytes(), bytes({0x90, 0x04, 0x00, 0x01, 0x00, 0x87}));
}

TEST_F(TopicRulesBrokerTest, ARestoredSessionLosesSubscriptionsTheNewRulesForbid) {
  start_with({"allow pubsub #"}, &persistence_);
  {
    auto c = connected(kDevice, ProtocolVersion::v3_1_1, user(), /*clean=*/false);
    c->subscribe("other/#", 1, 1);
    c->subscribe("devices/dev1/#", 1, 2);
    c->send(mqtt::Disconnect{});
    ASSERT_TRUE(c->wait_eof());
  }
  {
    // Queued while offline, under the old rules.
    auto publisher = connected("publisher");
    publisher->publish("other/queued", "old", 1);
    publisher->publish("devices/dev1/queued", "kept", 1);
  }
  broker_.reset();  // stops and saves

  start_with({"allow pubsub devices/%d/#", "allow publish #"}, &persistence_);
  auto c = client();
  auto connack = c->connect(make_connect(kDevice, user(), /*clean=*/false));
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_TRUE(connack.session_present);
  auto queued = expect_publish(*c, "devices/dev1/queued", "kept");
  c->send(mqtt::Ack{PacketType::puback, queued.packet_id, 0, {}});
  auto publisher = connected("publisher");
  publisher->publish("other/new", "dropped", 1);
  publisher->publish("devices/dev1/new", "delivered", 1);
  auto live = expect_publish(*c, "devices/dev1/new", "delivered");
  c->send(mqtt::Ack{PacketType::puback, live.packet_id, 0, {}});
  EXPECT_FALSE(c->receive(100ms));
  // The dropped subscription is gone, not merely filtered: unsubscribing finds nothing (5.0
  // would say 0x11; 3.1.1 UNSUBACK has no codes, so resubscribe and check the SUBACK).
  c->send(mqtt::Subscribe{3, {}, {{"other/#", {1}}}});
  EXPECT_EQ(c->receive_bytes(), bytes({0x90, 0x03, 0x00, 0x03, 0x80}));
}

}  // namespace
}  // namespace credmq::broker
