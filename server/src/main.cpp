// credmq executable: parse options, run credmq::Server until SIGINT/SIGTERM.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>

#include "credmq/common/log.hpp"
#include "credmq/server.hpp"
#include "credmq/storage/fault_injection.hpp"
#include "options.hpp"

namespace {
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& endpoint) {
  // Appended piecewise: GCC 12 at -O3 reports a false -Wrestrict (bug 105329) on
  // "[" + text + "]".
  const auto address = endpoint.address();
  std::string text;
  if (address.is_v6()) text += '[';
  text += address.to_string();
  if (address.is_v6()) text += ']';
  text += ':';
  text += std::to_string(endpoint.port());
  return text;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace credmq;
  CommandLine command_line;
  try {
    command_line = parse_command_line(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "credmq: " << e.what() << "\n(see credmq --help)\n";
    return 2;
  }
  if (command_line.help) {
    std::cout << command_line.help_text;
    return 0;
  }
  if (command_line.version) {
    std::cout << "credmq " << CREDMQ_VERSION << "\n";
    return 0;
  }
  log::set_level(command_line.log_level);
  std::signal(SIGPIPE, SIG_IGN);

  // Registered before the server starts, so an early SIGTERM still stops it cleanly.
  boost::asio::io_context signals_context;
  boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
  // Registered early too, so an early SIGHUP is handled after the start rather than ending
  // the process (its default action).
  boost::asio::signal_set hangup(signals_context, SIGHUP);

  // Test only (docs/security.md): makes the database's I/O fail on demand.
  if (const char* control = std::getenv("CREDMQ_STORAGE_FAULTS"); control && *control) {
    try {
      storage::install_fault_injection(std::filesystem::path(control));
    } catch (const std::exception& e) {
      log::error("cannot start: ", e.what());
      return 1;
    }
  }

  Server server(command_line.server);
  try {
    server.start();
  } catch (const std::exception& e) {
    log::error("cannot start: ", e.what());
    return 1;
  }

  const auto& admin = server.admin_credentials();
  if (server.admin_credentials_created()) {
    // Printed once, on the first start; afterwards only the file holds the secret.
    std::cout << "Admin credentials (also in " << server.admin_credentials_path().string()
              << ", mode 0600):\n"
              << "  AccessKeyId:     " << admin.access_key_id << "\n"
              << "  AccessKeySecret: " << admin.access_key_secret << "\n"
              << "  InstanceId:      " << admin.instance_id << "\n";
  } else {
    std::cout << "Admin credentials: " << server.admin_credentials_path().string()
              << " (AccessKeyId " << admin.access_key_id << ")\n";
  }
  for (const auto& endpoint : server.mqtt_endpoints()) {
    std::cout << "MQTT listening on " << endpoint_text(endpoint) << "\n";
  }
  for (const auto& endpoint : server.mqtt_tls_endpoints()) {
    std::cout << "MQTT TLS listening on " << endpoint_text(endpoint) << "\n";
  }
  std::cout << "Admin API listening on " << (server.admin_uses_tls() ? "https://" : "http://")
            << endpoint_text(server.admin_endpoint()) << "/\n"
            << "credmq ready" << std::endl;

  signals.async_wait([&](const boost::system::error_code&, int signal_number) {
    log::info("signal ", signal_number, ": stopping");
    signals_context.stop();
  });
  // SIGHUP re-reads the TLS certificate, key and CA files (a failure keeps the old ones).
  const bool has_tls = !server.mqtt_tls_endpoints().empty() || server.admin_uses_tls();
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        if (has_tls) {
          log::info("SIGHUP: reloading TLS files");
          server.reload_tls();
        } else {
          log::info("SIGHUP: no TLS listener, nothing to reload");
        }
        hangup.async_wait(on_hangup);
      };
  hangup.async_wait(on_hangup);
  signals_context.run();
  server.stop();
  log::info("stopped");
  return 0;
}
