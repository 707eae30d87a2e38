// credmq_loadgen: a load generator for any MQTT 3.1.1 / 5.0 broker on the loopback interface.
// Raw MQTT over TCP with the project's Sans-I/O codec, Boost.Asio, one io_context per thread.
// Every scenario prints exactly one JSON line on stdout; diagnostics go to stderr.
//
//   credmq_loadgen --scenario connect|pairs|fanout|fanin|idle|revoke|storm|register [options]
//
// See bench/README.md (and `--help`) for the options. Every wait has a deadline: the program
// always ends by itself.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "credmq/common/crypto.hpp"
#include "credmq/mqtt/codec.hpp"

namespace {

namespace asio = boost::asio;
namespace mqtt = credmq::mqtt;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---------------------------------------------------------------------------------------------
// Options: --name value or --flag.
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument " + key);
      key = key.substr(2);
      if (auto eq = key.find('='); eq != std::string::npos) {
        values_[key.substr(0, eq)] = key.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[key] = argv[++i];
      } else {
        values_[key] = "1";
      }
    }
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string str(const std::string& key, const std::string& def = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? def : it->second;
  }
  double num(const std::string& key, double def) const {
    auto it = values_.find(key);
    return it == values_.end() ? def : std::stod(it->second);
  }
  std::int64_t integer(const std::string& key, std::int64_t def) const {
    auto it = values_.find(key);
    return it == values_.end() ? def : std::stoll(it->second);
  }

 private:
  std::map<std::string, std::string> values_;
};

// ---------------------------------------------------------------------------------------------
// Log-linear latency histogram over nanoseconds: 64 sub-buckets per power of two (~1.5%).
class Histogram {
 public:
  static constexpr int kSub = 64;
  Histogram() : buckets_(64 * kSub, 0) {}
  void add(std::int64_t ns) {
    if (ns < 0) ns = 0;
    auto v = static_cast<std::uint64_t>(ns);
    ++count_;
    max_ = std::max(max_, v);
    buckets_[index(v)]++;
  }
  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }
  std::uint64_t count() const { return count_; }
  // Value at quantile q (0..1), in microseconds.
  double quantile_us(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(static_cast<double>(value(i)), double(max_)) / 1000.0;
    }
    return static_cast<double>(max_) / 1000.0;
  }
  double max_us() const { return static_cast<double>(max_) / 1000.0; }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return v;
    int msb = 63 - __builtin_clzll(v);  // >= 6
    int shift = msb - 6;
    auto sub = (v >> shift) & (kSub - 1);
    return static_cast<std::size_t>((shift + 1) * kSub) + sub;
  }
  static std::uint64_t value(std::size_t i) {  // upper edge of bucket i (midpoint-ish)
    if (i < kSub) return i;
    std::size_t shift = i / kSub - 1;
    std::uint64_t sub = i % kSub;
    return ((kSub + sub) << shift) + ((std::uint64_t{1} << shift) >> 1);
  }
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

// ---------------------------------------------------------------------------------------------
// JSON result line.
class Result {
 public:
  explicit Result(std::string scenario) { add("scenario", scenario); }
  void add(const std::string& key, const std::string& value) {
    fields_.push_back("\"" + key + "\":" + boost::json::serialize(boost::json::value(value)));
  }
  void add(const std::string& key, const char* value) { add(key, std::string(value)); }
  void add(const std::string& key, double value) {
    std::ostringstream out;
    out.precision(6);
    out << value;
    fields_.push_back("\"" + key + "\":" + (std::isfinite(value) ? out.str() : "null"));
  }
  void add(const std::string& key, std::int64_t value) {
    fields_.push_back("\"" + key + "\":" + std::to_string(value));
  }
  void add(const std::string& key, std::uint64_t value) {
    fields_.push_back("\"" + key + "\":" + std::to_string(value));
  }
  void add(const std::string& key, int value) { add(key, static_cast<std::int64_t>(value)); }
  void add(const std::string& key, bool value) {
    fields_.push_back("\"" + key + "\":" + (value ? "true" : "false"));
  }
  void add_null(const std::string& key) { fields_.push_back("\"" + key + "\":null"); }
  void add_latency(const std::string& prefix, const Histogram& h) {
    add(prefix + "_p50_us", h.quantile_us(0.50));
    add(prefix + "_p99_us", h.quantile_us(0.99));
    add(prefix + "_max_us", h.max_us());
  }
  void print() const {
    std::string line = "{";
    for (std::size_t i = 0; i < fields_.size(); ++i) line += (i ? "," : "") + fields_[i];
    line += "}";
    std::cout << line << std::endl;
  }

 private:
  std::vector<std::string> fields_;
};

// ---------------------------------------------------------------------------------------------
struct Cred {
  std::string client_id, username, password;
};

std::vector<Cred> load_creds(const std::string& path) {
  std::vector<Cred> creds;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read credentials file " + path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Cred c;
    if (fields >> c.client_id >> c.username >> c.password) creds.push_back(std::move(c));
  }
  return creds;
}

tcp::endpoint loopback_endpoint(const std::string& host, std::int64_t port) {
  auto address = asio::ip::make_address(host);
  if (!address.is_loopback()) throw std::invalid_argument("only loopback brokers: " + host);
  if (port <= 0 || port > 65535) throw std::invalid_argument("bad --port");
  return {address, static_cast<std::uint16_t>(port)};
}

void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

