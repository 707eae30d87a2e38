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
    send(connect, version);
    auto reply = read(version);
    EXPECT_TRUE(reply && std::holds_alternative<mqtt::Connack>(*reply));
    return reply ? std::get<mqtt::Connack>(*reply).reason_code : 0xFF;
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

}  // namespace
