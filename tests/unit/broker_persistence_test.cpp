// The broker's persistence (docs/architecture.md, Persistence) with a fake StatePersistence:
// what one Broker saves, a fresh Broker restores; the revocation check at load; when saves
// happen. Also the offline queue limits (count and bytes).
#include <condition_variable>
#include <map>

#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::PacketType;
using mqtt::ProtocolVersion;

constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;  // 3.1.1 Clean Session 0

// Keeps the last saved state per instance, as the SQLite store does (replace per instance).
class FakePersistence : public StatePersistence {
 public:
  std::vector<PersistedInstance> load() override {
    std::lock_guard lock(mutex_);
    std::vector<PersistedInstance> out;
    for (const auto& [id, instance] : saved_) out.push_back(instance);
    return out;
  }

  void save(const std::vector<PersistedInstance>& instances) override {
    std::lock_guard lock(mutex_);
    if (fail_) {
      ++failures_;
      changed_.notify_all();
      throw std::runtime_error("disk full");
    }
    for (const auto& instance : instances) saved_[instance.id] = instance;
    ++saves_;
    changed_.notify_all();
  }

  // Waits until at least `count` saves succeeded (or failed); false at the deadline.
  bool wait_for_saves(int count, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return saves_ >= count; });
  }
  bool wait_for_failures(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return failures_ >= count; });
  }
  int saves() {
    std::lock_guard lock(mutex_);
    return saves_;
  }
  void set_failing(bool fail) {
    std::lock_guard lock(mutex_);
    fail_ = fail;
  }
  // The saved session, if any (a copy).
  std::optional<PersistedSession> session(const std::string& instance, const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = saved_.find(instance);
    if (it == saved_.end()) return std::nullopt;
    for (const auto& session : it->second.sessions) {
      if (session.client_id == id) return session;
    }
    return std::nullopt;
  }
  std::optional<PersistedInstance> instance(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = saved_.find(id);
    if (it == saved_.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, PersistedInstance> saved() {
    std::lock_guard lock(mutex_);
    return saved_;
  }
  // Edits the saved state (as if written by an earlier run).
  template <class Edit>
  void edit(Edit edit) {
    std::lock_guard lock(mutex_);
    edit(saved_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, PersistedInstance> saved_;
  int saves_ = 0;
  int failures_ = 0;
  bool fail_ = false;
};

class PersistenceTest : public BrokerTest {
 protected:
  void SetUp() override { start_broker(config()); }

  BrokerConfig config() {
    auto config = default_config();
    config.persistence = &persistence_;
    // Long: periodic saves stay out of the way unless a test shortens it.
    config.save_interval = 1h;
    return config;
  }

  // A graceful restart: stop() saves, a fresh Broker loads.
  void restart() { start_broker(config()); }

  // Outlives the broker: BrokerTest::TearDown stops it (saving here) before members go.
  FakePersistence persistence_;
};

mqtt::Connect v5_connect(std::string client_id, std::int64_t serial, std::uint32_t expiry,
                         bool clean_start = false) {
  auto connect = make_connect(std::move(client_id), user("i1", serial), clean_start);
  connect.properties.session_expiry_interval = expiry;
  return connect;
}

mqtt::Publish publish_packet(std::string topic, std::string payload, std::uint8_t qos,
                             std::uint16_t packet_id = 0, bool retain = false) {
  mqtt::Publish publish;
  publish.topic = std::move(topic);
  publish.payload = std::move(payload);
  publish.qos = qos;
  publish.packet_id = packet_id;
  publish.retain = retain;
  return publish;
}

// Disconnects cleanly and waits until the broker has closed the connection, so the session
// is offline before anything else happens.
void disconnect(std::unique_ptr<Client>& c) {
  c->send(mqtt::Disconnect{});
  EXPECT_TRUE(c->wait_eof());
  c.reset();
}

TEST_F(PersistenceTest, OfflineSessionAndItsQueueSurviveARestart) {
  for (const char* id : {"sub", "sub2"}) {
    auto c = connected(id, ProtocolVersion::v3_1_1, user("i1", 7), false);
    c->subscribe("t/#", 1);
    disconnect(c);
  }
  {
    auto pub = connected("pub");
    for (int i = 1; i <= 3; ++i) {
      pub->publish("t/" + std::to_string(i), "m" + std::to_string(i), 1);
    }
    pub->publish("t/qos0", "not kept offline", 0);
  }
  restart();

  // One copy of each message although two queues hold it.
  auto saved = persistence_.instance("i1");
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->messages.size(), 3u);
  auto saved_sub = persistence_.session("i1", "sub");
  ASSERT_TRUE(saved_sub);
  EXPECT_EQ(saved_sub->expiry_interval, kNeverExpires);
  EXPECT_EQ(saved_sub->credential_serial, 7);
  ASSERT_EQ(saved_sub->subscriptions.size(), 1u);
  EXPECT_EQ(saved_sub->subscriptions[0].filter, "t/#");
  EXPECT_EQ(saved_sub->subscriptions[0].options.qos, 1);
  ASSERT_EQ(saved_sub->queue.size(), 3u);
  EXPECT_FALSE(persistence_.session("i1", "pub"));  // Clean Session: not persistent

  EXPECT_EQ(broker_->stats().sessions, 2u);
  auto c = client();
  auto connack = c->connect(make_connect("sub", user("i1", 7), false));
  EXPECT_TRUE(connack.session_present);
  for (int i = 1; i <= 3; ++i) {
    auto m = expect_publish(*c, "t/" + std::to_string(i), "m" + std::to_string(i));
    EXPECT_EQ(m.qos, 1);
    EXPECT_FALSE(m.dup);
    c->send(mqtt::Ack{PacketType::puback, m.packet_id, 0, {}});
  }
  // The subscription came back too.
  auto pub = connected("pub");
  pub->publish("t/4", "m4", 1);
  expect_publish(*c, "t/4", "m4");
}

TEST_F(PersistenceTest, InflightAndQos2StateResumeWithTheSamePacketIds) {
  auto sub = client(ProtocolVersion::v5);
  ASSERT_EQ(sub->connect(v5_connect("sub", 8, 1000)).reason_code, 0);
  sub->subscribe("q/#", 2);
  auto pub = connected("pub");
  pub->publish("q/1", "one", 1);
  auto first = expect_publish(*sub, "q/1", "one");  // not acknowledged
  pub->publish("q/2", "two", 2);
  auto second = expect_publish(*sub, "q/2", "two");
  sub->send(mqtt::Ack{PacketType::pubrec, second.packet_id, 0, {}});
  auto pubrel = sub->expect<mqtt::Ack>();  // PUBCOMP never sent: released, awaiting PUBCOMP
  EXPECT_EQ(pubrel.type, PacketType::pubrel);
  // Incoming QoS 2 from the subscriber, PUBREL not sent yet.
  sub->send(publish_packet("other/in", "in", 2, 77));
  auto pubrec = sub->expect<mqtt::Ack>();
  EXPECT_EQ(pubrec.type, PacketType::pubrec);
  EXPECT_EQ(pubrec.reason_code, 0x10);  // no subscribers
  pub.reset();

  restart();  // the live session goes offline (0x8B) and is saved as such
  EXPECT_TRUE(sub->wait_eof());
  auto saved = persistence_.session("i1", "sub");
  ASSERT_TRUE(saved);
  ASSERT_EQ(saved->inflight.size(), 2u);
  EXPECT_FALSE(saved->inflight[0].released);
  EXPECT_TRUE(saved->inflight[1].released);
  EXPECT_FALSE(saved->inflight[1].message);  // the payload is no longer needed
  EXPECT_EQ(saved->incoming_qos2, std::vector<std::uint16_t>{77});

  auto again = client(ProtocolVersion::v5);
  auto connack = again->connect(v5_connect("sub", 8, 1000));
  EXPECT_TRUE(connack.session_present);
  auto resent = expect_publish(*again, "q/1", "one");
  EXPECT_TRUE(resent.dup);
  EXPECT_EQ(resent.qos, 1);
  EXPECT_EQ(resent.packet_id, first.packet_id);
  auto rel = again->expect<mqtt::Ack>();
  EXPECT_EQ(rel.type, PacketType::pubrel);
  EXPECT_EQ(rel.packet_id, second.packet_id);
  again->send(mqtt::Ack{PacketType::puback, first.packet_id, 0, {}});
  again->send(mqtt::Ack{PacketType::pubcomp, second.packet_id, 0, {}});
  // The retransmitted QoS 2 PUBLISH is a duplicate (PUBREC 0x00, not routed again), and its
  // PUBREL finds the packet id (PUBCOMP 0x00, not 0x92).
  auto dup = publish_packet("other/in", "in", 2, 77);
  dup.dup = true;
  again->send(dup);
  auto rec = again->expect<mqtt::Ack>();
  EXPECT_EQ(rec.type, PacketType::pubrec);
  EXPECT_EQ(rec.reason_code, 0x00);
  again->send(mqtt::Ack{PacketType::pubrel, 77, 0, {}});
  auto comp = again->expect<mqtt::Ack>();
  EXPECT_EQ(comp.type, PacketType::pubcomp);
  EXPECT_EQ(comp.packet_id, 77);
  EXPECT_EQ(comp.reason_code, 0x00);
  // Packet ids continue where they were.
  auto pub2 = connected("pub");
  pub2->publish("q/3", "three", 1);
  auto third = expect_publish(*again, "q/3", "three");
  EXPECT_EQ(third.packet_id, static_cast<std::uint16_t>(second.packet_id + 1));
}

// [MQTT-4.6.0-1]: resends go in the order first sent, also when the packet ids wrapped
// (65534, 65535, then 1, 2). The saved next packet id lets the test start near the wrap.
TEST_F(PersistenceTest, ResendsAfterPacketIdWrapKeepTheOriginalOrder) {
  {
    auto sub = client(ProtocolVersion::v5);
    ASSERT_EQ(sub->connect(v5_connect("sub", 8, 1000)).reason_code, 0);
    sub->subscribe("w/#", 1);
    disconnect(sub);
  }
  restart();
  persistence_.edit([](auto& saved) {
    for (auto& session : saved.at("i1").sessions) {
      if (session.client_id == "sub") session.next_packet_id = 65534;
    }
  });
  restart();
  auto sub = client(ProtocolVersion::v5);
  ASSERT_TRUE(sub->connect(v5_connect("sub", 8, 1000)).session_present);
  auto pub = connected("pub");
  const std::vector<std::uint16_t> expected_ids = {65534, 65535, 1, 2};
  for (int i = 0; i < 4; ++i) {
    pub->publish("w/" + std::to_string(i), "m" + std::to_string(i), 1);
    auto m = expect_publish(*sub, "w/" + std::to_string(i), "m" + std::to_string(i));
    EXPECT_EQ(m.packet_id, expected_ids[i]);  // not acknowledged
  }
  sub->close();
  auto again = client(ProtocolVersion::v5);
  ASSERT_TRUE(again->connect(v5_connect("sub", 8, 1000)).session_present);
  for (int i = 0; i < 4; ++i) {
    auto m = expect_publish(*again, "w/" + std::to_string(i), "m" + std::to_string(i));
    EXPECT_EQ(m.packet_id, expected_ids[i]);
    EXPECT_TRUE(m.dup);
  }
}

TEST_F(PersistenceTest, RetainedMessagesKeepTheirPropertiesAndExpiry) {
  {
    auto pub = client(ProtocolVersion::v5);
    ASSERT_EQ(pub->connect(make_connect("pub", user("i1"))).reason_code, 0);
    auto publish = publish_packet("r/props", "hello", 1, 5, true);
    auto& p = publish.properties;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 3600;
    p.content_type = "text/plain";
    p.response_topic = "r/reply";
    p.correlation_data = std::string("\x00\x01", 2);
    p.user_properties = {{"k", "v"}, {"k", "w"}};
    pub->send(publish);
    EXPECT_EQ(pub->expect<mqtt::Ack>().type, PacketType::puback);
    pub->send(publish_packet("r/plain", "kept", 0, 0, true));
    pub->ping();
  }
  restart();
  auto saved = persistence_.instance("i1");
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->retained.size(), 2u);

  auto sub = client(ProtocolVersion::v5);
  ASSERT_EQ(sub->connect(make_connect("sub", user("i1"))).reason_code, 0);
  sub->subscribe("r/#", 1);
  auto plain = expect_publish(*sub, "r/plain", "kept");  // retained map order: by topic
  EXPECT_TRUE(plain.retain);
  EXPECT_EQ(plain.qos, 0);
  EXPECT_TRUE(plain.properties.empty());
  auto props = expect_publish(*sub, "r/props", "hello");
  EXPECT_TRUE(props.retain);
  EXPECT_EQ(props.qos, 1);
  const auto& p = props.properties;
  EXPECT_EQ(p.payload_format_indicator, 1);
  ASSERT_TRUE(p.message_expiry_interval);
  EXPECT_LE(*p.message_expiry_interval, 3600u);
  EXPECT_GE(*p.message_expiry_interval, 3590u);
  EXPECT_EQ(p.content_type, "text/plain");
  EXPECT_EQ(p.response_topic, "r/reply");
  EXPECT_EQ(p.correlation_data, std::string("\x00\x01", 2));
  EXPECT_EQ(p.user_properties,
            (std::vector<std::pair<std::string, std::string>>{{"k", "v"}, {"k", "w"}}));
}

TEST_F(PersistenceTest, SessionOfACredentialRevokedWhileStoppedIsGone) {
  for (auto [id, serial] : {std::pair{"victim", 42}, std::pair{"bystander", 43}}) {
    auto c = connected(id, ProtocolVersion::v3_1_1, user("i1", serial), false);
    c->subscribe("v/#", 1);
    disconnect(c);
  }
  {
    auto pub = connected("pub");
    pub->publish("v/1", "queued", 1);
  }
  broker_.reset();         // graceful stop: both saved with their queue
  auth_.mark_revoked(42);  // unregistered (or refreshed) while the broker was down
  start_broker(config());
  EXPECT_EQ(broker_->stats().sessions, 1u);
  EXPECT_EQ(hub_.bound_sessions(), 1u);  // the bystander's offline session, bound to 43

  // A new credential for the same client id: no session, nothing delivered.
  auto victim = client();
  auto connack = victim->connect(make_connect("victim", user("i1", 44), false));
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_FALSE(connack.session_present);
  EXPECT_FALSE(victim->receive(300ms));
  auto bystander = client();
  EXPECT_TRUE(bystander->connect(make_connect("bystander", user("i1", 43), false)).session_present);
  expect_publish(*bystander, "v/1", "queued");

  // The next save forgets the dropped session's state.
  broker_.reset();
  auto saved = persistence_.session("i1", "victim");
  ASSERT_TRUE(saved);  // the new (empty) session of serial 44
  EXPECT_EQ(saved->credential_serial, 44);
  EXPECT_TRUE(saved->subscriptions.empty());
  EXPECT_TRUE(saved->queue.empty());
}

TEST_F(PersistenceTest, RevocationAfterARestartReachesTheRestoredSession) {
  {
    auto c = connected("dev", ProtocolVersion::v3_1_1, user("i1", 50), false);
    c->subscribe("d/#", 1);
    disconnect(c);
  }
  restart();
  auth_.mark_revoked(50);
  EXPECT_EQ(hub_.revoke(50), 1u);  // the restored offline session was bound
  auto pub = connected("pub");
  pub->publish("d/1", "never", 1);
  auto c = client();
  EXPECT_FALSE(c->connect(make_connect("dev", user("i1", 51), false)).session_present);
  EXPECT_FALSE(c->receive(300ms));
}

TEST_F(PersistenceTest, DelayedWillWaitsAcrossARestart) {
  {
    auto connect = v5_connect("mortal", 0, 100);
    connect.will = mqtt::Will{"will/mortal", "gone", 0, false, {}};
    connect.will->properties.will_delay_interval = 1;
    connect.will->properties.user_properties = {{"why", "crash"}};
    auto c = client(ProtocolVersion::v5);
    ASSERT_EQ(c->connect(connect).reason_code, 0);
    c->close();  // no DISCONNECT: the will waits for its delay
  }
  ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 0; }));
  restart();
  auto saved = persistence_.session("i1", "mortal");
  ASSERT_TRUE(saved);
  ASSERT_TRUE(saved->will);
  EXPECT_EQ(saved->will->will.topic, "will/mortal");
  auto watcher = connected("watcher");
  watcher->subscribe("will/#", 0);
  expect_publish(*watcher, "will/mortal", "gone");
}

