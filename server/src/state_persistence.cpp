#include "state_persistence.hpp"

#include "credmq/common/log.hpp"
#include "credmq/mqtt/codec.hpp"

namespace credmq {
namespace {

using broker::WallClock;

std::int64_t to_ms(WallClock::time_point at) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

WallClock::time_point from_ms(std::int64_t ms) {
  return WallClock::time_point(
      std::chrono::duration_cast<WallClock::duration>(std::chrono::milliseconds(ms)));
}

std::string encode(const mqtt::Properties& properties) {
  std::string out;
  if (!properties.empty()) mqtt::encode_properties(properties, out);
  return out;
}

// A block that does not decode (never written that way) loses its properties, not the
// message: the rest of the state is still worth restoring.
mqtt::Properties decode(const std::string& block) {
  mqtt::Properties properties;
  if (block.empty()) return properties;
  if (auto ec = mqtt::decode_properties(
          std::span(reinterpret_cast<const std::uint8_t*>(block.data()), block.size()),
          properties)) {
    log::warn("persistence: unreadable saved properties (", ec.message(), "); dropped");
    return {};
  }
  return properties;
}

std::uint8_t small(int value, int max) {
  return static_cast<std::uint8_t>(value < 0 ? 0 : value > max ? max : value);
}

}  // namespace

std::vector<storage::StoredInstanceState> StorePersistence::to_rows(
    const std::vector<broker::PersistedInstance>& instances) {
  std::vector<storage::StoredInstanceState> rows;
  rows.reserve(instances.size());
  for (const auto& instance : instances) {
    auto& row = rows.emplace_back();
    row.instance_id = instance.id;
    row.retained = instance.retained;
    for (const auto& message : instance.messages) {
      std::optional<std::int64_t> expires;
      if (message.expires_at) expires = to_ms(*message.expires_at);
      row.messages.push_back({message.topic, message.payload, message.qos, message.retain,
                              encode(message.properties), expires});
    }
    for (const auto& session : instance.sessions) {
      auto& stored = row.sessions.emplace_back();
      stored.client_id = session.client_id;
      stored.expiry_interval = session.expiry_interval;
      stored.offline_since_ms = to_ms(session.offline_since);
      stored.credential_serial = session.credential_serial;
      for (const auto& subscription : session.subscriptions) {
        const auto& options = subscription.options;
        stored.subscriptions.push_back({subscription.filter, options.qos, options.no_local,
                                        options.retain_as_published, options.retain_handling,
                                        subscription.identifier});
      }
      for (const auto& delivery : session.queue) {
        stored.queue.push_back({delivery.message, delivery.qos, delivery.retain,
                                delivery.subscription_ids, delivery.shared_filter});
      }
      for (const auto& inflight : session.inflight) {
        stored.inflight.push_back({inflight.packet_id, inflight.message, inflight.qos,
                                   inflight.retain, inflight.released, inflight.subscription_ids,
                                   inflight.shared_filter});
      }
      stored.incoming_qos2.assign(session.incoming_qos2.begin(), session.incoming_qos2.end());
      stored.next_packet_id = session.next_packet_id;
      if (const auto& will = session.will) {
        stored.will = storage::StoredWill{will->will.topic,
                                          will->will.payload,
                                          will->will.qos,
                                          will->will.retain,
                                          encode(will->will.properties),
                                          to_ms(will->due)};
      }
    }
  }
  return rows;
}

std::vector<broker::PersistedInstance> StorePersistence::from_rows(
    std::vector<storage::StoredInstanceState> rows) {
  std::vector<broker::PersistedInstance> instances;
  instances.reserve(rows.size());
  for (auto& row : rows) {
    auto& instance = instances.emplace_back();
    instance.id = std::move(row.instance_id);
    instance.retained = std::move(row.retained);
    for (auto& message : row.messages) {
      broker::PersistedMessage saved;
      saved.topic = std::move(message.topic);
      saved.payload = std::move(message.payload);
      saved.qos = small(message.qos, 2);
      saved.retain = message.retain;
      saved.properties = decode(message.properties);
      if (message.expires_at_ms) saved.expires_at = from_ms(*message.expires_at_ms);
      instance.messages.push_back(std::move(saved));
    }
    for (auto& stored : row.sessions) {
      auto& session = instance.sessions.emplace_back();
      session.client_id = std::move(stored.client_id);
      session.expiry_interval = static_cast<std::uint32_t>(stored.expiry_interval);
      session.offline_since = from_ms(stored.offline_since_ms);
      session.credential_serial = stored.credential_serial;
      for (auto& subscription : stored.subscriptions) {
        mqtt::SubscribeOptions options{small(subscription.qos, 2), subscription.no_local,
                                       subscription.retain_as_published,
                                       small(subscription.retain_handling, 2)};
        session.subscriptions.push_back({std::move(subscription.filter), options,
                                         static_cast<std::uint32_t>(subscription.identifier)});
      }
      for (auto& delivery : stored.queue) {
        session.queue.push_back({delivery.message, small(delivery.qos, 2), delivery.retain,
                                 std::move(delivery.subscription_ids),
                                 std::move(delivery.shared_filter)});
      }
      for (auto& inflight : stored.inflight) {
        session.inflight.push_back({static_cast<std::uint16_t>(inflight.packet_id),
                                    inflight.message, small(inflight.qos, 2), inflight.retain,
                                    inflight.released, std::move(inflight.subscription_ids),
                                    std::move(inflight.shared_filter)});
      }
      for (int packet_id : stored.incoming_qos2) {
        session.incoming_qos2.push_back(static_cast<std::uint16_t>(packet_id));
      }
      session.next_packet_id = static_cast<std::uint16_t>(stored.next_packet_id);
      if (auto& will = stored.will) {
        broker::PersistedWill saved;
        saved.will.topic = std::move(will->topic);
        saved.will.payload = std::move(will->payload);
        saved.will.qos = small(will->qos, 2);
        saved.will.retain = will->retain;
        saved.will.properties = decode(will->properties);
        saved.due = from_ms(will->due_ms);
        session.will = std::move(saved);
      }
    }
  }
  return instances;
}

std::vector<broker::PersistedInstance> StorePersistence::load() {
  return from_rows(store_.load_broker_state());
}

void StorePersistence::save(const std::vector<broker::PersistedInstance>& instances) {
  store_.save_broker_state(to_rows(instances));
}

}  // namespace credmq
