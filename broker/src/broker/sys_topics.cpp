// $SYS/broker/... topics, named as Mosquitto names them, so dashboards and scripts written for
// Mosquitto read credmq too. Each instance is its own namespace, so each gets its own figures.
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "core.hpp"

namespace credmq::broker::detail {

namespace {

struct SysValue {
  const char* topic;
  std::string value;
};

std::vector<SysValue> sys_values(Instance& instance, std::chrono::seconds uptime) {
  std::size_t sessions = 0;
  std::size_t subscriptions = 0;
  {
    std::shared_lock lock(instance.mutex);
    sessions = instance.sessions.size();
    for (const auto& [id, session] : instance.sessions)
      subscriptions += session->subscriptions.size();
  }
  std::size_t retained = 0;
  {
    std::lock_guard lock(instance.retained_mutex);
    retained = instance.retained.size();
  }
  auto load = [](const auto& counter) {
    return std::to_string(counter.load(std::memory_order_relaxed));
  };
  const auto connected = instance.clients_connected.load(std::memory_order_relaxed);
  // Sessions outlive connections, and a connection is counted from its CONNACK: the two can
  // disagree for a moment, so never report a negative disconnected count.
  const auto disconnected = sessions > connected ? sessions - connected : 0;
  return {
      {"$SYS/broker/version", "credmq version " CREDMQ_VERSION},
      {"$SYS/broker/uptime", std::to_string(uptime.count()) + " seconds"},
      {"$SYS/broker/clients/connected", std::to_string(connected)},
      {"$SYS/broker/clients/disconnected", std::to_string(disconnected)},
      {"$SYS/broker/clients/total", std::to_string(sessions)},
      {"$SYS/broker/clients/maximum", load(instance.clients_maximum)},
      {"$SYS/broker/messages/received", load(instance.packets_received)},
      {"$SYS/broker/messages/sent", load(instance.packets_sent)},
      {"$SYS/broker/publish/messages/received", load(instance.publishes_received)},
      {"$SYS/broker/publish/messages/sent", load(instance.publishes_sent)},
      {"$SYS/broker/bytes/received", load(instance.bytes_received)},
      {"$SYS/broker/bytes/sent", load(instance.bytes_sent)},
      {"$SYS/broker/subscriptions/count", std::to_string(subscriptions)},
      {"$SYS/broker/retained messages/count", std::to_string(retained)},
  };
}

}  // namespace

void Core::publish_sys_topics(std::chrono::seconds uptime) {
  for (Instance* instance : instances()) {
    for (auto& [topic, value] : sys_values(*instance, uptime)) {
      auto [it, inserted] = instance->sys_published.try_emplace(topic);
      if (!inserted && it->second == value) continue;
      it->second = value;
      auto message = make_message(topic, std::move(value), 0, true, mqtt::Properties{});
      retain(*instance, message);
      route(*instance, message, nullptr);
    }
  }
}

}  // namespace credmq::broker::detail