TEST_F(PersistenceTest, SessionExpiryCountsTheTimeTheBrokerWasDown) {
  for (const char* id : {"recent", "stale"}) {
    auto c = client(ProtocolVersion::v5);
    ASSERT_EQ(c->connect(v5_connect(id, 0, 60)).reason_code, 0);
    c->subscribe("e/#", 1);
    disconnect(c);
  }
  broker_.reset();
  // As if the broker had been down for 30 s and 61 s since each session went offline.
  persistence_.edit([](auto& saved) {
    for (auto& session : saved["i1"].sessions) {
      session.offline_since -= session.client_id == "stale" ? 61s : 30s;
    }
  });
  start_broker(config());
  auto recent = client(ProtocolVersion::v5);
  EXPECT_TRUE(recent->connect(v5_connect("recent", 0, 60)).session_present);
  auto stale = client(ProtocolVersion::v5);
  EXPECT_FALSE(stale->connect(v5_connect("stale", 0, 60)).session_present);
}

TEST_F(PersistenceTest, SharedSubscriptionAndItsQueueSurviveARestart) {
  {
    auto c = connected("member", ProtocolVersion::v3_1_1, user("i1"), false);
    c->subscribe("$share/g/s/#", 1);
    disconnect(c);
  }
  {
    auto pub = connected("pub");
    pub->publish("s/1", "shared", 1);
  }
  restart();
  auto saved = persistence_.session("i1", "member");
  ASSERT_TRUE(saved);
  ASSERT_EQ(saved->queue.size(), 1u);
  EXPECT_EQ(saved->queue[0].shared_filter, "$share/g/s/#");
  auto c = client();
  EXPECT_TRUE(c->connect(make_connect("member", user("i1"), false)).session_present);
  auto m = expect_publish(*c, "s/1", "shared");
  c->send(mqtt::Ack{PacketType::puback, m.packet_id, 0, {}});
  auto pub = connected("pub");
  pub->publish("s/2", "after", 1);
  expect_publish(*c, "s/2", "after");
}

