// Micro-benchmarks of per-message and per-CONNECT work: PUBLISH decode/encode, topic
// matching, device password HMAC, revocation hub bind/revoke.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

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
