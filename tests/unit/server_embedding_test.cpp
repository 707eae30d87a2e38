// credmq::Server embedded in-process, as a test harness would use it: ephemeral ports,
// credentials through the C++ API, a device over real TCP, revocation closing it.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <random>

#include "credmq/common/crypto.hpp"
#include "credmq/mqtt/codec.hpp"
#include "credmq/server.hpp"

namespace {
using boost::asio::ip::tcp;
namespace mqtt = credmq::mqtt;

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("credmq-server-test-" + std::to_string(std::random_device{}()));
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A blocking MQTT client over a real socket, enough for CONNECT and reading packets.
class Device {
 public:
  explicit Device(unsigned short port) : socket_(context_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }
  void send(const mqtt::Packet& packet, mqtt::ProtocolVersion version) {
    std::string bytes;
    mqtt::encode(packet, version, bytes);
    boost::asio::write(socket_, boost::asio::buffer(bytes));
  }
  // Next packet, or nullopt on EOF.
  std::optional<mqtt::Packet> read(mqtt::ProtocolVersion version) {
    std::vector<std::uint8_t> bytes;
    for (;;) {
      auto frame = mqtt::frame(bytes, 1 << 20);
      if (frame.status == mqtt::Frame::Status::error) ADD_FAILURE() << "bad frame";
      if (frame.status == mqtt::Frame::Status::complete && bytes.size() >= frame.total_size()) {
        mqtt::Packet packet;
        EXPECT_FALSE(mqtt::decode(bytes, version, packet));
        return packet;
      }
      std::uint8_t byte;
      boost::system::error_code ec;
      boost::asio::read(socket_, boost::asio::buffer(&byte, 1), ec);
      if (ec) return std::nullopt;
      bytes.push_back(byte);
    }
  }
  std::uint8_t connect(const std::string& client_id, const std::string& username,
                       const std::string& password, mqtt::ProtocolVersion version) {
    mqtt::Connect connect;
    connect.version = version;
    connect.client_id = client_id;
    connect.username = username;
    connect.password = password;
    connect.keep_alive = 60;
    return connack(connect).reason_code;
  }
  mqtt::Connack connack(const mqtt::Connect& connect) {
    send(connect, connect.version);
    auto reply = read(connect.version);
    EXPECT_TRUE(reply && std::holds_alternative<mqtt::Connack>(*reply));
    return reply && std::holds_alternative<mqtt::Connack>(*reply) ? std::get<mqtt::Connack>(*reply)
                                                                  : mqtt::Connack{false, 0xFF, {}};
  }
  template <class T>
  T expect(mqtt::ProtocolVersion version) {
    auto packet = read(version);
    EXPECT_TRUE(packet && std::holds_alternative<T>(*packet));
    return packet && std::holds_alternative<T>(*packet) ? std::get<T>(*packet) : T{};
  }