// A crash right after a periodic save: the live session was saved as it was then (offline
// from the time of the save), with its unacknowledged message in flight.
TEST_F(PersistenceTest, LiveSessionFromAPeriodicSaveComesBackAfterACrash) {
  auto fast = config();
  fast.save_interval = 20ms;
  start_broker(fast);
  auto sub = connected("live", ProtocolVersion::v3_1_1, user("i1", 9), false);
  sub->subscribe("l/#", 1);
  auto pub = connected("pub");
  pub->publish("l/1", "in flight", 1);
  auto first = expect_publish(*sub, "l/1", "in flight");  // never acknowledged
  ASSERT_TRUE(eventually([&] {
    auto saved = persistence_.session("i1", "live");
    return saved && saved->inflight.size() == 1;
  }));
  // What the file holds at the crash; the old broker's own later saves go elsewhere.
  FakePersistence after_crash;
  after_crash.edit([&](auto& state) { state = persistence_.saved(); });
  auto config = default_config();
  config.persistence = &after_crash;
  Broker restarted(config, auth_, hub_);
  restarted.start();
  Client again(restarted.bound_endpoints().at(0), ProtocolVersion::v3_1_1);
  EXPECT_TRUE(again.connect(make_connect("live", user("i1", 9), false)).session_present);
  auto resent = expect_publish(again, "l/1", "in flight");
  EXPECT_TRUE(resent.dup);
  EXPECT_EQ(resent.packet_id, first.packet_id);
  again.send(mqtt::Ack{PacketType::puback, resent.packet_id, 0, {}});
  again.ping();
  restarted.stop();
}

