// Shared by the in-process broker tests: a fake Authenticator, a blocking raw-socket MQTT
// client, and a fixture running a Broker on 127.0.0.1:0 with a real RevocationHub.
#pragma once
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "credmq/auth/authenticator.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/broker/broker.hpp"
#include "credmq/mqtt/codec.hpp"
#include "credmq/mqtt/packets.hpp"

namespace credmq::broker::test {

using namespace std::chrono_literals;
using mqtt::ProtocolVersion;
using Clock = std::chrono::steady_clock;

inline constexpr auto kWait = 3s;  // deadline for anything that should happen

// Usernames: "ok|<instance>|<serial>" accepts; "bad", "deny", "down" refuse with
// bad_credentials, not_authorized, server_unavailable. No username: accepted on the anonymous
// instance when the listener offers one. Verdicts come from a worker thread, like a store
// lookup; serials marked revoked (the "committed row change") fail the lookup.
class FakeAuthenticator : public auth::Authenticator {
 public:
  explicit FakeAuthenticator(auth::RevocationHub& hub) : hub_(hub), worker_([this] { run(); }) {}
  ~FakeAuthenticator() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  void authenticate(auth::ConnectRequest request,
                    std::function<void(auth::AuthResult)> done) override {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(
          [this, request = std::move(request), done = std::move(done)] { done(decide(request)); });
    }
    wake_.notify_one();
  }
  void record_failure(const auth::ConnectRequest&) override { ++failures; }
  // A serial is current until mark_revoked(); `instance` and `client_id` are not checked.
  bool credential_current(std::string_view, std::string_view, std::int64_t serial) override {
    std::lock_guard lock(mutex_);
    return serial != 0 && !revoked_.contains(serial);
  }

  // The "commit" of a revocation: later lookups of this serial fail.
  void mark_revoked(std::int64_t serial) {
    std::lock_guard lock(mutex_);
    revoked_.insert(serial);
  }
  // Holds verdicts until release() (to test what happens while authentication is in flight).
  void hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      held_ = false;
    }
    wake_.notify_all();
  }

  std::atomic<int> failures{0};

 private:
  auth::AuthResult decide(const auth::ConnectRequest& request) {
    auth::AuthResult result;
    const auto epoch = hub_.epoch();  // read before the "lookup", as the real one does
    if (!request.username) {
      if (request.anonymous_instance) {
        result.identity = auth::Identity{*request.anonymous_instance, "Anonymous", "", 0, epoch};
      } else {
        result.refusal = auth::Refusal::not_authorized;
      }
      return result;
    }
    const std::string& name = *request.username;
    if (name == "bad") return result;
    if (name == "deny") {
      result.refusal = auth::Refusal::not_authorized;
      return result;
    }
    if (name == "down") {
      result.refusal = auth::Refusal::server_unavailable;
      return result;
    }
    auto first = name.find('|');
    auto second = name.find('|', first + 1);
    if (name.substr(0, first) != "ok" || second == std::string::npos) return result;
    std::int64_t serial = std::stoll(name.substr(second + 1));
    {
      std::lock_guard lock(mutex_);
      if (revoked_.contains(serial)) return result;  // the row is gone
    }
    result.identity = auth::Identity{name.substr(first + 1, second - first - 1), "DeviceCredential",
                                     "DC.key" + std::to_string(serial), serial, epoch};
    return result;
  }

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || (!held_ && !jobs_.empty()); });
      if (jobs_.empty() || (held_ && !stopping_)) {
        if (stopping_) return;
        continue;
      }
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  auth::RevocationHub& hub_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::set<std::int64_t> revoked_;
  bool held_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

