// $SYS/broker/... topics: Mosquitto's names, one set per instance, read-only for clients.
#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;

class SysTopicsTest : public BrokerTest {
 protected:
  void SetUp() override {
    auto config = default_config();
    config.sys_interval = 1s;
    start_broker(std::move(config));
  }

  // Reads PUBLISHes on `topic` until one carries `payload` (values are refreshed each second).
  static bool await_value(Client& c, const std::string& topic, const std::string& payload) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto packet = c.receive(1500ms);
      if (!packet) continue;
      const auto* publish = std::get_if<mqtt::Publish>(&*packet);
      if (publish && publish->topic == topic && publish->payload == payload) return true;
    }
    return false;
  }
};

TEST_F(SysTopicsTest, VersionAndUptimeAreRetained) {
  auto c = connected("reader");
  c->subscribe("$SYS/broker/version", 0);
  auto version = c->expect<mqtt::Publish>(3s);
  EXPECT_EQ(version.topic, "$SYS/broker/version");
  EXPECT_TRUE(version.payload.starts_with("credmq version ")) << version.payload;
  // A later subscriber gets the retained value at once.
  auto late = connected("late");
  late->subscribe("$SYS/broker/uptime", 0);
  auto uptime = late->expect<mqtt::Publish>();
  EXPECT_TRUE(uptime.retain);
  EXPECT_TRUE(uptime.payload.ends_with(" seconds")) << uptime.payload;
}

TEST_F(SysTopicsTest, ClientCountsArePerInstance) {
  auto reader = connected("reader", ProtocolVersion::v3_1_1, user("i1"));
  reader->subscribe("$SYS/broker/clients/connected", 0);
  EXPECT_TRUE(await_value(*reader, "$SYS/broker/clients/connected", "1"));
  auto other = connected("other", ProtocolVersion::v3_1_1, user("i1"));
  EXPECT_TRUE(await_value(*reader, "$SYS/broker/clients/connected", "2"));
  // Another instance counts only its own clients.
  auto elsewhere = connected("elsewhere", ProtocolVersion::v3_1_1, user("i2"));
  elsewhere->subscribe("$SYS/broker/clients/connected", 0);
  EXPECT_TRUE(await_value(*elsewhere, "$SYS/broker/clients/connected", "1"));
  other->close();
  EXPECT_TRUE(await_value(*reader, "$SYS/broker/clients/connected", "1"));
}

TEST_F(SysTopicsTest, PublishCountersCountPublishes) {
  auto reader = connected("reader");
  reader->subscribe("$SYS/broker/publish/messages/received", 0);
  auto publisher = connected("publisher");
  publisher->publish("a/b", "1", 1);
  publisher->publish("a/b", "2", 1);
  EXPECT_TRUE(await_value(*reader, "$SYS/broker/publish/messages/received", "2"));
}

// [MQTT-4.7.2-1]: wildcards at the first level do not match topics starting with '$'.
TEST_F(SysTopicsTest, WildcardsDoNotMatchSys) {
  auto everything = connected("everything");
  everything->subscribe("#", 0);
  everything->subscribe("+/broker/#", 0, 2);
  auto reader = connected("reader");
  reader->subscribe("$SYS/#", 0);
  ASSERT_TRUE(reader->receive(3s));  // a $SYS value was routed
  EXPECT_FALSE(everything->receive(300ms));
}

TEST_F(SysTopicsTest, ClientsCannotPublishToSys) {
  auto reader = connected("reader");
  reader->subscribe("$SYS/broker/version", 0);
  ASSERT_TRUE(reader->receive(3s));
  auto v5 = client(ProtocolVersion::v5);
  ASSERT_EQ(v5->connect(make_connect("writer5", user())).reason_code, 0);
  mqtt::Publish publish;
  publish.topic = "$SYS/broker/version";
  publish.payload = "forged";
  publish.qos = 1;
  publish.packet_id = 7;
  v5->send(publish);
  auto puback = v5->expect<mqtt::Ack>();
  EXPECT_EQ(puback.type, mqtt::PacketType::puback);
  EXPECT_EQ(puback.reason_code, 0x87);  // Not authorized
  // 3.1.1 has no failure ack for PUBLISH: acknowledged and dropped.
  auto v311 = connected("writer311");
  v311->publish("$SYS/broker/version", "forged", 1);
  v311->publish("$SYS/broker/version", "forged", 2);
  v311->publish("$SYS/broker/version", "forged", 0);
  EXPECT_FALSE(reader->receive(300ms));
  // The retained value is still the broker's.
  auto late = connected("late");
  late->subscribe("$SYS/broker/version", 0);
  EXPECT_TRUE(late->expect<mqtt::Publish>().payload.starts_with("credmq version "));
}

TEST_F(SysTopicsTest, DisabledWithZeroInterval) {
  auto config = default_config();
  config.sys_interval = 0s;
  start_broker(std::move(config));
  auto reader = connected("reader");
  reader->subscribe("$SYS/#", 0);
  EXPECT_FALSE(reader->receive(1500ms));
}

}  // namespace
}  // namespace credmq::broker