TEST_F(PersistenceTest, SavesPeriodicallyOnlyWhenSomethingPersistentChanged) {
  auto fast = config();
  fast.save_interval = 20ms;
  start_broker(fast);
  // Clean sessions and their traffic change nothing that is saved.
  auto clean = connected("clean");
  clean->subscribe("c/#", 1);
  clean->publish("c/1", "x", 1);
  expect_publish(*clean, "c/1", "x");
  EXPECT_FALSE(persistence_.wait_for_saves(1, 200ms));

  auto sub = connected("keeper", ProtocolVersion::v3_1_1, user("i1"), false);
  sub->subscribe("k/#", 1);
  ASSERT_TRUE(eventually([&] {
    auto saved = persistence_.session("i1", "keeper");
    return saved && saved->subscriptions.size() == 1;
  }));
  // The CONNECT and the SUBSCRIBE each mark the session changed; a save may fall between
  // the two marks, so one more save can follow the one that showed the subscription. After
  // that, idle: no save at all.
  int after_subscribe = persistence_.saves();
  for (int round = 0; round < 3 && persistence_.wait_for_saves(after_subscribe + 1, 100ms);
       ++round) {
    after_subscribe = persistence_.saves();
  }
  EXPECT_FALSE(persistence_.wait_for_saves(after_subscribe + 1, 200ms));  // idle: no save

  disconnect(sub);
  auto pub = connected("pub");
  pub->publish("k/1", "queued", 1);
  ASSERT_TRUE(eventually([&] {
    auto saved = persistence_.session("i1", "keeper");
    return saved && saved->queue.size() == 1;
  }));
}