long read_rss_kb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// One io_context per thread; connections are spread round-robin.
class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(asio::make_work_guard(*contexts_.back()));
    }
    for (auto& ctx : contexts_) {
      threads_.emplace_back([c = ctx.get()] {
        try {
          c->run();
        } catch (const std::exception& e) {
          std::cerr << "loadgen: io thread: " << e.what() << "\n";
        }
      });
    }
  }
  ~Pool() { stop(); }
  asio::io_context& at(std::size_t i) { return *contexts_[i % contexts_.size()]; }
  void stop() {
    guards_.clear();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------------
// One MQTT client connection. All its handlers run on its io_context's single thread.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  enum class State { idle, connecting, up, refused, closed };

  Conn(asio::io_context& io, mqtt::ProtocolVersion version) : io_(io), sock_(io), ver_(version) {}

  std::function<void(Conn&, const mqtt::Connack&)> on_connack;
  std::function<void(Conn&, mqtt::Publish&)> on_publish;
  std::function<void(Conn&, const mqtt::Ack&)> on_ack;
  std::function<void(Conn&, const mqtt::Suback&)> on_suback;
  std::function<void(Conn&)> on_close;

  asio::io_context& io() { return io_; }
  mqtt::ProtocolVersion version() const { return ver_; }
  std::atomic<State> state{State::idle};
  std::atomic<std::int64_t> start_ns{0}, connack_ns{0}, close_ns{0};
  std::atomic<int> disconnect_reason{-1};  // reason of a server DISCONNECT (5.0), -1 none
  std::atomic<int> connack_code{-1};
  bool closing_by_us = false;
  std::uint64_t receive_maximum = 65535;  // the broker's (MQTT 5 CONNACK), for QoS 1/2 flows
  std::size_t index = 0;

  void start(const tcp::endpoint& endpoint, mqtt::Connect connect) {
    connect.version = ver_;
    state = State::connecting;
    start_ns = now_ns();
    sock_.async_connect(endpoint, [self = shared_from_this(),
                                   c = std::move(connect)](boost::system::error_code ec) {
      if (ec) return self->fail();
      self->sock_.set_option(tcp::no_delay(true), ec);
      std::string bytes;
      mqtt::encode(c, self->ver_, bytes);
      self->send(bytes);
      self->read();
    });
  }

  void send(std::string_view bytes) {
    pending_.append(bytes);
    if (!writing_) flush();
  }
  void send_packet(const mqtt::Packet& packet) {
    scratch_.clear();
    mqtt::encode(packet, ver_, scratch_);
    send(scratch_);
  }
  // Closes from any thread.
  void close_async(bool send_disconnect) {
    asio::post(io_, [self = shared_from_this(), send_disconnect] {
      if (self->state == State::closed) return;
      self->closing_by_us = true;
      if (send_disconnect && self->state == State::up) {
        std::string bytes;
        mqtt::encode(mqtt::Disconnect{}, self->ver_, bytes);
        boost::system::error_code ec;
        asio::write(self->sock_, asio::buffer(bytes), ec);
      }
      self->fail();
    });
  }
  bool open() const { return state == State::up; }

 private:
  void flush() {
    if (pending_.empty() || state == State::closed) return;
    writing_ = true;
    out_.swap(pending_);
    pending_.clear();
    asio::async_write(sock_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->out_.clear();
                        if (ec) return self->fail();
                        self->flush();
                      });
  }

  // The read buffer starts small and grows when a read fills it: the connect, idle, revoke
  // and storm scenarios hold thousands of connections that receive a few bytes each, and
  // zero-filling 64 KiB per connection (page faults) cost the load generator about a third
  // of its CPU per CONNECT, on the cores the broker uses too. Busy connections reach the
  // former 16 KiB room (64 KiB buffer) after a few full reads.
  void read() {
    if (buf_.size() - used_ < room_) {
      buf_.resize(std::max<std::size_t>(4 * room_, std::max(used_ + room_, buf_.size() * 2)));
    }
    const std::size_t asked = buf_.size() - used_;
    sock_.async_read_some(
        asio::buffer(buf_.data() + used_, asked),
        [self = shared_from_this(), asked](boost::system::error_code ec, std::size_t n) {
          if (ec) return self->fail();
          if (n == asked) self->room_ = std::min<std::size_t>(self->room_ * 2, 16384);
          self->used_ += n;
          if (!self->parse()) return;
          self->read();
        });
  }

  // Returns false once the connection is finished.
  bool parse() {
    std::size_t pos = 0;
    while (state != State::closed) {
      std::span<const std::uint8_t> rest(buf_.data() + pos, used_ - pos);
      auto frame = mqtt::frame(rest, 256 * 1024 * 1024);
      if (frame.status == mqtt::Frame::Status::need_more) break;
      if (frame.status == mqtt::Frame::Status::error) {
        std::cerr << "loadgen: bad frame from broker\n";
        fail();
        return false;
      }
      if (rest.size() < frame.total_size()) break;
      auto ec = mqtt::decode(rest.first(frame.total_size()), ver_, packet_, mqtt::Sender::server);
      pos += frame.total_size();
      if (ec) {
        std::cerr << "loadgen: undecodable packet from broker: " << ec.message() << "\n";
        fail();
        return false;
      }
      dispatch();
    }
    if (state == State::closed) return false;
    std::memmove(buf_.data(), buf_.data() + pos, used_ - pos);
    used_ -= pos;
    return true;
  }

  void dispatch() {
    if (auto* p = std::get_if<mqtt::Publish>(&packet_)) {
      if (on_publish) on_publish(*this, *p);
    } else if (auto* a = std::get_if<mqtt::Ack>(&packet_)) {
      if (on_ack) on_ack(*this, *a);
    } else if (auto* c = std::get_if<mqtt::Connack>(&packet_)) {
      connack_ns = now_ns();
      connack_code = c->reason_code;
      if (c->properties.receive_maximum) receive_maximum = *c->properties.receive_maximum;
      state = c->reason_code == 0 ? State::up : State::refused;
      if (on_connack) on_connack(*this, *c);
      if (c->reason_code != 0) fail();
    } else if (auto* s = std::get_if<mqtt::Suback>(&packet_)) {
      if (on_suback) on_suback(*this, *s);
    } else if (auto* d = std::get_if<mqtt::Disconnect>(&packet_)) {
      disconnect_reason = d->reason_code;
      fail();
    }
  }

  void fail() {
    if (state == State::closed) return;
    close_ns = now_ns();
    state = State::closed;
    boost::system::error_code ec;
    if (closing_by_us) {
      // Reset rather than FIN: a FIN-closed client socket sits in TIME_WAIT for 60 s, and
      // after a few scenarios thousands of those make the kernel's reuse of their ports for
      // new connections stall some CONNECTs by a retransmission timeout (~200 ms), which
      // then measured the previous scenario, not the broker.
      sock_.set_option(asio::socket_base::linger(true, 0), ec);
    } else {
      sock_.shutdown(tcp::socket::shutdown_both, ec);
    }
    sock_.close(ec);
    if (on_close) {
      auto cb = std::move(on_close);
      on_close = nullptr;
      cb(*this);
    }
    // Break the callback cycles (they capture shared state, not this connection).
    on_publish = nullptr;
    on_ack = nullptr;
    on_suback = nullptr;
    on_connack = nullptr;
  }

  asio::io_context& io_;
  tcp::socket sock_;
  mqtt::ProtocolVersion ver_;
  std::vector<std::uint8_t> buf_;
  std::size_t used_ = 0;
  std::size_t room_ = 1024;  // free space wanted before a read; doubles up to 16 KiB
  std::string pending_, out_, scratch_;
  bool writing_ = false;
  mqtt::Packet packet_;
};

using ConnPtr = std::shared_ptr<Conn>;

// ---------------------------------------------------------------------------------------------
// Common connection settings.
struct Common {
  tcp::endpoint endpoint;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::v3_1_1;
  int threads = 2;
  std::string broker = "unknown";
  std::vector<Cred> creds;  // empty: anonymous, generated client ids
  std::size_t cred_offset = 0;
  std::uint16_t keep_alive = 600;
  double timeout_s = 60;

