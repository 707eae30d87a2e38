// Connection limits and the CONNECT deadline (docs/security.md, "Limits and brute force"):
// the in-process broker driven by raw sockets.
#include <string>
#include <vector>

#include "broker_test_support.hpp"

namespace credmq::broker {
namespace {

using namespace test;
using namespace std::chrono_literals;
using mqtt::ProtocolVersion;

// True if the broker closed the connection without sending a single byte.
bool closed_silently(Client& c, std::chrono::milliseconds timeout = kWait) {
  return !c.receive_bytes(timeout) && c.eof();
}

class ConnectDeadlineTest : public BrokerTest {
 protected:
  // default_config(): connect_timeout 1000 ms.
  static constexpr auto kTimeout = 1000ms;
  // The deadline queue fires at or after the deadline; loaded CI machines add latency.
  static constexpr auto kSlack = 1500ms;

  // Expects `c` to be closed silently between the timeout and the timeout plus slack,
  // counting from `opened`.
  void expect_closed_at_deadline(Client& c, Clock::time_point opened) {
    EXPECT_TRUE(closed_silently(c, kTimeout + kSlack + 1s));
    const auto elapsed = Clock::now() - opened;
    EXPECT_GE(elapsed, kTimeout - 5ms);  // never early
    EXPECT_LT(elapsed, kTimeout + kSlack);
  }
};

TEST_F(ConnectDeadlineTest, ASocketThatSendsNothingIsClosedWithoutAReply) {
  const auto opened = Clock::now();
  auto c = client();
  expect_closed_at_deadline(*c, opened);
  EXPECT_TRUE(eventually([&] { return broker_->stats().connections == 0; }));
}

TEST_F(ConnectDeadlineTest, APartialConnectIsClosedAtTheSameDeadline) {
  const auto opened = Clock::now();
  auto c = client();
  // CONNECT's fixed header announcing 16 bytes, and only the protocol name's length.
  c->send_bytes(std::string("\x10\x10\x00\x04", 4));
  expect_closed_at_deadline(*c, opened);
}

TEST_F(ConnectDeadlineTest, SendingBytesSlowlyDoesNotExtendTheDeadline) {
  const auto opened = Clock::now();
  auto c = client();
  const std::string connect(
      "\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04"
      "abcd",
      18);
  // One byte every 300 ms: each arrives well within the timeout of the one before.
  std::size_t sent = 0;
  while (sent < connect.size() && !c->eof()) {
    c->send_bytes(connect.substr(sent++, 1));
    if (c->receive_bytes(300ms)) ADD_FAILURE() << "the broker answered a partial CONNECT";
  }
  EXPECT_LT(sent, connect.size());
  expect_closed_at_deadline(*c, opened);
}

TEST_F(ConnectDeadlineTest, AnAuthenticationThatDoesNotAnswerInTimeIsClosedToo) {
  auth_.hold();
  const auto opened = Clock::now();
  auto c = client(ProtocolVersion::v5);
  c->send(make_connect("held", user()));
  expect_closed_at_deadline(*c, opened);
  auth_.release();
}

TEST_F(ConnectDeadlineTest, AConnectedClientIsNotClosedByIt) {
  auto c = connected("in-time");  // Keep Alive 0: no other deadline
  EXPECT_FALSE(c->receive(kTimeout + 500ms));
  EXPECT_FALSE(c->eof());
  c->ping();
}

class ConnectionLimitTest : public BrokerTest {
 protected:
  void SetUp() override {}
  void start_with(std::size_t total, std::size_t per_address, bool limit_loopback) {
    auto config = default_config();
    config.max_connections = total;
    config.max_connections_per_address = per_address;
    config.limit_loopback = limit_loopback;
    start_broker(std::move(config));
  }
  // A client over the limit: its CONNECT is never answered, the connection just ends.
  void expect_refused(ProtocolVersion version) {
    auto c = client(version);
    c->send(make_connect("over", user()));
    EXPECT_TRUE(closed_silently(*c));
  }
};

TEST_F(ConnectionLimitTest, OverMaxConnectionsIsClosedRightAfterAccept) {
  start_with(2, 0, false);
  auto first = connected("c1");
  auto second = connected("c2", ProtocolVersion::v5);
  expect_refused(ProtocolVersion::v3_1_1);
  expect_refused(ProtocolVersion::v5);
  EXPECT_EQ(broker_->stats().connections_refused, 2u);
  // The earlier ones are untouched, and a place freed is taken again.
  first->ping();
  second->ping();
  second->close();
  ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 1; }));
  auto third = connected("c3");
  third->ping();
}

TEST_F(ConnectionLimitTest, APeerStillConnectingCountsToo) {
  start_with(1, 0, false);
  auto silent = client();  // no CONNECT yet: holds the place until the connect deadline
  ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 1; }));
  expect_refused(ProtocolVersion::v3_1_1);
}

TEST_F(ConnectionLimitTest, PerAddressLimitWhenLoopbackIsLimited) {
  start_with(0, 2, true);
  auto first = connected("c1");
  auto second = connected("c2");
  expect_refused(ProtocolVersion::v5);
  EXPECT_EQ(broker_->stats().connections_refused, 1u);
  first->close();
  ASSERT_TRUE(eventually([&] { return broker_->stats().connections == 1; }));
  auto third = connected("c3");
  third->ping();
}

TEST_F(ConnectionLimitTest, LoopbackIsExemptFromThePerAddressLimitByDefault) {
  start_with(0, 1, false);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connected("c" + std::to_string(i)));
  for (auto& c : clients) c->ping();
  EXPECT_EQ(broker_->stats().connections_refused, 0u);
}

TEST_F(ConnectionLimitTest, ZeroMeansNoLimit) {
  start_with(0, 0, true);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(connected("c" + std::to_string(i)));
  for (auto& c : clients) c->ping();
  EXPECT_EQ(broker_->stats().connections_refused, 0u);
}

}  // namespace
}  // namespace credmq::broker