TEST_F(PersistenceTest, FailedSaveIsRetried) {
  auto fast = config();
  fast.save_interval = 20ms;
  start_broker(fast);
  persistence_.set_failing(true);
  auto sub = connected("keeper", ProtocolVersion::v3_1_1, user("i1"), false);
  sub->subscribe("k/#", 1);
  ASSERT_TRUE(persistence_.wait_for_failures(2));
  persistence_.set_failing(false);
  ASSERT_TRUE(persistence_.wait_for_saves(1));
  EXPECT_TRUE(persistence_.session("i1", "keeper"));
}

// ---------------------------------------------------------------------------------------
// Offline queue limits

class QueueLimitTest : public BrokerTest {
 protected:
  void start_with(std::size_t max_count, std::size_t max_bytes) {
    auto config = default_config();
    config.max_queued_per_session = max_count;
    config.max_queued_bytes_per_session = max_bytes;
    start_broker(config);
  }

  // An offline persistent session subscribed to "l/#" at QoS 1.
  void park(const std::string& id) {
    auto c = connected(id, ProtocolVersion::v3_1_1, user(), false);
    c->subscribe("l/#", 1);
    disconnect(c);
  }
};

TEST_F(QueueLimitTest, BytesLimitDropsOnceTheQueueHoldsThatMany) {
  start_with(0, 10);  // no count limit
  park("slow");
  auto pub = connected("pub");
  // 4-byte payloads: queued at 0, 4 and 8 bytes held (each below 10), dropped at 12.
  for (int i = 1; i <= 5; ++i) pub->publish("l/" + std::to_string(i), "abcd", 1);
  EXPECT_EQ(broker_->stats().messages_dropped, 2u);
  auto c = client();
  EXPECT_TRUE(c->connect(make_connect("slow", user(), false)).session_present);
  for (int i = 1; i <= 3; ++i) {
    auto m = expect_publish(*c, "l/" + std::to_string(i), "abcd");
    c->send(mqtt::Ack{PacketType::puback, m.packet_id, 0, {}});
  }
  EXPECT_FALSE(c->receive(300ms));
  // An empty queue takes a payload larger than the limit (as Mosquitto).
  pub->publish("l/big", std::string(100, 'x'), 1);
  expect_publish(*c, "l/big", std::string(100, 'x'));
}

TEST_F(QueueLimitTest, CountLimitDropsNewMessages) {
  start_with(2, 0);
  park("slow");
  auto pub = connected("pub");
  for (int i = 1; i <= 4; ++i) pub->publish("l/" + std::to_string(i), "m", 1);
  EXPECT_EQ(broker_->stats().messages_dropped, 2u);
  auto c = client();
  EXPECT_TRUE(c->connect(make_connect("slow", user(), false)).session_present);
  expect_publish(*c, "l/1", "m");
  expect_publish(*c, "l/2", "m");
  EXPECT_FALSE(c->receive(300ms));
}

}  // namespace
}  // namespace credmq::broker
