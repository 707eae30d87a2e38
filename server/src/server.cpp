#include "credmq/server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "credmq/admin/admin_server.hpp"
#include "credmq/auth/device_credential_authenticator.hpp"
#include "credmq/broker/broker.hpp"
#include "credmq/common/log.hpp"
#include "credmq/storage/store.hpp"
#include "state_persistence.hpp"

namespace credmq {
namespace {

constexpr const char* kAdminCredentialsFile = "admin-credentials.json";

std::optional<AdminCredentials> read_admin_credentials(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto value = boost::json::parse(text.str(), ec);
  if (ec || !value.is_object()) return std::nullopt;
  const auto& object = value.as_object();
  auto field = [&](const char* name) -> std::string {
    auto* v = object.if_contains(name);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  AdminCredentials credentials{field("AccessKeyId"), field("AccessKeySecret"), field("InstanceId")};
  if (credentials.access_key_id.empty() || credentials.access_key_secret.empty()) {
    return std::nullopt;
  }
  return credentials;
}

// Written to a temporary file created 0600, then renamed over the target: the secret is
// never readable by others, not even for an instant.
void write_admin_credentials(const std::filesystem::path& path,
                             const AdminCredentials& credentials) {
  boost::json::object object{{"AccessKeyId", credentials.access_key_id},
                             {"AccessKeySecret", credentials.access_key_secret},
                             {"InstanceId", credentials.instance_id}};
  const std::string text = boost::json::serialize(object) + "\n";
  const std::filesystem::path temporary = path.string() + ".tmp";
  ::unlink(temporary.c_str());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + temporary.string());
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!written || !synced || std::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    throw std::runtime_error("cannot write " + path.string());
  }
}

bool is_loopback(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .is_loopback();
  }
  return address.is_loopback();
}

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<boost::asio::thread_pool> blocking_pool;
  std::unique_ptr<auth::RevocationHub> hub;
  std::unique_ptr<auth::CredentialService> credential_service;
  std::unique_ptr<auth::DeviceCredentialAuthenticator> authenticator;
  std::unique_ptr<StorePersistence> persistence;
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<admin::AdminServer> admin;
  std::shared_ptr<tls::ContextProvider> mqtt_tls;   // when mqtt_tls_listen is set
  std::shared_ptr<tls::ContextProvider> admin_tls;  // when admin_tls.certificate is set
  AdminCredentials admin_credentials;
  bool admin_credentials_created = false;

  std::filesystem::path credentials_path() const {
    return options.data_dir / kAdminCredentialsFile;
  }

  // The bootstrap admin key may act on every declared instance, including ones declared
  // after it was created.
  void bootstrap_admin_key() {
    std::vector<std::string> instances{options.default_instance};
    instances.insert(instances.end(), options.instances.begin(), options.instances.end());
    if (auto existing = read_admin_credentials(credentials_path())) {
      if (store->find_admin_key(existing->access_key_id)) {
        store->grant_admin_key(existing->access_key_id, instances);
        admin_credentials = *existing;
        return;
      }
      log::warn(credentials_path().string(), " names an unknown admin key; issuing a new one");
    }
    auto key = store->create_admin_key(instances);
    admin_credentials = {key.access_key_id, key.access_key_secret, options.default_instance};
    write_admin_credentials(credentials_path(), admin_credentials);
    admin_credentials_created = true;
  }

  // Checked before anything is created, so a bad option leaves the data dir untouched.
  void check_and_load_tls() {
    const bool admin_https = !options.admin_tls.certificate.empty();
    if (!admin_https && !options.admin_insecure && !is_loopback(options.admin_listen.address())) {
      throw std::invalid_argument(
          "refusing to serve the admin API on non-loopback address " +
          options.admin_listen.address().to_string() +
          " without TLS: set --admin-tls-cert and --admin-tls-key, or --admin-insecure to "
          "accept plain HTTP");
    }
    if (!options.mqtt_tls_listen.empty()) {
      mqtt_tls = std::make_shared<tls::ContextProvider>(options.mqtt_tls);
    }
    if (admin_https) admin_tls = std::make_shared<tls::ContextProvider>(options.admin_tls);
  }

  void start() {
    check_and_load_tls();
    store = storage::Store::open(options.data_dir);
    store->ensure_instance(options.default_instance);
    for (const auto& instance : options.instances) store->ensure_instance(instance);
    bootstrap_admin_key();

    blocking_pool = std::make_unique<boost::asio::thread_pool>(
        options.storage_threads == 0 ? 1 : options.storage_threads);
    hub = std::make_unique<auth::RevocationHub>();
    credential_service = std::make_unique<auth::CredentialService>(*store, *hub);
    authenticator = std::make_unique<auth::DeviceCredentialAuthenticator>(
        *store, *hub, blocking_pool->get_executor(), options.auth_throttle);

    broker::BrokerConfig broker_config;
    broker_config.listen = options.mqtt_listen;
    broker_config.tls_listen = options.mqtt_tls_listen;
    broker_config.tls = mqtt_tls;
    if (options.allow_anonymous) broker_config.anonymous_instance = options.default_instance;
    broker_config.max_packet_size = options.max_packet_size;
    broker_config.sys_interval = options.sys_interval;
    broker_config.max_keep_alive = options.max_keep_alive;
    broker_config.outgoing_topic_alias_maximum = options.outgoing_topic_alias_maximum;
    broker_config.io_threads = options.io_threads;
    broker_config.max_queued_per_session = options.max_queued_messages;
    broker_config.max_queued_bytes_per_session = options.max_queued_bytes;
    broker_config.connect_timeout = options.connect_timeout;
    broker_config.max_connections = options.max_connections;
    broker_config.max_connections_per_address = options.max_connections_per_address;
    for (const auto& [instance, rules] : options.topic_rules) {
      broker_config.topic_rules.emplace(instance, broker::TopicRules(rules));
      log::info("instance ", instance, ": ", rules.size(), " topic rule(s)");
    }
    if (options.persist_sessions) {
      persistence = std::make_unique<StorePersistence>(*store);
      broker_config.persistence = persistence.get();
      broker_config.save_interval = options.session_save_interval;
      log::info("persistence: sessions and retained messages saved every ",
                options.session_save_interval.count(), " ms and at stop");
    } else {
      store->clear_broker_state();
      log::info("persistence: off; sessions and retained messages are kept in memory only");
    }
    broker = std::make_unique<broker::Broker>(broker_config, *authenticator, *hub);

    admin::AdminConfig admin_config;
    admin_config.listen = options.admin_listen;
    admin_config.calls_per_second_per_account = options.admin_calls_per_second;
    admin_config.max_body_bytes = options.admin_max_body_bytes;
    admin_config.idle_timeout = options.admin_timeout;
    admin_config.tls = admin_tls;
    if (!admin_tls && !is_loopback(options.admin_listen.address())) {
      log::warn("admin API on non-loopback ", options.admin_listen.address().to_string(),
                " over plain HTTP (--admin-insecure)");
    }
    admin = std::make_unique<admin::AdminServer>(admin_config, *credential_service,
                                                 blocking_pool->get_executor());
    admin->start();
    // Restores the saved sessions first. A revocation racing that is caught as for a CONNECT:
    // each check reads the hub's epoch before its lookup and binds with it.
    broker->start();
  }

  void stop() {
    // Admin first: no revocation may race with the broker's teardown.
    if (admin) admin->stop();
    if (broker) broker->stop();
    if (blocking_pool) blocking_pool->join();
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { stop(); }

void Server::start() {
  try {
    impl_->start();
  } catch (...) {
    impl_->stop();
    throw;
  }
}

void Server::stop() { impl_->stop(); }

std::vector<boost::asio::ip::tcp::endpoint> Server::mqtt_endpoints() const {
  return impl_->broker ? impl_->broker->bound_endpoints()
                       : std::vector<boost::asio::ip::tcp::endpoint>{};
}

std::vector<boost::asio::ip::tcp::endpoint> Server::mqtt_tls_endpoints() const {
  return impl_->broker ? impl_->broker->bound_tls_endpoints()
                       : std::vector<boost::asio::ip::tcp::endpoint>{};
}

bool Server::admin_uses_tls() const { return impl_->admin_tls != nullptr; }

bool Server::reload_tls() {
  bool ok = true;
  auto reload = [&ok](const char* what, const std::shared_ptr<tls::ContextProvider>& provider) {
    if (!provider) return;
    const std::string error = provider->reload();
    if (error.empty()) {
      log::info("TLS: reloaded the ", what, " certificate, key and CA files");
    } else {
      ok = false;
      log::error("TLS: reloading the ", what, " files failed, keeping the previous ones: ", error);
    }
  };
  reload("MQTT", impl_->mqtt_tls);
  reload("admin", impl_->admin_tls);
  return ok;
}

boost::asio::ip::tcp::endpoint Server::admin_endpoint() const {
  return impl_->admin ? impl_->admin->bound_endpoint() : boost::asio::ip::tcp::endpoint{};
}

const AdminCredentials& Server::admin_credentials() const { return impl_->admin_credentials; }
bool Server::admin_credentials_created() const { return impl_->admin_credentials_created; }
std::filesystem::path Server::admin_credentials_path() const { return impl_->credentials_path(); }

auth::CredentialService& Server::credentials() {
  if (!impl_->credential_service) throw std::logic_error("credmq::Server not started");
  return *impl_->credential_service;
}

boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw std::invalid_argument("expected HOST:PORT, got '" + text + "'");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  const std::string port_text = text.substr(colon + 1);
  unsigned long port = 0;
  std::size_t used = 0;
  try {
    port = std::stoul(port_text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != port_text.size() || port > 65535) {
    throw std::invalid_argument("invalid port in '" + text + "'");
  }
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument("invalid IP address in '" + text + "'");
  return {address, static_cast<unsigned short>(port)};
}

}  // namespace credmq