  mqtt::Connect connect_packet(std::size_t i, const std::string& prefix) const {
    mqtt::Connect c;
    c.clean_start = true;
    c.keep_alive = keep_alive;
    if (!creds.empty()) {
      const Cred& cred = creds[(cred_offset + i) % creds.size()];
      c.client_id = cred.client_id;
      c.username = cred.username;
      c.password = cred.password;
    } else {
      c.client_id = prefix + std::to_string(i);
    }
    return c;
  }
};

void add_common(Result& r, const Common& common) {
  r.add("broker", common.broker);
  r.add("mqtt", common.version == mqtt::ProtocolVersion::v5 ? "5.0" : "3.1.1");
  r.add("threads", common.threads);
}

// Connects `count` clients (indices base..base+count) with at most `concurrency` CONNECTs in
// flight. Returns the connections (closed or refused ones included) once every attempt ended
// or the deadline passed. `hist` receives start-to-CONNACK latency of accepted ones.
struct ConnectOutcome {
  std::vector<ConnPtr> conns;
  std::uint64_t accepted = 0, refused = 0, failed = 0, hanging = 0;
  double seconds = 0;
  Histogram hist;
};

ConnectOutcome connect_many(Pool& pool, const Common& common, std::size_t base, std::size_t count,
                            std::size_t concurrency, const std::string& prefix, double deadline_s) {
  struct Shared {
    std::mutex mu;  // guards next, closed, conns, hist
    std::size_t next = 0;
    bool closed = false;
    std::vector<ConnPtr> conns;
    Histogram hist;
    std::atomic<std::size_t> done{0};
    std::atomic<std::uint64_t> accepted{0}, refused{0}, failed{0};
  };
  auto shared = std::make_shared<Shared>();
  shared->conns.resize(count);
  // launch() takes the next index and starts it; every completion launches another.
  auto launcher = std::make_shared<std::function<void()>>();
  *launcher = [pool = &pool, common = &common, base, count, prefix, shared,
               weak = std::weak_ptr(launcher)] {
    ConnPtr conn;
    std::size_t i;
    {
      std::lock_guard lock(shared->mu);
      if (shared->closed || shared->next >= count) return;
      i = shared->next++;
      conn = std::make_shared<Conn>(pool->at(base + i), common->version);
      conn->index = base + i;
      shared->conns[i] = conn;
    }
    auto finish = [shared, weak](int outcome, std::int64_t latency) {
      if (outcome == 0) {
        std::lock_guard lock(shared->mu);
        shared->hist.add(latency);
      }
      (outcome == 0 ? shared->accepted : outcome == 1 ? shared->refused : shared->failed)++;
      shared->done++;
      if (auto l = weak.lock()) (*l)();
    };
    auto finished = std::make_shared<bool>(false);  // the connection's thread only
    conn->on_connack = [finish, finished](Conn& c, const mqtt::Connack& ack) {
      if (std::exchange(*finished, true)) return;
      finish(ack.reason_code == 0 ? 0 : 1, c.connack_ns - c.start_ns);
    };
    conn->on_close = [finish, finished](Conn&) {
      if (std::exchange(*finished, true)) return;
      finish(2, 0);  // closed (or connect failed) before any CONNACK
    };
    asio::post(conn->io(), [conn, common, idx = base + i, prefix] {
      conn->start(common->endpoint, common->connect_packet(idx, prefix));
    });
  };
  auto t0 = now_ns();
  for (std::size_t k = 0; k < std::min(concurrency, count); ++k) (*launcher)();
  auto deadline = Clock::now() + std::chrono::duration<double>(deadline_s);
  while (shared->done < count && Clock::now() < deadline) sleep_ms(1);
  ConnectOutcome out;
  out.seconds = static_cast<double>(now_ns() - t0) / 1e9;
  {
    std::lock_guard lock(shared->mu);
    shared->closed = true;  // nothing is launched after the deadline
    out.conns = shared->conns;
    out.hist = shared->hist;
  }
  out.accepted = shared->accepted;
  out.refused = shared->refused;
  out.failed = shared->failed;
  out.hanging = count - std::min<std::size_t>(count, shared->done);
  // Drop the completion hooks; connections stay open.
  for (auto& c : out.conns) {
    if (!c) continue;
    asio::post(c->io(), [c] {
      c->on_connack = nullptr;
      if (c->state != Conn::State::closed) c->on_close = nullptr;
    });
  }
  return out;
}

void close_all(const std::vector<ConnPtr>& conns, bool send_disconnect) {
  for (auto& c : conns)
    if (c) c->close_async(send_disconnect);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& c : conns) {
    while (c && c->state != Conn::State::closed && Clock::now() < deadline) sleep_ms(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Admin API client (signature V1), synchronous, keep-alive.
struct AdminCreds {
  std::string access_key_id, access_key_secret, instance_id;
};

AdminCreds load_admin_creds(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto v = boost::json::parse(text.str()).as_object();
  return {std::string(v.at("AccessKeyId").as_string()),
          std::string(v.at("AccessKeySecret").as_string()),
          std::string(v.at("InstanceId").as_string())};
}

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

class AdminClient {
 public:
  AdminClient(tcp::endpoint endpoint, AdminCreds creds)
      : endpoint_(endpoint), creds_(std::move(creds)), sock_(io_) {}

  struct Reply {
    int status = 0;
    std::string body;
  };

  Reply call(const std::string& action, const std::map<std::string, std::string>& params) {
    std::map<std::string, std::string> signed_params{{"Action", action},
                                                     {"Version", "2020-04-20"},
                                                     {"AccessKeyId", creds_.access_key_id},
                                                     {"SignatureMethod", "HMAC-SHA1"},
                                                     {"SignatureVersion", "1.0"},
                                                     {"SignatureNonce", nonce()},
                                                     {"Format", "JSON"},
                                                     {"Timestamp", timestamp()},
                                                     {"InstanceId", creds_.instance_id}};
    for (const auto& [k, v] : params) signed_params[k] = v;
    std::vector<std::pair<std::string, std::string>> encoded;
    for (const auto& [k, v] : signed_params)
      encoded.emplace_back(percent_encode(k), percent_encode(v));
    std::sort(encoded.begin(), encoded.end());
    std::string canonical;
    for (const auto& [k, v] : encoded) canonical += (canonical.empty() ? "" : "&") + k + "=" + v;
    std::string to_sign = "POST&%2F&" + percent_encode(canonical);
    std::string signature =
        credmq::crypto::hmac_sha1_base64(creds_.access_key_secret + "&", to_sign);
    std::string body = canonical + "&Signature=" + percent_encode(signature);
    std::string request = "POST / HTTP/1.1\r\nHost: " + endpoint_.address().to_string() + ":" +
                          std::to_string(endpoint_.port()) +
                          "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          "Content-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!sock_.is_open()) {
          sock_.connect(endpoint_);
          sock_.set_option(tcp::no_delay(true));
          buffer_.clear();
        }
        asio::write(sock_, asio::buffer(request));
        return read_reply();
      } catch (const std::exception&) {
        boost::system::error_code ec;
        sock_.close(ec);
        if (attempt == 1) throw;
      }
    }
    return {};
  }

  const AdminCreds& creds() const { return creds_; }

 private:
  Reply read_reply() {
    std::size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) read_more();
    std::string head = buffer_.substr(0, header_end);
    Reply reply;
    reply.status = std::stoi(head.substr(head.find(' ') + 1, 3));
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    std::size_t length = 0;
    if (auto p = lower.find("content-length:"); p != std::string::npos) {
      length = std::stoul(lower.substr(p + 15));
    }
    bool close = lower.find("connection: close") != std::string::npos;
    while (buffer_.size() < header_end + 4 + length) read_more();
    reply.body = buffer_.substr(header_end + 4, length);
    buffer_.erase(0, header_end + 4 + length);
    if (close) {
      boost::system::error_code ec;
      sock_.close(ec);
    }
    return reply;
  }
  void read_more() {
    char chunk[16384];
    std::size_t n = sock_.read_some(asio::buffer(chunk));
    buffer_.append(chunk, n);
  }
  std::string nonce() {
    auto bytes = credmq::crypto::random_bytes(12);
    return credmq::crypto::base64url_encode(bytes) + std::to_string(counter_++);
  }
  static std::string timestamp() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
  }

  tcp::endpoint endpoint_;
  AdminCreds creds_;
  asio::io_context io_;
  tcp::socket sock_;
  std::string buffer_;
  std::uint64_t counter_ = 0;
};

