// HTTP/1.1 plumbing of the admin API, after Boost.Beast's async server example: a listener
// and one session object per connection, all on one I/O thread. Each request is handed to
// the blocking executor (the store is blocking) and its response posted back to the session,
// so the I/O thread never touches the disk. One request at a time per connection: pipelined
// requests simply wait in the read buffer.
// HTTP-level refusals (all JSON, like every reply): path other than "/" -> 404 ApiNotSupport;
// method other than GET/POST -> 405 UnsupportedHTTPMethod; body above max_body_bytes -> 413
// InvalidParameter.Body, then close; unparsable HTTP -> 400 ParameterCheckFailed, then close;
// max_pending_actions reached -> 500 SystemOverFlow. The rest is api.cpp.
#include "credmq/admin/admin_server.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <concepts>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "api.hpp"
#include "credmq/common/log.hpp"

namespace credmq::admin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::size_t kHeaderLimit = 16 * 1024;
// After an error reply on a connection we then close, unread request bytes would make the
// kernel reset the connection and possibly destroy the reply before the client reads it, so
// drain them for a short while first.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr std::size_t kLingerMaxBytes = 1024 * 1024;

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = text[i];
    const char lower = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
    if (lower != prefix[i]) return false;
  }
  return true;
}

class SessionBase;

// The Host header goes back into the JSON as HostId: keep it valid UTF-8 and short.
std::string printable_ascii(std::string_view text) {
  constexpr std::size_t kMaxHostLength = 255;
  std::string out;
  for (char c : text.substr(0, std::min(text.size(), kMaxHostLength))) {
    out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  }
  return out;
}

// Everything the sessions share. Lives in AdminServer::Impl; outlives every session and
// every action handed to the blocking executor (stop() drains them).
struct ServerCore {
  ServerCore(const AdminConfig& admin_config, auth::CredentialService& credentials,
             net::any_io_executor blocking_executor)
      : config(admin_config),
        blocking(std::move(blocking_executor)),
        handler(ApiConfig{admin_config.calls_per_second_per_account, admin_config.timestamp_window,
                          admin_config.max_remembered_nonces},
                credentials) {}

  // Decrements the in-flight count when the action is done or dropped by the pool unrun.
  class PendingAction {
   public:
    explicit PendingAction(ServerCore& core) : core_(&core) {
      core_->pending.fetch_add(1, std::memory_order_relaxed);
    }
    PendingAction(PendingAction&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
    PendingAction& operator=(PendingAction&&) = delete;
    ~PendingAction() {
      if (!core_) return;
      if (core_->pending.fetch_sub(1) == 1) {
        std::lock_guard lock(core_->drain_mutex);
        core_->drained.notify_all();
      }
    }

   private:
    ServerCore* core_;
  };

  void wait_for_pending_actions() {
    std::unique_lock lock(drain_mutex);
    drained.wait(lock, [this] { return pending.load() == 0; });
  }

  // Live sessions, so stop() can close their sockets.
  std::mutex sessions_mutex;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;

  AdminConfig config;
  net::any_io_executor blocking;
  ApiHandler handler;
  std::string listener_host_id;  // HostId when a request has no Host header
  std::atomic<std::size_t> pending{0};
  std::mutex drain_mutex;
  std::condition_variable drained;
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Only while no thread runs the I/O context (AdminServer::stop).
  virtual void abort() = 0;
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One HTTP connection, over plain TCP or TLS (Stream): the same code once the TLS handshake
// is done.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(tcp::socket&& socket, ServerCore& core) requires std::same_as<Stream, PlainStream>
      : stream_(std::move(socket)), core_(core) {}
  Session(tcp::socket&& socket, ServerCore& core,
          std::shared_ptr<net::ssl::context> context) requires std::same_as<Stream, TlsStream>
      : context_(std::move(context)), stream_(std::move(socket), *context_), core_(core) {}
  ~Session() override {
    std::lock_guard lock(core_.sessions_mutex);
    core_.sessions.erase(this);
  }

