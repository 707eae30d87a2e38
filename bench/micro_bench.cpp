// Micro-benchmarks of per-message and per-CONNECT work: PUBLISH decode/encode, topic
// matching, routing into session queues, device password HMAC, revocation hub bind/revoke.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/common/crypto.hpp"
#include "credmq/mqtt/codec.hpp"

namespace {
namespace mqtt = credmq::mqtt;

std::string encoded_publish(mqtt::ProtocolVersion version, std::size_t payload_size) {
  mqtt::Publish publish;
  publish.qos = 1;
  publish.packet_id = 7;
  publish.topic = "fleet/GID_demo/sensor-0001/telemetry";
  publish.payload.assign(payload_size, 'x');
  std::string bytes;
  mqtt::encode(publish, version, bytes);
  return bytes;
}

void BM_DecodePublish(benchmark::State& state) {
  const auto version = state.range(1) ? mqtt::ProtocolVersion::v5 : mqtt::ProtocolVersion::v3_1_1;
  const std::string bytes = encoded_publish(version, static_cast<std::size_t>(state.range(0)));
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  mqtt::Packet packet;
  for (auto _ : state) {
    auto ec = mqtt::decode({data, bytes.size()}, version, packet);
    benchmark::DoNotOptimize(ec);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_DecodePublish)->Args({64, 0})->Args({64, 1})->Args({4096, 1});

void BM_EncodePublishHeader(benchmark::State& state) {
  std::string out;
  out.reserve(128);
  mqtt::Properties properties;
  for (auto _ : state) {
    out.clear();
    mqtt::encode_publish_header(out, mqtt::ProtocolVersion::v5, 1, false, false,
                                "fleet/GID_demo/sensor-0001/telemetry", 7, properties, 64);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EncodePublishHeader);

void BM_TopicMatches(benchmark::State& state) {
  const std::vector<std::string> filters{"fleet/+/+/telemetry", "fleet/#", "fleet/GID_x/+/cmd",
                                         "+/+/+/+", "$SYS/#"};
  for (auto _ : state) {
    int matched = 0;
    for (const auto& filter : filters) {
      matched += mqtt::topic_matches(filter, "fleet/GID_demo/sensor-0001/telemetry");
    }
    benchmark::DoNotOptimize(matched);
  }
}
BENCHMARK(BM_TopicMatches);

// Core::route into the queues of `subscribers` online sessions subscribed to the topic, then
// each session's queue drained as Connection::pump() does (front, pop_front). The sessions'
// owner is a stand-in pointer: no connection is woken.
class NullAuthenticator : public credmq::auth::Authenticator {
 public:
  void authenticate(credmq::auth::ConnectRequest,
                    std::function<void(credmq::auth::AuthResult)> done) override {
    done({});
  }
};

void BM_RouteAndDrain(benchmark::State& state) {
  namespace detail = credmq::broker::detail;
  NullAuthenticator authenticator;
  credmq::auth::RevocationHub hub;
  detail::Core core({}, authenticator, hub);
  detail::Instance& instance = core.instance("bench");
  static const std::atomic<bool> not_revoked{false};
  const auto batch = static_cast<std::size_t>(state.range(1));
  std::vector<std::shared_ptr<detail::Session>> sessions;
  for (std::int64_t i = 0; i < state.range(0); ++i) {
    auto session = std::make_shared<detail::Session>("sub-" + std::to_string(i), instance);
    session->owner = reinterpret_cast<detail::Connection*>(session.get());
    session->owner_revoked = &not_revoked;
    session->wake_pending = true;  // as if a drain were posted already: no wake-up
    instance.subscriptions.insert("fleet/+/telemetry", session.get(), {{1, false, false, 0}, 0});
    sessions.push_back(std::move(session));
  }
  auto message =
      detail::make_message("fleet/sensor-0001/telemetry", std::string(64, 'x'), 1, false, {});
  for (auto _ : state) {
    for (std::size_t k = 0; k < batch; ++k) core.route(instance, message, nullptr);
    for (auto& session : sessions) {
      std::lock_guard lock(session->mutex);
      while (!session->queue.empty()) {
        benchmark::DoNotOptimize(session->queue.front().message.get());
        session->queue.pop_front();
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch) * state.range(0));
}
// {subscribers, messages routed before the queues are drained}
BENCHMARK(BM_RouteAndDrain)
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({1, 16})
    ->Args({8, 16})
    ->Args({1, 256});

void BM_DevicePasswordHmac(benchmark::State& state) {
  const std::string secret = "DC." + credmq::crypto::base64url_encode(std::string(32, 'k'));
  for (auto _ : state) {
    auto password = credmq::crypto::hmac_sha1_base64(secret, "GID_demo@@@sensor-0001");
    benchmark::DoNotOptimize(password.data());
  }
}
BENCHMARK(BM_DevicePasswordHmac);

struct NullSession : credmq::auth::RevocableSession {
  void revoke() override {}
};

void BM_HubBindRevoke(benchmark::State& state) {
  credmq::auth::RevocationHub hub;
  auto session = std::make_shared<NullSession>();
  std::int64_t serial = 1;
  for (auto _ : state) {
    auto epoch = hub.epoch();
    hub.bind(serial, epoch, session);
    hub.revoke(serial);
    ++serial;
  }
}
BENCHMARK(BM_HubBindRevoke);

}  // namespace

BENCHMARK_MAIN();