// A blocking MQTT client over a raw socket, with deadlines on every read.
class Client {
 public:
  Client(const boost::asio::ip::tcp::endpoint& endpoint, ProtocolVersion version,
         int receive_buffer = 0)
      : version_(version) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {  // before connect, so the window stays small
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(endpoint.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ADD_FAILURE() << "connect failed";
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Errors are ignored: some tests write to a connection the broker is closing.
  void send_bytes(std::string_view bytes) {
    while (!bytes.empty()) {
      auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void send(const mqtt::Packet& packet) {
    std::string bytes;
    mqtt::encode(packet, version_, bytes);
    send_bytes(bytes);
  }

  // The next packet, or nullopt on EOF (eof() true) or when `timeout` passes.
  std::optional<mqtt::Packet> receive(std::chrono::milliseconds timeout = kWait) {
    auto bytes = receive_bytes(timeout);
    if (!bytes) return std::nullopt;
    mqtt::Packet packet;
    auto ec = mqtt::decode(std::span<const std::uint8_t>(
                               reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()),
                           version_, packet, mqtt::Sender::server);
    if (ec) {
      ADD_FAILURE() << "undecodable packet from broker: " << ec.message();
      return std::nullopt;
    }
    return packet;
  }

  // The next packet's exact bytes (fixed header included), or nullopt as receive().
  std::optional<std::string> receive_bytes(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      auto bytes = std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(buffer_.data()), buffer_.size());
      auto frame = mqtt::frame(bytes, 1 << 28);
      if (frame.status == mqtt::Frame::Status::error) {
        ADD_FAILURE() << "bad frame from broker";
        return std::nullopt;
      }
      if (frame.status == mqtt::Frame::Status::complete && bytes.size() >= frame.total_size()) {
        std::string packet = buffer_.substr(0, frame.total_size());
        buffer_.erase(0, frame.total_size());
        return packet;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd descriptor{fd_, POLLIN, 0};
      if (::poll(&descriptor, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  template <class T>
  T expect(std::chrono::milliseconds timeout = kWait) {
    auto packet = receive(timeout);
    if (!packet) {
      ADD_FAILURE() << (eof_ ? "EOF" : "timeout") << " waiting for a packet";
      return T{};
    }
    if (auto* typed = std::get_if<T>(&*packet)) return std::move(*typed);
    ADD_FAILURE() << "unexpected packet type, variant index " << packet->index();
    return T{};
  }

  // True if the broker closes the connection within `timeout` (packets before it ignored).
  bool wait_eof(std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_ && Clock::now() < deadline) {
      receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    }
    return eof_;
  }
  bool eof() const { return eof_; }
  ProtocolVersion version() const { return version_; }

  mqtt::Connack connect(mqtt::Connect connect) {
    connect.version = version_;
    send(connect);
    return expect<mqtt::Connack>();
  }

  void subscribe(const std::string& filter, std::uint8_t qos, std::uint16_t packet_id = 1) {
    mqtt::Subscribe subscribe;
    subscribe.packet_id = packet_id;
    subscribe.subscriptions.push_back({filter, mqtt::SubscribeOptions{qos}});
    send(subscribe);
    auto suback = expect<mqtt::Suback>();
    ASSERT_EQ(suback.packet_id, packet_id);
    ASSERT_EQ(suback.reason_codes, std::vector<std::uint8_t>{qos});
  }

  void publish(const std::string& topic, const std::string& payload, std::uint8_t qos = 0,
               bool retain = false, std::uint16_t packet_id = 0) {
    mqtt::Publish publish;
    publish.topic = topic;
    publish.payload = payload;
    publish.qos = qos;
    publish.retain = retain;
    publish.packet_id = qos > 0 ? (packet_id ? packet_id : next_packet_id_++) : 0;
    send(publish);
    if (qos == 1) {
      EXPECT_EQ(expect<mqtt::Ack>().type, mqtt::PacketType::puback);
    } else if (qos == 2) {
      auto pubrec = expect<mqtt::Ack>();
      EXPECT_EQ(pubrec.type, mqtt::PacketType::pubrec);
      send(mqtt::Ack{mqtt::PacketType::pubrel, publish.packet_id, 0, {}});
      auto pubcomp = expect<mqtt::Ack>();
      EXPECT_EQ(pubcomp.type, mqtt::PacketType::pubcomp);
      EXPECT_EQ(pubcomp.packet_id, publish.packet_id);
    }
  }

  void ping() {
    send(mqtt::Pingreq{});
    expect<mqtt::Pingresp>();
  }

 private:
  ProtocolVersion version_;
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  std::uint16_t next_packet_id_ = 100;
};

inline mqtt::Connect make_connect(std::string client_id, std::optional<std::string> username,
                                  bool clean_start = true, std::uint16_t keep_alive = 0) {
  mqtt::Connect connect;
  connect.client_id = std::move(client_id);
  connect.username = std::move(username);
  if (connect.username) connect.password = "secret";
  connect.clean_start = clean_start;
  connect.keep_alive = keep_alive;
  return connect;
}

inline std::string user(const std::string& instance = "i1", std::int64_t serial = 0) {
  return "ok|" + instance + "|" + std::to_string(serial);
}

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override { start_broker(default_config()); }
  void TearDown() override { broker_.reset(); }

  static BrokerConfig default_config() {
    BrokerConfig config;
    config.listen.emplace_back(boost::asio::ip::make_address("127.0.0.1"), 0);
    config.anonymous_instance = "anon";
    config.io_threads = 2;
    config.connect_timeout = 1000ms;
    config.close_timeout = 200ms;
    config.sys_interval = 0s;  // no $SYS traffic unless a test asks for it
    return config;
  }

  void start_broker(BrokerConfig config) {
    broker_.reset();
    broker_ = std::make_unique<Broker>(std::move(config), auth_, hub_);
    broker_->start();
    endpoint_ = broker_->bound_endpoints().at(0);
  }

  std::unique_ptr<Client> client(ProtocolVersion version = ProtocolVersion::v3_1_1) {
    return std::make_unique<Client>(endpoint_, version);
  }
  // A connected client (CONNACK 0 checked).
  std::unique_ptr<Client> connected(const std::string& client_id,
                                    ProtocolVersion version = ProtocolVersion::v3_1_1,
                                    const std::string& username = user(), bool clean = true) {
    auto c = client(version);
    auto connack = c->connect(make_connect(client_id, username, clean));
    EXPECT_EQ(connack.reason_code, 0) << client_id;
    return c;
  }

  // Waits until a predicate holds (polling a broker-side counter), with a deadline.
  template <class Predicate>
  bool eventually(Predicate predicate, std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (!predicate()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  auth::RevocationHub hub_;
  FakeAuthenticator auth_{hub_};
  std::unique_ptr<Broker> broker_;
  boost::asio::ip::tcp::endpoint endpoint_;
};

// Expects the next packet to be a PUBLISH with this topic and payload.
inline mqtt::Publish expect_publish(Client& c, const std::string& topic,
                                    const std::string& payload) {
  auto publish = c.expect<mqtt::Publish>();
  EXPECT_EQ(publish.topic, topic);
  EXPECT_EQ(publish.payload, payload);
  return publish;
}

}  // namespace credmq::broker::test