tcp::endpoint admin_endpoint(const Args& args) {
  std::string admin = args.str("admin", "127.0.0.1:8080");
  auto colon = admin.rfind(':');
  return loopback_endpoint(admin.substr(0, colon), std::stoll(admin.substr(colon + 1)));
}

// ---------------------------------------------------------------------------------------------
// register: registers --count devices through the admin API and writes the credentials file.
int run_register(const Args& args) {
  auto endpoint = admin_endpoint(args);
  auto creds = load_admin_creds(args.str("admin-creds"));
  auto count = static_cast<std::size_t>(args.integer("count", 100));
  std::string prefix = args.str("prefix", "GID_bench@@@dev-");
  int conns = static_cast<int>(args.integer("http-conns", 4));
  std::vector<std::string> lines(count);
  std::atomic<std::size_t> next{0}, errors{0};
  auto t0 = now_ns();
  std::vector<std::thread> workers;
  for (int w = 0; w < conns; ++w) {
    workers.emplace_back([&] {
      AdminClient client(endpoint, creds);
      for (std::size_t i; (i = next++) < count;) {
        std::string id = prefix + std::to_string(i);
        try {
          auto reply = client.call("RegisterDeviceCredential", {{"ClientId", id}});
          if (reply.status != 200) throw std::runtime_error(reply.body);
          auto dc = boost::json::parse(reply.body).as_object().at("DeviceCredential").as_object();
          std::string kid(dc.at("DeviceAccessKeyId").as_string());
          std::string secret(dc.at("DeviceAccessKeySecret").as_string());
          std::string inst(dc.at("InstanceId").as_string());
          lines[i] = id + " DeviceCredential|" + kid + "|" + inst + " " +
                     credmq::crypto::hmac_sha1_base64(secret, id);
        } catch (const std::exception& e) {
          if (errors++ < 5) std::cerr << "loadgen: register " << id << ": " << e.what() << "\n";
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  double secs = static_cast<double>(now_ns() - t0) / 1e9;
  std::ofstream out(args.str("out", "creds.txt"));
  for (const auto& l : lines)
    if (!l.empty()) out << l << "\n";
  Result r("register");
  r.add("count", static_cast<std::uint64_t>(count));
  r.add("errors", static_cast<std::uint64_t>(errors));
  r.add("seconds", secs);
  r.add("per_s", static_cast<double>(count) / secs);
  r.print();
  return errors ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
int run_connect(const Args& args, const Common& common) {
  auto n = static_cast<std::size_t>(
      args.integer("clients", common.creds.empty() ? 1000 : std::int64_t(common.creds.size())));
  auto concurrency = static_cast<std::size_t>(args.integer("concurrency", 100));
  Pool pool(common.threads);
  auto out = connect_many(pool, common, 0, n, concurrency, "bench-connect-", common.timeout_s);
  Result r("connect");
  add_common(r, common);
  r.add("clients", static_cast<std::uint64_t>(n));
  r.add("concurrency", static_cast<std::uint64_t>(concurrency));
  r.add("connects_per_s", static_cast<double>(out.accepted) / out.seconds);
  r.add_latency("connack", out.hist);
  r.add("accepted", out.accepted);
  r.add("refused", out.refused);
  r.add("failed", out.failed);
  r.add("hanging", out.hanging);
  r.add("seconds", out.seconds);
  close_all(out.conns, true);
  pool.stop();
  r.add("ok", out.accepted == n);
  r.print();
  return out.accepted == n ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
int run_idle(const Args& args, const Common& common) {
  auto n = static_cast<std::size_t>(args.integer("clients", 1000));
  auto concurrency = static_cast<std::size_t>(args.integer("concurrency", 100));
  long pid = static_cast<long>(args.integer("broker-pid", 0));
  if (pid <= 0) throw std::invalid_argument("idle needs --broker-pid");
  double hold = args.num("hold", 2.0);
  Pool pool(common.threads);
  // Two halves: the first connections also warm caches that are not per-connection cost
  // (the SQLite page cache of the credential lookups, allocator arenas), so the growth
  // over the second half alone is the marginal memory of one more idle connection.
  const std::size_t first_half = n / 2;
  long before = read_rss_kb(pid);
  auto first =
      connect_many(pool, common, 0, first_half, concurrency, "bench-idle-", common.timeout_s);
  std::this_thread::sleep_for(std::chrono::duration<double>(hold));
  long middle = read_rss_kb(pid);
  auto second = connect_many(pool, common, first_half, n - first_half, concurrency, "bench-idle-",
                             common.timeout_s);
  std::this_thread::sleep_for(std::chrono::duration<double>(hold));
  long after = read_rss_kb(pid);
  const std::uint64_t accepted = first.accepted + second.accepted;
  std::size_t still_open = 0;
  for (const auto* half : {&first, &second}) {
    for (auto& c : half->conns) still_open += c && c->open();
  }
  auto per_conn = [](long from_kb, long to_kb, std::uint64_t conns) {
    return conns ? static_cast<double>(to_kb - from_kb) * 1024.0 / double(conns) : 0.0;
  };
  Result r("idle");
  add_common(r, common);
  r.add("clients", static_cast<std::uint64_t>(n));
  r.add("accepted", accepted);
  r.add("still_open", static_cast<std::uint64_t>(still_open));
  r.add("rss_before_kb", static_cast<std::int64_t>(before));
  r.add("rss_middle_kb", static_cast<std::int64_t>(middle));
  r.add("rss_after_kb", static_cast<std::int64_t>(after));
  // Whole growth / all connections (warm-up included), as before.
  r.add("bytes_per_conn", per_conn(before, after, accepted));
  r.add("first_half_bytes_per_conn", per_conn(before, middle, first.accepted));
  r.add("marginal_bytes_per_conn", per_conn(middle, after, second.accepted));
  close_all(first.conns, true);
  close_all(second.conns, true);
  pool.stop();
  bool ok = accepted == n && still_open == n;
  r.add("ok", ok);
  r.print();
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Message scenarios: pairs, fanout, fanin.
struct Pub;
struct Sub {
  ConnPtr conn;
  Histogram hist;  // e2e latency, touched by the sub's thread only
  std::vector<std::vector<bool>> seen;
  std::atomic<std::uint64_t> unique{0}, dups{0};
  std::atomic<std::int64_t> last_ns{0};
  std::atomic<bool> subscribed{false};
};

struct Pub {
  ConnPtr conn;
  std::uint32_t id = 0;
  std::string topic;
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> delivered{0};  // deliveries counted by subscribers
  std::atomic<std::uint64_t> acked{0};
  std::atomic<bool> waiting{false};
  std::uint64_t forgiven = 0;  // QoS 0 deliveries given up on (lost), for the window
  std::uint32_t inflight = 0;  // unacknowledged QoS 1/2
  std::uint16_t next_pid = 0;
  std::string buf;
  std::unique_ptr<asio::steady_timer> timer;
  std::uint64_t stall_seen = ~std::uint64_t{0};
};

struct MsgRun {
  const Common* common = nullptr;
  std::uint8_t qos = 0;
  std::size_t payload = 64;
  std::uint64_t window = 32;
  std::uint64_t fan = 1;             // deliveries per publish
  std::uint64_t limit = UINT64_MAX;  // messages per publisher
  double rate_per_pub = 0;           // msgs/s per publisher, 0 = as fast as the window allows
  std::int64_t start_ns = 0;
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Pub>> pubs;
  std::vector<std::unique_ptr<Sub>> subs;
};

void pump(MsgRun& run, Pub& pub);

void arm(MsgRun& run, Pub& pub, std::chrono::nanoseconds after) {
  pub.timer->expires_after(after);
  pub.timer->async_wait([&run, &pub](boost::system::error_code ec) {
    if (ec) return;
    // QoS 0 window stall: if nothing arrived since the last look, give the window back.
    std::uint64_t d = pub.delivered.load();
    if (run.qos == 0 && pub.stall_seen == d) {
      pub.forgiven = pub.sent * run.fan - d;
    }
    pub.stall_seen = d;
    pump(run, pub);
  });
}

void pump(MsgRun& run, Pub& pub) {
  Conn& c = *pub.conn;
  if (!c.open()) return;
  pub.buf.clear();
  std::uint64_t sent = pub.sent.load(std::memory_order_relaxed);
  bool blocked_e2e = false;
  bool blocked_rate = false;
  std::int64_t now = now_ns();
  int batch = 0;
  while (!run.stop.load(std::memory_order_relaxed) && sent < run.limit && batch < 64) {
    if (run.qos > 0 && pub.inflight >= std::min(run.window, c.receive_maximum)) break;
    std::uint64_t delivered = pub.delivered.load(std::memory_order_acquire) + pub.forgiven;
    if (sent * run.fan >= delivered + run.window * run.fan) {
      blocked_e2e = true;
      break;
    }
    if (run.rate_per_pub > 0 &&
        static_cast<double>(sent) >=
            static_cast<double>(now - run.start_ns) / 1e9 * run.rate_per_pub) {
      blocked_rate = true;
      break;
    }
    std::uint16_t pid = 0;
    if (run.qos > 0) {
      if (++pub.next_pid == 0) pub.next_pid = 1;
      pid = pub.next_pid;
      ++pub.inflight;
    }
    mqtt::encode_publish_header(pub.buf, c.version(), run.qos, false, false, pub.topic, pid, {},
                                run.payload);
    std::size_t at = pub.buf.size();
    pub.buf.resize(at + run.payload, 'x');
    std::uint64_t id = pub.id;
    std::int64_t ts = now_ns();
    std::memcpy(&pub.buf[at], &id, 8);
    std::memcpy(&pub.buf[at + 8], &sent, 8);
    std::memcpy(&pub.buf[at + 16], &ts, 8);
    ++sent;
    ++batch;
  }
  pub.sent.store(sent, std::memory_order_release);
  if (!pub.buf.empty()) c.send(pub.buf);
  if (batch == 64) {
    asio::post(c.io(), [&run, &pub] { pump(run, pub); });
  } else if (blocked_e2e) {
    pub.waiting = true;
    // Re-check after publishing the flag so a delivery in between is not missed.
    std::uint64_t delivered = pub.delivered.load(std::memory_order_acquire) + pub.forgiven;
    if (sent * run.fan < delivered + run.window * run.fan && pub.waiting.exchange(false)) {
      asio::post(c.io(), [&run, &pub] { pump(run, pub); });
    } else {
      arm(run, pub, std::chrono::milliseconds(200));  // QoS 0 loss safety net
    }
  } else if (blocked_rate) {
    double next_s = static_cast<double>(sent + 1) / run.rate_per_pub;
    auto due = run.start_ns + static_cast<std::int64_t>(next_s * 1e9);
    arm(run, pub, std::chrono::nanoseconds(std::max<std::int64_t>(0, due - now_ns())));
  }
}

int run_messages(const Args& args, const Common& common, const std::string& scenario) {
  Pool pool(common.threads);  // declared first: destroyed after the connections
  MsgRun run;
  run.common = &common;
  run.qos = static_cast<std::uint8_t>(args.integer("qos", 0));
  if (run.qos > 2) throw std::invalid_argument("--qos 0|1|2");
  run.payload = std::max<std::size_t>(24, static_cast<std::size_t>(args.integer("payload", 64)));
  run.window = static_cast<std::uint64_t>(std::max<std::int64_t>(1, args.integer("inflight", 16)));
  double duration = args.num("duration", 5);
  if (args.has("messages")) {
    run.limit = static_cast<std::uint64_t>(args.integer("messages", 1000));
    duration = common.timeout_s;
  }
  std::size_t n_pub = 1, n_sub = 1;
  if (scenario == "pairs") {
    n_pub = n_sub = static_cast<std::size_t>(args.integer("pairs", 8));
  } else if (scenario == "fanout") {
    n_sub = static_cast<std::size_t>(args.integer("subscribers", 8));
    run.fan = n_sub;
  } else {
    n_pub = static_cast<std::size_t>(args.integer("publishers", 8));
  }
  double rate = args.num("rate", 0);  // total offered publishes per second
  run.rate_per_pub = rate > 0 ? rate / static_cast<double>(n_pub) : 0;

  for (std::size_t i = 0; i < n_pub; ++i) {
    auto p = std::make_unique<Pub>();
    p->id = static_cast<std::uint32_t>(i);
    p->topic = scenario == "pairs"    ? "bench/pairs/" + std::to_string(i)
               : scenario == "fanout" ? std::string("bench/fanout")
                                      : "bench/fanin/" + std::to_string(i);
    run.pubs.push_back(std::move(p));
  }
  for (std::size_t i = 0; i < n_sub; ++i) {
    auto s = std::make_unique<Sub>();
    s->seen.resize(n_pub);
    run.subs.push_back(std::move(s));
  }

  // Subscribers first (client ids/credentials 0..n_sub-1), then publishers.
  std::atomic<std::size_t> up{0}, down{0};
  for (std::size_t i = 0; i < n_sub; ++i) {
    Sub& sub = *run.subs[i];
    sub.conn = std::make_shared<Conn>(pool.at(i), common.version);
    std::string filter = scenario == "pairs"    ? "bench/pairs/" + std::to_string(i)
                         : scenario == "fanout" ? std::string("bench/fanout")
                                                : std::string("bench/fanin/+");
    sub.conn->on_connack = [&run, filter](Conn& c, const mqtt::Connack& ack) {
      if (ack.reason_code != 0) return;
      mqtt::Subscribe s;
      s.packet_id = 1;
      s.subscriptions.push_back({filter, mqtt::SubscribeOptions{run.qos}});
      c.send_packet(s);
    };
    sub.conn->on_suback = [&sub, &up](Conn&, const mqtt::Suback&) {
      sub.subscribed = true;
      ++up;
    };
    sub.conn->on_close = [&down](Conn&) { ++down; };
    sub.conn->on_publish = [&run, &sub](Conn& c, mqtt::Publish& p) {
      std::int64_t now = now_ns();
      if (p.payload.size() >= 24) {
        std::uint64_t id, seq;
        std::int64_t ts;
        std::memcpy(&id, p.payload.data(), 8);
        std::memcpy(&seq, p.payload.data() + 8, 8);
        std::memcpy(&ts, p.payload.data() + 16, 8);
        if (id < sub.seen.size()) {
          auto& seen = sub.seen[id];
          if (seq >= seen.size()) seen.resize(std::max<std::size_t>(seq + 1, seen.size() * 2));
          if (seen[seq]) {
            sub.dups++;
          } else {
            seen[seq] = true;
            sub.unique.fetch_add(1, std::memory_order_relaxed);
            sub.hist.add(now - ts);
            sub.last_ns.store(now, std::memory_order_relaxed);
            Pub& pub = *run.pubs[id];
            pub.delivered.fetch_add(1, std::memory_order_release);
            if (pub.waiting.load(std::memory_order_relaxed) && pub.waiting.exchange(false)) {
              asio::post(pub.conn->io(), [&run, &pub] { pump(run, pub); });
            }
          }
        }
      }
      if (p.qos == 1) {
        c.send_packet(mqtt::Ack{mqtt::PacketType::puback, p.packet_id, 0, {}});
      } else if (p.qos == 2) {
        c.send_packet(mqtt::Ack{mqtt::PacketType::pubrec, p.packet_id, 0, {}});
      }
    };
    sub.conn->on_ack = [](Conn& c, const mqtt::Ack& a) {
      if (a.type == mqtt::PacketType::pubrel) {
        c.send_packet(mqtt::Ack{mqtt::PacketType::pubcomp, a.packet_id, 0, {}});
      }
    };
  }
  for (std::size_t i = 0; i < n_pub; ++i) {
    Pub& pub = *run.pubs[i];
    pub.conn = std::make_shared<Conn>(pool.at(n_sub + i), common.version);
    pub.timer = std::make_unique<asio::steady_timer>(pub.conn->io());
    pub.conn->on_connack = [&up](Conn&, const mqtt::Connack& ack) {
      if (ack.reason_code == 0) ++up;
    };
    pub.conn->on_close = [&down](Conn&) { ++down; };
    pub.conn->on_ack = [&run, &pub](Conn& c, const mqtt::Ack& a) {
      if (a.type == mqtt::PacketType::pubrec) {
        c.send_packet(mqtt::Ack{mqtt::PacketType::pubrel, a.packet_id, 0, {}});
        return;
      }
      // PUBACK (QoS 1) or PUBCOMP (QoS 2) ends the flow.
      if (pub.inflight > 0) --pub.inflight;
      pub.acked.fetch_add(1, std::memory_order_relaxed);
      pump(run, pub);
    };
  }
  auto start_all = [&](std::size_t from, std::size_t to, bool subs) {
    for (std::size_t i = from; i < to; ++i) {
      ConnPtr c = subs ? run.subs[i]->conn : run.pubs[i]->conn;
      std::size_t idx = subs ? i : n_sub + i;
      asio::post(c->io(), [c, &common, idx] {
        c->start(common.endpoint, common.connect_packet(idx, "bench-msg-"));
      });
    }
  };
  auto wait_for = [&](std::size_t target, double secs) {
    auto deadline = Clock::now() + std::chrono::duration<double>(secs);
    while (up < target && down == 0 && Clock::now() < deadline) sleep_ms(1);
    return up >= target && down == 0;
  };
  start_all(0, n_sub, true);
  bool ready = wait_for(n_sub, 20);
  if (ready) {
    start_all(0, n_pub, false);
    ready = wait_for(n_sub + n_pub, 20);
  }
  Result r(scenario);
  add_common(r, common);
  r.add("qos", static_cast<int>(run.qos));
  r.add("publishers", static_cast<std::uint64_t>(n_pub));
  r.add("subscribers", static_cast<std::uint64_t>(n_sub));
  r.add("payload", static_cast<std::uint64_t>(run.payload));
  r.add("inflight", run.window);
  r.add("offered_rate", rate);
  if (!ready) {
    std::cerr << "loadgen: clients did not all connect/subscribe (" << up << " up, " << down
              << " closed)\n";
    r.add("ok", false);
    r.add("error", "setup failed");
    pool.stop();
    r.print();
    return 1;
  }
  sleep_ms(100);  // let SUBACKed subscriptions settle everywhere

  run.start_ns = now_ns();
  for (auto& p : run.pubs) {
    Pub* pub = p.get();
    asio::post(pub->conn->io(), [&run, pub] { pump(run, *pub); });
  }
  // Run until the duration ends (or every publisher sent --messages), then drain.
  auto deadline = Clock::now() + std::chrono::duration<double>(duration);
  auto all_sent = [&] {
    for (auto& p : run.pubs)
      if (p->sent < run.limit) return false;
    return true;
  };
  while (Clock::now() < deadline && !(run.limit != UINT64_MAX && all_sent()) && down == 0)
    sleep_ms(2);
  std::int64_t stop_ns = now_ns();
  run.stop = true;
  sleep_ms(5);  // publishers see the flag; what is in their buffers goes out
  auto drained = [&] {
    for (auto& p : run.pubs) {
      if (p->delivered < p->sent * run.fan) return false;
      if (run.qos > 0 && p->acked < p->sent) return false;
    }
    return true;
  };
  auto drain_deadline = Clock::now() + std::chrono::duration<double>(args.num("drain", 5));
  while (!drained() && Clock::now() < drain_deadline) sleep_ms(2);

  std::uint64_t sent = 0, unique = 0, dups = 0, acked = 0;
  std::int64_t last = run.start_ns;
  for (auto& p : run.pubs) {
    sent += p->sent;
    acked += p->acked;
  }
  for (auto& s : run.subs) {
    unique += s->unique;
    dups += s->dups;
    last = std::max<std::int64_t>(last, s->last_ns);
  }
  std::vector<ConnPtr> conns;
  for (auto& s : run.subs) conns.push_back(s->conn);
  for (auto& p : run.pubs) conns.push_back(p->conn);
  std::size_t closed_early = down;
  close_all(conns, true);
  pool.stop();  // after this the histograms are quiescent
  Histogram hist;
  for (auto& s : run.subs) hist.merge(s->hist);
  std::uint64_t expected = sent * run.fan;
  std::uint64_t lost = expected > unique ? expected - unique : 0;
  double secs = static_cast<double>(std::max(last, stop_ns) - run.start_ns) / 1e9;
  double send_secs = static_cast<double>(stop_ns - run.start_ns) / 1e9;
  r.add("seconds", secs);
  r.add("published", sent);
  r.add("publish_per_s", static_cast<double>(sent) / send_secs);
  r.add("delivered", unique);
  r.add("msgs_per_s", static_cast<double>(unique) / secs);
  r.add_latency("e2e", hist);
  r.add("lost", lost);
  r.add("duplicated", dups);
  r.add("acked", acked);
  r.add("closed_early", static_cast<std::uint64_t>(closed_early));
  bool ok = closed_early == 0 && (run.qos == 0 || (lost == 0 && dups == 0)) && unique > 0;
  r.add("ok", ok);
  r.print();
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// revoke: N live sessions; UnRegister `--revoke` of them one at a time (credmq only).
int run_revoke(const Args& args, const Common& common) {
  if (common.creds.empty()) throw std::invalid_argument("revoke needs --creds");
  auto n = static_cast<std::size_t>(args.integer("clients", 10000));
  n = std::min(n, common.creds.size());
  auto victims = std::min<std::size_t>(n, static_cast<std::size_t>(args.integer("revoke", 200)));
  auto concurrency = static_cast<std::size_t>(args.integer("concurrency", 200));
  Pool pool(common.threads);
  AdminClient admin(admin_endpoint(args), load_admin_creds(args.str("admin-creds")));
  auto out = connect_many(pool, common, 0, n, concurrency, "", common.timeout_s);
  Result r("revoke");
  add_common(r, common);
  r.add("sessions", static_cast<std::uint64_t>(n));
  r.add("accepted", out.accepted);
  if (out.accepted != n) {
    r.add("ok", false);
    r.add("error", "not every session connected");
    close_all(out.conns, false);
    pool.stop();
    r.print();
    return 1;
  }
  sleep_ms(200);
  Histogram close_hist, api_hist;
  std::uint64_t api_errors = 0, not_closed = 0, got_disconnect = 0;
  std::set<std::size_t> victim_set;
  for (std::size_t k = 0; k < victims; ++k) {
    std::size_t i = k * n / victims;
    victim_set.insert(i);
    Conn& c = *out.conns[i];
    const Cred& cred = common.creds[(common.cred_offset + i) % common.creds.size()];
    std::int64_t t0 = now_ns();
    AdminClient::Reply reply;
    try {
      reply = admin.call("UnRegisterDeviceCredential", {{"ClientId", cred.client_id}});
    } catch (const std::exception& e) {
      reply.status = -1;
      reply.body = e.what();
    }
    std::int64_t t1 = now_ns();
    if (reply.status != 200) {
      if (api_errors++ < 3) std::cerr << "loadgen: UnRegister: " << reply.body << "\n";
      continue;
    }
    api_hist.add(t1 - t0);
    auto deadline = Clock::now() + std::chrono::seconds(2);
    while (c.state != Conn::State::closed && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (c.state != Conn::State::closed) {
      ++not_closed;
      continue;
    }
    close_hist.add(c.close_ns - t0);
    got_disconnect += c.disconnect_reason == 0x98;
  }
  sleep_ms(200);
  std::uint64_t collateral = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (!victim_set.count(i) && !out.conns[i]->open()) ++collateral;
  r.add("revoked", static_cast<std::uint64_t>(victims));
  r.add_latency("close", close_hist);
  r.add_latency("api", api_hist);
  r.add("api_errors", api_errors);
  r.add("not_closed", not_closed);
  r.add("disconnect_0x98", got_disconnect);
  r.add("others_closed", collateral);
  close_all(out.conns, false);
  pool.stop();
  bool ok = api_errors == 0 && not_closed == 0 && collateral == 0;
  r.add("ok", ok);
  r.print();
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// storm: N connected; 20% revoked (credmq: UnRegister; mosquitto: removed from the password
// file + SIGHUP); everyone reconnects at once.
int run_storm(const Args& args, const Common& common) {
  if (common.creds.empty()) throw std::invalid_argument("storm needs --creds");
  auto n = std::min(static_cast<std::size_t>(args.integer("clients", 1000)), common.creds.size());
  double fraction = args.num("revoke-fraction", 0.2);
  auto concurrency = static_cast<std::size_t>(args.integer("concurrency", 100));
  std::string mode = args.str("revoke-via", "api");  // api | passwd
  Pool pool(common.threads);
  auto out = connect_many(pool, common, 0, n, concurrency, "", common.timeout_s);
  Result r("storm");
  add_common(r, common);
  r.add("clients", static_cast<std::uint64_t>(n));
  r.add("revoke_via", mode);
  if (out.accepted != n) {
    r.add("ok", false);
    r.add("error", "not every device connected");
    close_all(out.conns, false);
    pool.stop();
    r.print();
    return 1;
  }
  std::vector<bool> revoked(n, false);
  std::size_t n_revoked = 0;
  for (std::size_t i = 0; i < n; ++i) {
    // Every 5th device for fraction 0.2.
    if (static_cast<std::size_t>(static_cast<double>(i + 1) * fraction) !=
        static_cast<std::size_t>(static_cast<double>(i) * fraction)) {
      revoked[i] = true;
      ++n_revoked;
    }
  }
  auto cred_of = [&](std::size_t i) -> const Cred& {
    return common.creds[(common.cred_offset + i) % common.creds.size()];
  };
  std::int64_t t_revoke = now_ns();
  std::uint64_t revoke_errors = 0;
  if (mode == "api") {
    AdminClient admin(admin_endpoint(args), load_admin_creds(args.str("admin-creds")));
    for (std::size_t i = 0; i < n; ++i) {
      if (!revoked[i]) continue;
      try {
        auto reply = admin.call("UnRegisterDeviceCredential", {{"ClientId", cred_of(i).client_id}});
        if (reply.status != 200) ++revoke_errors;
      } catch (const std::exception&) {
        ++revoke_errors;
      }
    }
  } else {
    // Rewrite the password file without the revoked users, then SIGHUP the broker.
    std::string path = args.str("passwd-file");
    long pid = static_cast<long>(args.integer("broker-pid", 0));
    if (path.empty() || pid <= 0)
      throw std::invalid_argument("passwd mode: --passwd-file --broker-pid");
    std::set<std::string> gone;
    for (std::size_t i = 0; i < n; ++i)
      if (revoked[i]) gone.insert(cred_of(i).username);
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      if (!gone.count(line.substr(0, line.find(':')))) kept += line + "\n";
    }
    in.close();
    std::string tmp = path + ".tmp";
    std::ofstream(tmp) << kept;
    std::rename(tmp.c_str(), path.c_str());
    if (kill(static_cast<pid_t>(pid), SIGHUP) != 0) ++revoke_errors;
  }
  double revoke_secs = static_cast<double>(now_ns() - t_revoke) / 1e9;
  // How many revoked sessions the broker closed by itself within 2 s.
  auto deadline = Clock::now() + std::chrono::seconds(2);
  auto count_closed = [&] {
    std::size_t closed = 0;
    for (std::size_t i = 0; i < n; ++i) closed += revoked[i] && !out.conns[i]->open();
    return closed;
  };
  while (count_closed() < n_revoked && Clock::now() < deadline) sleep_ms(5);
  std::size_t closed_by_broker = count_closed();
  std::size_t others_closed = 0;
  for (std::size_t i = 0; i < n; ++i) others_closed += !revoked[i] && !out.conns[i]->open();
  close_all(out.conns, false);
  out.conns.clear();

  // Everyone reconnects at once.
  auto storm = connect_many(pool, common, 0, n, n, "", common.timeout_s);
  std::uint64_t ok_accepted = 0, ok_refused = 0, wrong = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto& c = storm.conns[i];
    bool accepted = c && c->connack_code == 0;
    bool refused = c && !accepted && c->state == Conn::State::closed;
    if (revoked[i]) {
      ok_refused += refused;
      wrong += accepted;
    } else {
      ok_accepted += accepted;
    }
  }
  std::vector<std::int64_t> finish;
  std::int64_t first = INT64_MAX, last = 0;
  for (auto& c : storm.conns) {
    if (!c) continue;
    first = std::min<std::int64_t>(first, c->start_ns);
    std::int64_t end = c->connack_code == 0 ? c->connack_ns.load() : c->close_ns.load();
    last = std::max(last, end);
  }
  r.add("revoked", static_cast<std::uint64_t>(n_revoked));
  r.add("revoke_seconds", revoke_secs);
  r.add("revoke_errors", revoke_errors);
  r.add("revoked_closed_by_broker", static_cast<std::uint64_t>(closed_by_broker));
  r.add("others_closed", static_cast<std::uint64_t>(others_closed));
  r.add("storm_seconds", last > first ? static_cast<double>(last - first) / 1e9 : 0.0);
  r.add_latency("connack", storm.hist);
  r.add("reconnected", ok_accepted);
  r.add("refused_revoked", ok_refused);
  r.add("accepted_revoked", wrong);
  r.add("hanging", storm.hanging);
  close_all(storm.conns, true);
  pool.stop();
  bool ok = ok_accepted == n - n_revoked && ok_refused == n_revoked && wrong == 0 &&
            storm.hanging == 0 && revoke_errors == 0;
  r.add("ok", ok);
  r.print();
  return ok ? 0 : 1;
}

const char* kHelp = R"(credmq_loadgen --scenario SCENARIO [options]   (loopback brokers only)

Common:    --host 127.0.0.1 --port 1883 --mqtt 4|5 --threads 2 --broker NAME
           --creds FILE (lines "client_id username password"; default: anonymous)
           --cred-offset K --timeout SECONDS (every wait's deadline, default 60)
connect:   --clients N --concurrency C
idle:      --clients N --concurrency C --broker-pid PID --hold SECONDS (after each half;
           RSS growth per connection overall and over the second half alone)
pairs:     --pairs P        fanout: --subscribers S        fanin: --publishers P
           --qos 0|1|2 --duration S | --messages M (per publisher) --payload BYTES (>= 24)
           --inflight W (default 16; unacked QoS 1/2 and end-to-end window per publisher)
           --rate R (total offered publishes/s; default: as fast as the window allows)
revoke:    --clients N --revoke 200 --admin HOST:PORT --admin-creds admin-credentials.json
storm:     --clients N --revoke-fraction 0.2 --revoke-via api|passwd
           api: --admin --admin-creds     passwd: --passwd-file FILE --broker-pid PID
register:  --admin --admin-creds --count N --prefix GID_bench@@@dev- --out FILE --http-conns 4
)";

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args(argc, argv);
    if (args.has("help") || !args.has("scenario")) {
      std::cout << kHelp;
      return args.has("help") ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    std::string scenario = args.str("scenario");
    if (scenario == "register") return run_register(args);
    Common common;
    common.endpoint = loopback_endpoint(args.str("host", "127.0.0.1"), args.integer("port", 1883));
    std::string version = args.str("mqtt", "4");
    common.version = (version == "5" || version == "5.0") ? mqtt::ProtocolVersion::v5
                                                          : mqtt::ProtocolVersion::v3_1_1;
    common.threads = static_cast<int>(args.integer("threads", 2));
    common.broker = args.str("broker", "unknown");
    common.timeout_s = args.num("timeout", 60);
    common.cred_offset = static_cast<std::size_t>(args.integer("cred-offset", 0));
    if (args.has("creds")) common.creds = load_creds(args.str("creds"));
    if (scenario == "connect") return run_connect(args, common);
    if (scenario == "idle") return run_idle(args, common);
    if (scenario == "pairs" || scenario == "fanout" || scenario == "fanin")
      return run_messages(args, common, scenario);
    if (scenario == "revoke") return run_revoke(args, common);
    if (scenario == "storm") return run_storm(args, common);
    std::cerr << "unknown --scenario " << scenario << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "loadgen: " << e.what() << "\n";
    return 2;
  }
}