  void run() {
    {
      std::lock_guard lock(core_.sessions_mutex);
      core_.sessions.emplace(this, std::weak_ptr<SessionBase>(this->shared_from_this()));
    }
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::start, this->shared_from_this()));
  }

  void abort() override { close(); }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void start() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      lowest().expires_after(core_.config.idle_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  log::debug("admin: TLS handshake failed: ", ec.message());
                                  return self->close();
                                }
                                self->read_request();
                              });
    } else {
      read_request();
    }
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(core_.config.max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    lowest().expires_after(core_.config.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  // curl sends "Expect: 100-continue" before a POST body over 1 KiB and waits a second for
  // the interim response unless it gets one.
  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read(ec, 0);
    if (!parser_->is_done() &&
        beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (ec) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    host_id_ = core_.listener_host_id;
    {
      // Fields parsed so far, even when the body or the header failed: for the reply.
      const auto& header = parser_->get();
      const std::string_view host = header[http::field::host];
      if (!host.empty()) host_id_ = printable_ascii(host);
      version_ = header.version() == 10 ? 10 : 11;
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == net::ssl::error::stream_truncated) {
      return close();
    }
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return reply_error(413, "InvalidParameter.Body",
                         "The request body is larger than the server accepts.");
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
      keep_alive_ = false;  // the stream is out of sync: answer once, then close
      return reply_error(400, "ParameterCheckFailed", "Malformed HTTP request.");
    }
    if (ec) return close();  // timeout, reset...

    const auto& request = parser_->get();
    keep_alive_ = request.keep_alive();
    head_request_ = request.method() == http::verb::head;

    const std::string_view target = request.target();
    const auto question = target.find('?');
    const std::string_view path = target.substr(0, question);
    if (path != "/") {
      return reply_error(404, "ApiNotSupport", "The specified API is not supported.");
    }
    const bool is_post = request.method() == http::verb::post;
    if (!is_post && request.method() != http::verb::get) {
      return reply_error(405, "UnsupportedHTTPMethod",
                         "The HTTP method is not supported; use GET or POST.");
    }
    if (core_.pending.load(std::memory_order_relaxed) >= core_.config.max_pending_actions) {
      return reply_error(500, "SystemOverFlow",
                         "An error occurred while processing your request. Please try again.");
    }

    ApiRequest api;
    api.method = is_post ? "POST" : "GET";
    if (question != std::string_view::npos) api.query = target.substr(question + 1);
    if (is_post) {
      // A form body, or a body without a Content-Type: other bodies are not parameters.
      const std::string_view content_type = request[http::field::content_type];
      api.body_is_form =
          content_type.empty() || iequals_prefix(content_type, "application/x-www-form-urlencoded");
      api.body = std::move(parser_->get().body());
    }
    api.host_id = host_id_;
    api.has_authorization_header = request.count(http::field::authorization) > 0;

    net::post(core_.blocking, [self = shared_from_this(), api = std::move(api),
                               pending = ServerCore::PendingAction(core_)]() {
      ApiResponse response = self->core_.handler.handle(api);
      auto executor = self->stream_.get_executor();
      net::post(executor, [self = std::move(self), response = std::move(response)]() mutable {
        self->reply(std::move(response));
      });
    });
  }

  void reply_error(unsigned status, std::string_view code, std::string_view message) {
    log::info("admin: HTTP-level refusal -> ", status, " ", code);
    reply(make_error_response(status, code, message, host_id_));
  }

  void reply(ApiResponse api_response) {
    response_ = {};
    response_.version(version_);
    response_.result(api_response.status);
    response_.set(http::field::content_type, kJsonContentType);
    response_.set("x-acs-request-id", api_response.request_id);
    if (api_response.status == 405) response_.set(http::field::allow, "GET, POST");
    response_.keep_alive(keep_alive_);
    response_.body() = std::move(api_response.body);
    response_.prepare_payload();
    // A response to HEAD carries the headers of the GET answer but never a body.
    if (head_request_) response_.body().clear();
    lowest().expires_after(core_.config.idle_timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return close();
    if (!keep_alive_) return linger_close();
    read_request();
  }

  void linger_close() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      // close_notify, then wait (bounded) for the peer's before closing.
      lowest().expires_after(kLingerTimeout);
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->close(); });
      return;
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      stream_.expires_after(kLingerTimeout);
      drain();
    }
  }

  void drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                              self->drained_bytes_ += bytes;
                              if (ec || self->drained_bytes_ > kLingerMaxBytes)
                                return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
  }

  std::shared_ptr<net::ssl::context> context_;  // TLS: the context of its handshake
  Stream stream_;
  ServerCore& core_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool head_request_ = false;
  http::response<http::string_body> response_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  std::string host_id_;
  std::array<char, 4096> scratch_{};
  std::size_t drained_bytes_ = 0;
};

}  // namespace

struct AdminServer::Impl : ServerCore {
  using ServerCore::ServerCore;

  void accept() {
    acceptor->async_accept(net::make_strand(io_context),
                           beast::bind_front_handler(&Impl::on_accept, this));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (ec) {
      log::warn("admin: accept failed: ", ec.message());
    } else {
      if (config.tls) {
        std::make_shared<Session<TlsStream>>(std::move(socket), *this, config.tls->current())
            ->run();
      } else {
        std::make_shared<Session<PlainStream>>(std::move(socket), *this)->run();
      }
    }
    accept();
  }

  net::io_context io_context{1};
  std::optional<tcp::acceptor> acceptor;  // after io_context: destroyed before it
  tcp::endpoint bound;
  std::thread io_thread;
  std::mutex lifecycle_mutex;
  bool started = false;
  bool stopped = false;
};

AdminServer::AdminServer(AdminConfig config, auth::CredentialService& credentials,
                         boost::asio::any_io_executor blocking_executor)
    : impl_(std::make_unique<Impl>(config, credentials, std::move(blocking_executor))) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) throw std::logic_error("AdminServer::start called twice");
  auto& acceptor = impl_->acceptor.emplace(impl_->io_context);
  const auto& endpoint = impl_->config.listen;
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  impl_->bound = acceptor.local_endpoint();
  std::ostringstream host_id;
  host_id << impl_->bound;
  impl_->listener_host_id = host_id.str();
  impl_->started = true;
  impl_->accept();
  impl_->io_thread = std::thread([impl = impl_.get()] {
    for (;;) {
      try {
        impl->io_context.run();
        return;
      } catch (const std::exception& e) {
        log::error("admin: I/O thread caught: ", e.what());
      }
    }
  });
  log::info("admin API listening on ", impl_->listener_host_id,
            impl_->config.tls ? " (HTTPS)" : " (HTTP)");
}

boost::asio::ip::tcp::endpoint AdminServer::bound_endpoint() const {
  std::lock_guard lock(impl_->lifecycle_mutex);
  return impl_->bound;
}

void AdminServer::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->io_context.stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  beast::error_code ignored;
  impl_->acceptor->close(ignored);
  {
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      std::lock_guard sessions_lock(impl_->sessions_mutex);
      for (auto& [_, weak] : impl_->sessions) {
        if (auto session = weak.lock()) live.push_back(std::move(session));
      }
    }
    for (auto& session : live) session->abort();
  }
  // Actions on the pool reference the handler: let them finish. Their replies are posted to
  // the stopped io_context and discarded with it, closing their connections.
  impl_->wait_for_pending_actions();
  log::info("admin API stopped");
}

}  // namespace credmq::admin
