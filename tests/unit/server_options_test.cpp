// The credmq executable's command line and config file: TLS and admin-bind options, topic
// rules, instance ids and queue limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.hpp"

namespace {

credmq::CommandLine parse(std::vector<std::string> args) {
  args.insert(args.begin(), "credmq");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return credmq::parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::string error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(ServerOptions, NoTlsByDefault) {
  const auto options = parse({}).server;
  EXPECT_TRUE(options.mqtt_tls_listen.empty());
  EXPECT_TRUE(options.mqtt_tls.certificate.empty());
  EXPECT_TRUE(options.admin_tls.certificate.empty());
  EXPECT_FALSE(options.admin_insecure);
  EXPECT_EQ(options.admin_listen.address().to_string(), "127.0.0.1");
  EXPECT_EQ(options.admin_listen.port(), 8080);
}

TEST(ServerOptions, TlsCertEnablesTheListenerOn8883) {
  const auto options = parse({"--tls-cert", "c.pem", "--tls-key", "k.pem"}).server;
  ASSERT_EQ(options.mqtt_tls_listen.size(), 1u);
  EXPECT_EQ(options.mqtt_tls_listen[0].address().to_string(), "0.0.0.0");
  EXPECT_EQ(options.mqtt_tls_listen[0].port(), 8883);
  EXPECT_EQ(options.mqtt_tls.certificate, "c.pem");
  EXPECT_EQ(options.mqtt_tls.private_key, "k.pem");
  EXPECT_TRUE(options.mqtt_tls.ca.empty());
  EXPECT_FALSE(options.mqtt_tls.require_client_certificate);
  ASSERT_EQ(options.mqtt_listen.size(), 1u);  // the plain listener stays
  EXPECT_EQ(options.mqtt_listen[0].port(), 1883);
}

TEST(ServerOptions, MutualTlsAndRepeatedListeners) {
  const auto options = parse({"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem",
                              "--tls-require-client-cert", "--tls-listen", "127.0.0.1:8884",
                              "--tls-listen", "[::1]:0", "--admin-tls-cert", "ac.pem",
                              "--admin-tls-key", "ak.pem", "--admin-insecure"})
                           .server;
  ASSERT_EQ(options.mqtt_tls_listen.size(), 2u);
  EXPECT_EQ(options.mqtt_tls_listen[0].port(), 8884);
  EXPECT_EQ(options.mqtt_tls_listen[1].address().to_string(), "::1");
  EXPECT_EQ(options.mqtt_tls.ca, "ca.pem");
  EXPECT_TRUE(options.mqtt_tls.require_client_certificate);
  EXPECT_EQ(options.admin_tls.certificate, "ac.pem");
  EXPECT_EQ(options.admin_tls.private_key, "ak.pem");
  EXPECT_TRUE(options.admin_insecure);
}

TEST(ServerOptions, InconsistentTlsOptionsAreRefused) {
  EXPECT_EQ(error_of({"--tls-cert", "c.pem"}), "--tls-cert and --tls-key go together");
  EXPECT_EQ(error_of({"--tls-key", "k.pem"}), "--tls-cert and --tls-key go together");
  EXPECT_EQ(error_of({"--tls-listen", "127.0.0.1:8883"}),
            "--tls-listen, --tls-ca and --tls-require-client-cert need --tls-cert and --tls-key");
  EXPECT_EQ(error_of({"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-require-client-cert"}),
            "--tls-require-client-cert needs --tls-ca");
  EXPECT_EQ(error_of({"--admin-tls-cert", "c.pem"}),
            "--admin-tls-cert and --admin-tls-key go together");
  EXPECT_EQ(error_of({"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-listen", "nope"}),
            "expected HOST:PORT, got 'nope'");
}

TEST(ServerOptions, TlsOptionsInTheConfigFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("credmq-options-" + std::to_string(std::random_device{}()) + ".ini");
  {
    std::ofstream file(path);
    file << "tls-listen = 127.0.0.1:9883\n"
            "tls-cert = /etc/credmq/server.pem\n"
            "tls-key = /etc/credmq/server.key\n"
            "tls-ca = /etc/credmq/ca.pem\n"
            "tls-require-client-cert = true\n"
            "admin-listen = 10.0.0.5:8443\n"
            "admin-tls-cert = /etc/credmq/admin.pem\n"
            "admin-tls-key = /etc/credmq/admin.key\n";
  }
  const auto options = parse({"--config", path.string()}).server;
  std::filesystem::remove(path);
  ASSERT_EQ(options.mqtt_tls_listen.size(), 1u);
  EXPECT_EQ(options.mqtt_tls_listen[0].port(), 9883);
  EXPECT_EQ(options.mqtt_tls.certificate, "/etc/credmq/server.pem");
  EXPECT_EQ(options.mqtt_tls.private_key, "/etc/credmq/server.key");
  EXPECT_EQ(options.mqtt_tls.ca, "/etc/credmq/ca.pem");
  EXPECT_TRUE(options.mqtt_tls.require_client_certificate);
  EXPECT_EQ(options.admin_listen.address().to_string(), "10.0.0.5");
  EXPECT_EQ(options.admin_tls.certificate, "/etc/credmq/admin.pem");
  EXPECT_FALSE(options.admin_insecure);
}

// A rule from the config file is quoted as written, without the blank after '='.
TEST(ServerOptions, BadRuleInTheConfigFileIsQuotedWhole) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("credmq-options-" + std::to_string(std::random_device{}()) + ".ini");
  {
    std::ofstream file(path);
    file << "topic-rule = credmq-default permit publish a\n";
  }
  const auto error = error_of({"--config", path.string()});
  std::filesystem::remove(path);
  EXPECT_EQ(error,
            "--topic-rule 'credmq-default permit publish a': 'permit' is neither allow nor deny");
}

TEST(ServerOptions, QueueLimitsDefaultToTenThousandMessagesAndSixtyFourMiB) {
  const auto options = parse({}).server;
  EXPECT_EQ(options.max_queued_messages, 10'000u);
  EXPECT_EQ(options.max_queued_bytes, 64u << 20);
  EXPECT_EQ(parse({"--max-queued-bytes", "0"}).server.max_queued_bytes, 0u);
}

TEST(ServerOptions, UnusableInstanceIdsAreRefused) {
  EXPECT_EQ(error_of({"--default-instance", "a|b"}),
            "--default-instance 'a|b': an instance id is 1-64 of A-Z a-z 0-9 - _ .");
  EXPECT_EQ(error_of({"--instance", "mqtt-cn-0pp1.x_y"}), "(accepted)");
  EXPECT_EQ(error_of({"--instance", std::string(65, 'i')}).substr(0, 12), "--instance '");
}

}  // namespace
