#include "credmq/broker/broker.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "connection.hpp"
#include "core.hpp"
#include "credmq/common/log.hpp"

namespace credmq::broker {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kExpirySweepInterval = std::chrono::seconds(1);

// Accepts on one endpoint and hands each socket to the next I/O thread's io_context.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using ContextPicker = std::function<asio::io_context&()>;

  // With `tls`, every accepted connection handshakes with its context of the moment.
  Listener(detail::Core& core, asio::io_context& context, const tcp::endpoint& endpoint,
           ContextPicker pick_context, std::shared_ptr<tls::ContextProvider> tls = nullptr)
      : core_(core),
        acceptor_(context),
        pick_context_(std::move(pick_context)),
        tls_(std::move(tls)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    // Accepted sockets inherit TCP_NODELAY from the listening socket on Linux, which saves a
    // setsockopt per connection (Connection::start sets it elsewhere).
    acceptor_.set_option(tcp::no_delay(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void start() { accept(); }

  // Thread-safe: the acceptor is closed on its own thread.
  void post_stop() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  void accept() {
    // Accepting with an io_context yields a socket bound to its own executor type.
    // The peer's address comes with accept() itself: no getpeername() per connection.
    acceptor_.async_accept(
        pick_context_(), peer_,
        [self = shared_from_this()](const error_code& ec, detail::Connection::Socket socket) {
          self->on_accept(ec, std::move(socket));
        });
  }

  void on_accept(const error_code& ec, detail::Connection::Socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // E.g. out of file descriptors: keep accepting, the condition is usually transient.
      log::warn("accept failed: ", ec.message());
    } else {
      // The connection starts on its own thread.
      auto executor = socket.get_executor();
      auto ip = peer_.address();
      // An IPv4 client of a dual-stack listener counts as its IPv4 address.
      if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
        ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
      }
      std::string address = ip.to_string();
      std::shared_ptr<detail::Connection> connection;
      if (tls_) {
        connection = std::make_shared<detail::TlsConnection>(core_, std::move(socket), address,
                                                             tls_->current());
      } else {
        connection = std::make_shared<detail::Connection>(core_, std::move(socket), address);
      }
      switch (core_.register_connection(connection, ip, address)) {
        case detail::Core::Admission::admitted:
          asio::post(executor, [connection] { connection->start(); });
          break;
        case detail::Core::Admission::over_total:
        case detail::Core::Admission::over_address:
          // Closed before anything is read (destroying the connection closes its socket, on
          // no thread of its own yet): the peer sees the connection end at once.
          log::debug("connection from ", address, " refused: connection limit reached");
          connection.reset();
          break;
        case detail::Core::Admission::stopping:
          break;
      }
    }
    accept();
  }

  detail::Core& core_;
  tcp::acceptor acceptor_;
  tcp::endpoint peer_;  // filled by the pending accept
  ContextPicker pick_context_;
  std::shared_ptr<tls::ContextProvider> tls_;
};

}  // namespace

struct Broker::Impl {
  Impl(BrokerConfig config, auth::Authenticator& authenticator, auth::RevocationHub& hub)
      : core(std::move(config), authenticator, hub) {}

  asio::io_context& next_context() {
    return *contexts[next.fetch_add(1, std::memory_order_relaxed) % contexts.size()];
  }

  // One timer drives the expiry sweep and the $SYS refresh.
  void schedule_expiry_sweep() {
    sweep_timer->expires_after(kExpirySweepInterval);
    sweep_timer->async_wait([this](const error_code& ec) {
      if (ec || stopping) return;
      core.expire_sessions();
      refresh_sys_topics();
      schedule_expiry_sweep();
    });
  }

  // Every sys_interval, and within a sweep of an instance's creation (its first $SYS values).
  void refresh_sys_topics() {
    const auto interval = core.config.sys_interval;
    if (interval.count() <= 0) return;
    const auto now = std::chrono::steady_clock::now();
    const bool due = now >= next_sys_refresh;
    const auto instance_count = core.instances().size();
    if (!due && instance_count == sys_instances_seen) return;
    sys_instances_seen = instance_count;
    if (due) next_sys_refresh = now + interval;
    core.publish_sys_topics(std::chrono::duration_cast<std::chrono::seconds>(now - started_at));
  }

  // Takes a snapshot of what changed and hands it to the persistence; on failure the
  // instances stay marked, so the next round retries. Returns whether it succeeded.
  bool save() {
    const auto started = std::chrono::steady_clock::now();
    auto snapshot = core.snapshot();
    if (snapshot.empty()) return true;
    const auto taken = std::chrono::steady_clock::now();
    try {
      core.config.persistence->save(snapshot);
      if (log::level() <= log::Level::debug) {
        std::size_t sessions = 0;
        std::size_t messages = 0;
        for (const auto& instance : snapshot) {
          sessions += instance.sessions.size();
          messages += instance.messages.size();
        }
        using std::chrono::duration_cast;
        using std::chrono::microseconds;
        log::debug("persistence: saved ", snapshot.size(), " instance(s), ", sessions,
                   " session(s), ", messages, " message(s): snapshot ",
                   duration_cast<microseconds>(taken - started).count(), " us, write ",
                   duration_cast<microseconds>(std::chrono::steady_clock::now() - taken).count(),
                   " us");
      }
      return true;
    } catch (const std::exception& error) {
      log::error("persistence: saving broker state failed: ", error.what());
      core.mark_dirty(snapshot);
      return false;
    }
  }