 private:
  boost::asio::io_context context_;
  tcp::socket socket_;
};

credmq::ServerOptions test_options(const std::filesystem::path& dir) {
  credmq::ServerOptions options;
  options.data_dir = dir;
  options.mqtt_listen = {credmq::parse_endpoint("127.0.0.1:0")};
  options.admin_listen = credmq::parse_endpoint("127.0.0.1:0");
  return options;
}

std::string login_of(const credmq::storage::DeviceCredential& credential) {
  return "DeviceCredential|" + credential.access_key_id + "|" + credential.instance_id;
}

TEST(ServerEmbedding, StartsOnEphemeralPortsAndWritesAdminCredentials) {
  TempDir dir;
  credmq::Server server(test_options(dir.path()));
  server.start();
  ASSERT_EQ(server.mqtt_endpoints().size(), 1u);
  EXPECT_NE(server.mqtt_endpoints()[0].port(), 0);
  EXPECT_NE(server.admin_endpoint().port(), 0);
  EXPECT_TRUE(server.admin_credentials_created());
  EXPECT_EQ(server.admin_credentials().instance_id, credmq::kDefaultInstanceId);
  auto perms = std::filesystem::status(server.admin_credentials_path()).permissions();
  EXPECT_EQ(perms, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  server.stop();
}

TEST(ServerEmbedding, UnregisterClosesTheLiveSessionWithAdministrativeAction) {
  TempDir dir;
  credmq::Server server(test_options(dir.path()));
  server.start();
  const auto port = server.mqtt_endpoints()[0].port();
  const std::string client_id = "GID_embed@@@device-1";
  auto credential = server.credentials().register_device(credmq::kDefaultInstanceId, client_id);
  const auto password = credmq::crypto::hmac_sha1_base64(credential.access_key_secret, client_id);

  Device device(port);
  ASSERT_EQ(device.connect(client_id, login_of(credential), password, mqtt::ProtocolVersion::v5),
            0x00);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(server.credentials().unregister_device(credmq::kDefaultInstanceId, client_id));
  auto packet = device.read(mqtt::ProtocolVersion::v5);
  ASSERT_TRUE(packet && std::holds_alternative<mqtt::Disconnect>(*packet));
  EXPECT_EQ(std::get<mqtt::Disconnect>(*packet).reason_code, 0x98);
  EXPECT_FALSE(device.read(mqtt::ProtocolVersion::v5));  // then EOF
  const auto elapsed = std::chrono::steady_clock::now() - started;
  RecordProperty(
      "revocation_to_close_us",
      static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));

  Device again(port);
  EXPECT_EQ(again.connect(client_id, login_of(credential), password, mqtt::ProtocolVersion::v5),
            0x86);
  server.stop();
}

TEST(ServerEmbedding, RestartKeepsCredentialsAndAdminKey) {
  TempDir dir;
  std::string key_id;
  credmq::storage::DeviceCredential credential;
  {
    credmq::Server server(test_options(dir.path()));
    server.start();
    key_id = server.admin_credentials().access_key_id;
    credential =
        server.credentials().register_device(credmq::kDefaultInstanceId, "GID_embed@@@device-2");
  }
  credmq::Server server(test_options(dir.path()));
  server.start();
  EXPECT_FALSE(server.admin_credentials_created());
  EXPECT_EQ(server.admin_credentials().access_key_id, key_id);
  auto loaded = server.credentials().get_device(credmq::kDefaultInstanceId, "GID_embed@@@device-2");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->access_key_secret, credential.access_key_secret);
  EXPECT_EQ(loaded->serial, credential.serial);
}

