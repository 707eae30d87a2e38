#include "options.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace credmq {
namespace po = boost::program_options;

namespace {

std::string trimmed(std::string_view text) {
  const auto start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(" \t");
  return std::string(text.substr(start, end - start + 1));
}
std::int64_t in_range(const po::variables_map& vm, const char* name, std::int64_t low,
                      std::int64_t high) {
  const auto value = vm[name].as<std::int64_t>();
  if (value < low || value > high) {
    throw std::invalid_argument("--" + std::string(name) + " must be between " +
                                std::to_string(low) + " and " + std::to_string(high));
  }
  return value;
}
}  // namespace

CommandLine parse_command_line(int argc, const char* const argv[]) {
  CommandLine result;
  ServerOptions defaults;
  auto& options = result.server;

  po::options_description general("Options");
  general.add_options()("help,h", "print this help and exit")(
      "version", "print the version and exit")("config", po::value<std::string>(),
                                               "read options from FILE (INI: name = value); "
                                               "command-line flags override it");
  po::options_description serving("Serving (also valid in the config file)");
  serving.add_options()("data-dir", po::value<std::string>()->default_value("./data"),
                        "directory for credmq.db, master.key and admin-credentials.json")(
      "listen", po::value<std::vector<std::string>>(),
      "MQTT listener HOST:PORT, repeatable (default 0.0.0.0:1883)")(
      "admin-listen", po::value<std::string>()->default_value("127.0.0.1:8080"),
      "admin HTTP API HOST:PORT")(
      "allow-anonymous", po::bool_switch(),
      "let clients without a username in, on the default instance (tests, conformance)")(
      "log-level", po::value<std::string>()->default_value("info"),
      "debug, info, warn, error or off")(
      "instance", po::value<std::vector<std::string>>(),
      "declare an extra instance id, repeatable (the default instance always exists)")(
      "default-instance", po::value<std::string>()->default_value(kDefaultInstanceId),
      "id of the default instance")(
      "max-packet-size",
      po::value<std::int64_t>()->default_value(static_cast<std::int64_t>(defaults.max_packet_size)),
      "largest MQTT packet accepted, in bytes")("io-threads",
                                                po::value<std::int64_t>()->default_value(0),
                                                "MQTT I/O threads, 0-256 (0 = one per core)")(
      "admin-rate", po::value<double>()->default_value(defaults.admin_calls_per_second),
      "admin API calls per second per AccessKeyId before Throttling.User")(
      "auth-fail-limit-client",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.auth_throttle.max_failures_per_client_id)),
      "failed CONNECTs per client id within 10 s before refusing without a lookup (0 = off)")(
      "auth-fail-limit-address",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.auth_throttle.max_failures_per_address)),
      "failed CONNECTs per source address within 10 s before refusing without a lookup "
      "(0 = off; loopback is exempt)")(
      "max-keepalive", po::value<std::int64_t>()->default_value(defaults.max_keep_alive),
      "longest MQTT Keep Alive in seconds, 0-65535 (0 = no limit): MQTT 5 clients asking for "
      "more or for 0 get it as Server Keep Alive, MQTT 3.1.1 ones are refused")(
      "outgoing-topic-aliases",
      po::value<std::int64_t>()->default_value(defaults.outgoing_topic_alias_maximum),
      "Topic Aliases set on PUBLISHes to an MQTT 5 client that accepts them, 0-65535 "
      "(0 = never)")("sys-interval",
                     po::value<std::int64_t>()->default_value(defaults.sys_interval.count()),
                     "seconds between $SYS/broker/... updates, 0-86400 (0 = no $SYS topics)")(
      "persist-sessions", po::value<bool>()->default_value(true)->implicit_value(true),
      "save persistent sessions and retained messages in credmq.db and restore them at start "
      "(--persist-sessions=false: memory only)")(
      "session-save-interval",
      po::value<std::int64_t>()->default_value(defaults.session_save_interval.count()),
      "milliseconds between saves of changed session state, 10-3600000 (a graceful stop "
      "always saves)")(
      "max-queued-messages",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.max_queued_messages)),
      "messages waiting per session before new ones for it are dropped (0 = no limit)")(
      "max-queued-bytes",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.max_queued_bytes)),
      "payload bytes waiting per session before new messages for it are dropped (0 = no limit)")(
      "connect-timeout", po::value<std::int64_t>()->default_value(defaults.connect_timeout.count()),
      "seconds a new MQTT connection has to send its CONNECT and be authenticated, 1-3600; "
      "then it is closed without a reply")(
      "max-connections",
      po::value<std::int64_t>()->default_value(static_cast<std::int64_t>(defaults.max_connections)),
      "MQTT connections open at once; more are closed right after accept (0 = no limit)")(
      "max-connections-per-address",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.max_connections_per_address)),
      "MQTT connections open at once from one source address; more are closed right after "
      "accept (0 = no limit; loopback is exempt)")(
      "topic-rule", po::value<std::vector<std::string>>(),
      "'INSTANCE allow|deny publish|subscribe|pubsub PATTERN', repeatable, in order; PATTERN "
      "is a topic filter where %c, %g, %d stand for the client, group and device id. An "
      "instance with rules allows what its first matching rule allows, nothing else")(
      "admin-max-body",
      po::value<std::int64_t>()->default_value(
          static_cast<std::int64_t>(defaults.admin_max_body_bytes)),
      "largest admin API request body in bytes, 0-67108864 (413 InvalidParameter.Body above)")(
      "admin-timeout", po::value<std::int64_t>()->default_value(defaults.admin_timeout.count()),
      "seconds, 1-3600, an admin API client has to send a whole request (header and body) or "
      "to read a reply, and an idle keep-alive connection stays open")(
      "tls-listen", po::value<std::vector<std::string>>(),
      "MQTT over TLS listener HOST:PORT, repeatable (default 0.0.0.0:8883 when --tls-cert is "
      "set)")("tls-cert", po::value<std::string>(),
              "PEM certificate chain of the MQTT TLS listener (enables it)")(
      "tls-key", po::value<std::string>(), "PEM private key of --tls-cert (unencrypted)")(
      "tls-ca", po::value<std::string>(),
      "PEM CA bundle that verifies MQTT client certificates (when a client presents one)")(
      "tls-require-client-cert", po::bool_switch(),
      "mutual TLS: refuse MQTT TLS clients without a certificate signed by --tls-ca")(
      "admin-tls-cert", po::value<std::string>(),
      "PEM certificate chain: serve the admin API over HTTPS")(
      "admin-tls-key", po::value<std::string>(), "PEM private key of --admin-tls-cert")(
      "admin-insecure", po::bool_switch(),
      "allow plain-HTTP admin API on a non-loopback --admin-listen address (refused otherwise)");

  po::options_description all;
  all.add(general).add(serving);
  std::ostringstream help;
  help << "Usage: credmq [--config FILE] [--data-dir DIR] [--listen HOST:PORT]... "
          "[--admin-listen HOST:PORT] [--allow-anonymous] [--log-level LEVEL]\n"
          "       [--tls-cert FILE --tls-key FILE [--tls-listen HOST:PORT]... [--tls-ca FILE] "
          "[--tls-require-client-cert]]\n"
          "       [--admin-tls-cert FILE --admin-tls-key FILE] [--admin-insecure]\n\n"
          "credmq: MQTT 3.1.1/5.0 broker with per-device credentials and the ApsaraMQ for "
          "MQTT device-credential admin API.\n\n"
       << all;
  result.help_text = help.str();

  po::variables_map vm;
  std::vector<std::string> file_rules;  // topic-rule lines of the config file, in order
  try {
    // No positional arguments: a stray word is a mistake, not something to ignore.
    po::store(po::command_line_parser(argc, argv).options(all).positional({}).run(), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) throw std::invalid_argument("cannot read config file " + path);
      // program_options cuts a line at '#' (a comment), but '#' is the multi-level wildcard
      // of a topic rule: topic-rule lines are read whole here, the rest goes to it.
      std::ostringstream others;
      std::string line;
      while (std::getline(file, line)) {
        const auto start = line.find_first_not_of(" \t");
        const std::string_view text =
            start == std::string::npos ? std::string_view() : std::string_view(line).substr(start);
        constexpr std::string_view kRule = "topic-rule";
        const auto equals = text.find('=');
        if (text.starts_with(kRule) && equals != std::string_view::npos &&
            text.substr(kRule.size(), equals - kRule.size()).find_first_not_of(" \t") ==
                std::string_view::npos) {
          std::string value(text.substr(equals + 1));
          while (!value.empty() &&
                 (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) {
            value.pop_back();
          }
          file_rules.push_back(std::move(value));
        } else {
          others << line << '\n';
        }
      }
      std::istringstream rest(others.str());
      // Stored after the command line, so flags win (program_options keeps the first value).
      po::store(po::parse_config_file(rest, serving), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::invalid_argument(e.what());
  }

  result.help = vm.count("help") > 0;
  result.version = vm.count("version") > 0;
  options.data_dir = vm["data-dir"].as<std::string>();
  if (vm.count("listen")) {
    options.mqtt_listen.clear();
    for (const auto& text : vm["listen"].as<std::vector<std::string>>()) {
      options.mqtt_listen.push_back(parse_endpoint(text));
    }
  }
  options.admin_listen = parse_endpoint(vm["admin-listen"].as<std::string>());
  options.allow_anonymous = vm["allow-anonymous"].as<bool>();
  if (vm.count("instance")) options.instances = vm["instance"].as<std::vector<std::string>>();
  options.default_instance = vm["default-instance"].as<std::string>();
  // An instance id is the third field of a device's "DeviceCredential|key|instance" user
  // name and a parameter of every admin call: '|', spaces and the empty id would make it
  // unusable there, so refuse them at start.
  auto check_instance_id = [](const std::string& id, const char* option) {
    const bool usable =
        !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!usable) {
      throw std::invalid_argument(std::string(option) + " '" + id +
                                  "': an instance id is 1-64 of A-Z a-z 0-9 - _ .");
    }
  };
  check_instance_id(options.default_instance, "--default-instance");
  for (const auto& id : options.instances) check_instance_id(id, "--instance");
  options.max_packet_size =
      static_cast<std::size_t>(in_range(vm, "max-packet-size", 16, 268'435'460));
  options.io_threads = static_cast<unsigned>(in_range(vm, "io-threads", 0, 256));
  options.sys_interval = std::chrono::seconds(in_range(vm, "sys-interval", 0, 86'400));
  options.max_keep_alive = static_cast<std::uint16_t>(in_range(vm, "max-keepalive", 0, 65'535));
  options.outgoing_topic_alias_maximum =
      static_cast<std::uint16_t>(in_range(vm, "outgoing-topic-aliases", 0, 65'535));
  options.admin_calls_per_second = vm["admin-rate"].as<double>();
  if (!(options.admin_calls_per_second > 0)) {
    throw std::invalid_argument("--admin-rate must be positive");
  }
  options.auth_throttle.max_failures_per_client_id =
      static_cast<std::size_t>(in_range(vm, "auth-fail-limit-client", 0, 1'000'000));
  options.auth_throttle.max_failures_per_address =
      static_cast<std::size_t>(in_range(vm, "auth-fail-limit-address", 0, 1'000'000));
  options.persist_sessions = vm["persist-sessions"].as<bool>();
  options.session_save_interval =
      std::chrono::milliseconds(in_range(vm, "session-save-interval", 10, 3'600'000));
  options.max_queued_messages =
      static_cast<std::size_t>(in_range(vm, "max-queued-messages", 0, 1'000'000'000));
  options.max_queued_bytes =
      static_cast<std::size_t>(in_range(vm, "max-queued-bytes", 0, std::int64_t{1} << 50));
  options.connect_timeout = std::chrono::seconds(in_range(vm, "connect-timeout", 1, 3'600));
  options.max_connections =
      static_cast<std::size_t>(in_range(vm, "max-connections", 0, 100'000'000));
  options.max_connections_per_address =
      static_cast<std::size_t>(in_range(vm, "max-connections-per-address", 0, 100'000'000));
  options.admin_max_body_bytes =
      static_cast<std::size_t>(in_range(vm, "admin-max-body", 0, 64 * 1024 * 1024));
  options.admin_timeout = std::chrono::seconds(in_range(vm, "admin-timeout", 1, 3'600));
  // Flags replace the file's rules (as for every option).
  const auto rule_texts =
      vm.count("topic-rule") ? vm["topic-rule"].as<std::vector<std::string>>() : file_rules;
  for (const auto& line : rule_texts) {
    const std::string text = trimmed(line);  // config-file values keep their leading blank
    auto refuse = [&text](const std::string& why) {
      return std::invalid_argument("--topic-rule '" + text + "': " + why);
    };
    const auto end = text.find_first_of(" \t");  // text is trimmed: the instance starts it
    if (end == std::string::npos) {
      throw refuse("expected 'INSTANCE allow|deny publish|subscribe|pubsub PATTERN'");
    }
    const std::string instance = text.substr(0, end);
    if (instance != options.default_instance &&
        std::find(options.instances.begin(), options.instances.end(), instance) ==
            options.instances.end()) {
      throw refuse("unknown instance '" + instance + "' (declare it with --instance)");
    }
    try {
      options.topic_rules[instance].push_back(
          broker::parse_topic_rule(std::string_view(text).substr(end)));
    } catch (const std::invalid_argument& error) {
      throw refuse(error.what());
    }
  }
  auto text = [&vm](const char* name) {
    return vm.count(name) ? vm[name].as<std::string>() : std::string();
  };
  options.mqtt_tls.certificate = text("tls-cert");
  options.mqtt_tls.private_key = text("tls-key");
  options.mqtt_tls.ca = text("tls-ca");
  options.mqtt_tls.require_client_certificate = vm["tls-require-client-cert"].as<bool>();
  const bool mqtt_tls = vm.count("tls-cert") > 0;
  if (mqtt_tls != (vm.count("tls-key") > 0)) {
    throw std::invalid_argument("--tls-cert and --tls-key go together");
  }
  if (!mqtt_tls && (vm.count("tls-listen") || vm.count("tls-ca") ||
                    options.mqtt_tls.require_client_certificate)) {
    throw std::invalid_argument(
        "--tls-listen, --tls-ca and --tls-require-client-cert need --tls-cert and --tls-key");
  }
  if (options.mqtt_tls.require_client_certificate && options.mqtt_tls.ca.empty()) {
    throw std::invalid_argument("--tls-require-client-cert needs --tls-ca");
  }
  if (vm.count("tls-listen")) {
    for (const auto& endpoint : vm["tls-listen"].as<std::vector<std::string>>()) {
      options.mqtt_tls_listen.push_back(parse_endpoint(endpoint));
    }
  } else if (mqtt_tls) {
    options.mqtt_tls_listen.push_back(parse_endpoint("0.0.0.0:8883"));
  }
  options.admin_tls.certificate = text("admin-tls-cert");
  options.admin_tls.private_key = text("admin-tls-key");
  if (vm.count("admin-tls-cert") != vm.count("admin-tls-key")) {
    throw std::invalid_argument("--admin-tls-cert and --admin-tls-key go together");
  }
  options.admin_insecure = vm["admin-insecure"].as<bool>();
  if (!log::parse_level(vm["log-level"].as<std::string>(), result.log_level)) {
    throw std::invalid_argument("unknown --log-level '" + vm["log-level"].as<std::string>() +
                                "' (debug, info, warn, error, off)");
  }
  return result;
}

}  // namespace credmq