  // The persistence thread: never an I/O thread, so the disk write blocks nobody. The
  // snapshot itself holds each instance's lock (shared) only while copying pointers.
  void run_saver() {
    std::unique_lock lock(saver_mutex);
    while (!saver_stopping) {
      saver_wake.wait_for(lock, core.config.save_interval, [this] { return saver_stopping; });
      if (saver_stopping) break;
      lock.unlock();
      save();
      lock.lock();
    }
  }

  void stop_saver() {
    {
      std::lock_guard lock(saver_mutex);
      saver_stopping = true;
    }
    saver_wake.notify_all();
    if (saver.joinable()) saver.join();
  }

  detail::Core core;
  std::thread saver;
  std::mutex saver_mutex;
  std::condition_variable saver_wake;
  bool saver_stopping = false;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<tcp::endpoint> bound;
  std::vector<tcp::endpoint> bound_tls;
  std::unique_ptr<asio::steady_timer> sweep_timer;
  const std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point next_sys_refresh{};  // sweep thread only
  std::size_t sys_instances_seen = 0;                        // sweep thread only
  std::atomic<std::size_t> next{0};
  std::mutex lifecycle_mutex;
  bool started = false;
  std::atomic<bool> stopping{false};
};

Broker::Broker(BrokerConfig config, auth::Authenticator& authenticator, auth::RevocationHub& hub)
    : impl_(std::make_unique<Impl>(std::move(config), authenticator, hub)) {}

Broker::~Broker() { stop(); }

void Broker::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) return;
  auto& impl = *impl_;
  if (impl.core.config.persistence) {
    // Before any listener accepts: a resuming client finds its session.
    impl.core.restore(impl.core.config.persistence->load());
  }
  unsigned thread_count = impl.core.config.io_threads;
  if (thread_count == 0) thread_count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < thread_count; ++i) {
    // Each context is run by exactly one thread: connections on it need no strand.
    impl.contexts.push_back(std::make_unique<asio::io_context>(1));
    impl.work.push_back(asio::make_work_guard(*impl.contexts.back()));
  }
  // Bind everything before starting threads, so a failure throws with nothing running.
  for (const auto& endpoint : impl.core.config.listen) {
    auto listener =
        std::make_shared<Listener>(impl.core, *impl.contexts.front(), endpoint,
                                   [&impl]() -> asio::io_context& { return impl.next_context(); });
    impl.bound.push_back(listener->local_endpoint());
    impl.listeners.push_back(std::move(listener));
  }
  if (!impl.core.config.tls_listen.empty() && !impl.core.config.tls) {
    throw std::invalid_argument("TLS listeners need a TLS context");
  }
  for (const auto& endpoint : impl.core.config.tls_listen) {
    auto listener = std::make_shared<Listener>(
        impl.core, *impl.contexts.front(), endpoint,
        [&impl]() -> asio::io_context& { return impl.next_context(); }, impl.core.config.tls);
    impl.bound_tls.push_back(listener->local_endpoint());
    impl.listeners.push_back(std::move(listener));
  }
  for (auto& listener : impl.listeners) listener->start();
  impl.sweep_timer = std::make_unique<asio::steady_timer>(*impl.contexts.front());
  impl.schedule_expiry_sweep();
  for (auto& context : impl.contexts) {
    impl.threads.emplace_back([&context] {
      try {
        context->run();
      } catch (const std::exception& e) {
        log::error("broker I/O thread stopped by exception: ", e.what());
      }
    });
  }
  if (impl.core.config.persistence) impl.saver = std::thread([&impl] { impl.run_saver(); });
  impl.started = true;
  for (const auto& endpoint : impl.bound) {
    log::info("MQTT listener on ", endpoint.address().to_string(), ":", endpoint.port());
  }
  for (const auto& endpoint : impl.bound_tls) {
    log::info("MQTT TLS listener on ", endpoint.address().to_string(), ":", endpoint.port());
  }
}

std::vector<tcp::endpoint> Broker::bound_tls_endpoints() const {
  std::lock_guard lock(impl_->lifecycle_mutex);
  return impl_->bound_tls;
}

std::vector<tcp::endpoint> Broker::bound_endpoints() const {
  std::lock_guard lock(impl_->lifecycle_mutex);
  return impl_->bound;
}

void Broker::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  auto& impl = *impl_;
  if (!impl.started || impl.stopping.exchange(true)) return;
  for (auto& listener : impl.listeners) listener->post_stop();
  asio::post(*impl.contexts.front(), [&impl] { impl.sweep_timer->cancel(); });
  for (auto& connection : impl.core.begin_stopping()) {
    connection->post_close(mqtt::ReasonCode::server_shutting_down);
  }
  // Threads return once every connection has closed (bounded by close_timeout) and every
  // pending authentication has answered.
  impl.work.clear();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
  impl.listeners.clear();
  impl.sweep_timer.reset();
  if (impl.core.config.persistence) {
    // Every connection has ended: sessions are offline, and nothing changes any more.
    impl.stop_saver();
    if (impl.save()) log::info("persistence: broker state saved");
  }
  log::info("MQTT broker stopped");
}

BrokerStats Broker::stats() const {
  BrokerStats stats;
  stats.connections = impl_->core.connection_count();
  stats.sessions = impl_->core.session_count.load(std::memory_order_relaxed);
  for (const auto* instance : impl_->core.instances()) {
    stats.messages_received += instance->publishes_received.load(std::memory_order_relaxed);
    stats.messages_sent += instance->publishes_sent.load(std::memory_order_relaxed);
  }
  stats.messages_dropped = impl_->core.messages_dropped.load(std::memory_order_relaxed);
  stats.connections_refused = impl_->core.connections_refused.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace credmq::broker