// The SQLite persistence end to end: a persistent session and a retained message, MQTT 5
// properties included, survive a restart; with persistence off they do not, and what was
// saved is forgotten.
TEST(ServerEmbedding, RestartKeepsPersistentSessionsAndRetainedMessages) {
  TempDir dir;
  constexpr auto v5 = mqtt::ProtocolVersion::v5;
  const std::string sub_id = "GID_embed@@@sub";
  const std::string pub_id = "GID_embed@@@pub";
  credmq::storage::DeviceCredential sub_credential;
  auto sub_connect = [&] {
    mqtt::Connect connect;
    connect.version = v5;
    connect.client_id = sub_id;
    connect.clean_start = false;
    connect.username = login_of(sub_credential);
    connect.password = credmq::crypto::hmac_sha1_base64(sub_credential.access_key_secret, sub_id);
    connect.properties.session_expiry_interval = 3600;
    return connect;
  };
  mqtt::Properties sent;
  sent.message_expiry_interval = 600;
  sent.content_type = "application/json";
  sent.correlation_data = std::string("\x00\x01", 2);
  sent.user_properties = {{"trace", "42"}};
  {
    credmq::Server server(test_options(dir.path()));
    server.start();
    const auto port = server.mqtt_endpoints()[0].port();
    sub_credential = server.credentials().register_device(credmq::kDefaultInstanceId, sub_id);
    auto pub_credential = server.credentials().register_device(credmq::kDefaultInstanceId, pub_id);
    Device sub(port);
    ASSERT_FALSE(sub.connack(sub_connect()).session_present);
    sub.send(mqtt::Subscribe{1, {}, {{"p/#", mqtt::SubscribeOptions{1}}}}, v5);
    EXPECT_EQ(sub.expect<mqtt::Suback>(v5).reason_codes, std::vector<std::uint8_t>{1});
    sub.send(mqtt::Disconnect{}, v5);
    EXPECT_FALSE(sub.read(v5));  // closed: the session is offline

    Device pub(port);
    ASSERT_EQ(
        pub.connect(pub_id, login_of(pub_credential),
                    credmq::crypto::hmac_sha1_base64(pub_credential.access_key_secret, pub_id), v5),
        0x00);
    pub.send(mqtt::Publish{1, true, false, "p/1", 7, sent, "payload"}, v5);
    EXPECT_EQ(pub.expect<mqtt::Ack>(v5).type, mqtt::PacketType::puback);
  }  // graceful stop: saved
  {
    credmq::Server server(test_options(dir.path()));
    server.start();
    Device sub(server.mqtt_endpoints()[0].port());
    EXPECT_TRUE(sub.connack(sub_connect()).session_present);
    auto publish = sub.expect<mqtt::Publish>(v5);
    EXPECT_EQ(publish.topic, "p/1");
    EXPECT_EQ(publish.payload, "payload");
    EXPECT_EQ(publish.qos, 1);
    auto received = publish.properties;
    ASSERT_TRUE(received.message_expiry_interval);
    EXPECT_LE(*received.message_expiry_interval, 600u);
    EXPECT_GE(*received.message_expiry_interval, 590u);
    received.message_expiry_interval = 600;
    EXPECT_EQ(received, sent);
    sub.send(mqtt::Ack{mqtt::PacketType::puback, publish.packet_id, 0, {}}, v5);
    // The retained copy, on a new subscription.
    sub.send(mqtt::Subscribe{2, {}, {{"p/1", mqtt::SubscribeOptions{1}}}}, v5);
    sub.expect<mqtt::Suback>(v5);
    auto retained = sub.expect<mqtt::Publish>(v5);
    EXPECT_TRUE(retained.retain);
    EXPECT_EQ(retained.properties.user_properties, sent.user_properties);
  }
  {
    auto options = test_options(dir.path());
    options.persist_sessions = false;
    credmq::Server server(options);
    server.start();
    Device sub(server.mqtt_endpoints()[0].port());
    EXPECT_FALSE(sub.connack(sub_connect()).session_present);
  }
  {
    // Turning persistence back on does not bring back what the run without it left behind.
    credmq::Server server(test_options(dir.path()));
    server.start();
    Device sub(server.mqtt_endpoints()[0].port());
    EXPECT_FALSE(sub.connack(sub_connect()).session_present);
  }
}

}  // namespace

TEST(ServerEmbedding, AdminOnNonLoopbackWithoutTlsIsRefusedBeforeAnythingIsCreated) {
  TempDir dir;
  auto options = test_options(dir.path() / "data");
  options.admin_listen = credmq::parse_endpoint("0.0.0.0:0");
  credmq::Server server(options);
  try {
    server.start();
    FAIL() << "start() accepted a plain-HTTP admin API on 0.0.0.0";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to serve the admin API on non-loopback "
                                         "address 0.0.0.0 without TLS"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data"));
  EXPECT_TRUE(server.mqtt_endpoints().empty());
}

TEST(ServerEmbedding, V4MappedLoopbackCountsAsLoopback) {
  TempDir dir;
  auto options = test_options(dir.path());
  options.admin_listen = credmq::parse_endpoint("[::ffff:127.0.0.1]:0");
  credmq::Server server(options);
  try {
    server.start();
  } catch (const boost::system::system_error&) {
    GTEST_SKIP() << "no IPv6 on this machine";
  }
  EXPECT_NE(server.admin_endpoint().port(), 0);
  EXPECT_FALSE(server.admin_uses_tls());
  EXPECT_TRUE(server.reload_tls());  // nothing configured: nothing to fail
  server.stop();
}

TEST(ServerEmbedding, UnreadableTlsFilesFailTheStart) {
  TempDir dir;
  auto options = test_options(dir.path() / "data");
  options.mqtt_tls_listen = {credmq::parse_endpoint("127.0.0.1:0")};
  options.mqtt_tls.certificate = dir.path() / "missing-cert.pem";
  options.mqtt_tls.private_key = dir.path() / "missing-key.pem";
  credmq::Server server(options);
  try {
    server.start();
    FAIL() << "start() accepted a missing certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(
        std::string(e.what()).rfind(
            "cannot load TLS certificate " + (dir.path() / "missing-cert.pem").string() + ": ", 0),
        0u)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data"));
}
