#include "broker_state_tables.hpp"

#include <charconv>
#include <map>
#include <unordered_map>

#include "credmq/storage/store.hpp"

namespace credmq::storage {
namespace {

// "1,5,9"; "" for none.
std::string join_ids(const std::vector<std::uint32_t>& ids) {
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  return out;
}

std::vector<std::uint32_t> split_ids(std::string_view text) {
  std::vector<std::uint32_t> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto part = text.substr(0, comma);
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec == std::errc() && end == part.data() + part.size() && value != 0) out.push_back(value);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::int64_t checked_index(std::size_t index, std::size_t count) {
  if (index >= count) throw InvalidArgument("broker state refers to a message it does not hold");
  return static_cast<std::int64_t>(index);
}

void delete_instance(Connection& connection, const std::string& instance_id) {
  connection.prepare("DELETE FROM broker_incoming_qos2 WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
  connection.prepare("DELETE FROM broker_inflight WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
  connection.prepare("DELETE FROM broker_queue WHERE instance_id = ?1").bind(1, instance_id).run();
  connection.prepare("DELETE FROM broker_subscriptions WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
  connection.prepare("DELETE FROM broker_sessions WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
  connection.prepare("DELETE FROM broker_retained WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
  connection.prepare("DELETE FROM broker_messages WHERE instance_id = ?1")
      .bind(1, instance_id)
      .run();
}

void insert_session(Connection& connection, const std::string& instance_id,
                    const StoredSession& session, std::size_t message_count) {
  {
    Statement insert = connection.prepare(
        "INSERT INTO broker_sessions(instance_id, client_id, expiry_interval, offline_since_ms, "
        "credential_serial, next_packet_id, will_topic, will_payload, will_qos, will_retain, "
        "will_properties, will_due_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    insert.bind(1, instance_id)
        .bind(2, session.client_id)
        .bind(3, session.expiry_interval)
        .bind(4, session.offline_since_ms)
        .bind(5, session.credential_serial)
        .bind(6, std::int64_t{session.next_packet_id});
    if (const auto& will = session.will) {
      insert.bind(7, will->topic)
          .bind_blob(8, will->payload)
          .bind(9, std::int64_t{will->qos})
          .bind(10, std::int64_t{will->retain})
          .bind_blob(11, will->properties)
          .bind(12, will->due_ms);
    } else {
      for (int column = 7; column <= 12; ++column) insert.bind_null(column);
    }
    insert.run();
  }
  for (const auto& subscription : session.subscriptions) {
    connection
        .prepare(
            "INSERT INTO broker_subscriptions(instance_id, client_id, filter, qos, no_local, "
            "retain_as_published, retain_handling, identifier) "
            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        .bind(1, instance_id)
        .bind(2, session.client_id)
        .bind(3, subscription.filter)
        .bind(4, std::int64_t{subscription.qos})
        .bind(5, std::int64_t{subscription.no_local})
        .bind(6, std::int64_t{subscription.retain_as_published})
        .bind(7, std::int64_t{subscription.retain_handling})
        .bind(8, subscription.identifier)
        .run();
  }
  std::int64_t position = 0;
  for (const auto& delivery : session.queue) {
    connection
        .prepare(
            "INSERT INTO broker_queue(instance_id, client_id, position, message_id, qos, retain, "
            "subscription_ids, shared_filter) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        .bind(1, instance_id)
        .bind(2, session.client_id)
        .bind(3, position++)
        .bind(4, checked_index(delivery.message, message_count))
        .bind(5, std::int64_t{delivery.qos})
        .bind(6, std::int64_t{delivery.retain})
        .bind(7, join_ids(delivery.subscription_ids))
        .bind(8, delivery.shared_filter)
        .run();
  }
  for (const auto& inflight : session.inflight) {
    std::optional<std::int64_t> message;
    if (inflight.message) message = checked_index(*inflight.message, message_count);
    connection
        .prepare(
            "INSERT INTO broker_inflight(instance_id, client_id, packet_id, message_id, qos, "
            "retain, released, subscription_ids, shared_filter) "
            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
        .bind(1, instance_id)
        .bind(2, session.client_id)
        .bind(3, std::int64_t{inflight.packet_id})
        .bind(4, message)
        .bind(5, std::int64_t{inflight.qos})
        .bind(6, std::int64_t{inflight.retain})
        .bind(7, std::int64_t{inflight.released})
        .bind(8, join_ids(inflight.subscription_ids))
        .bind(9, inflight.shared_filter)
        .run();
  }
  for (int packet_id : session.incoming_qos2) {
    connection
        .prepare(
            "INSERT INTO broker_incoming_qos2(instance_id, client_id, packet_id) "
            "VALUES(?1, ?2, ?3)")
        .bind(1, instance_id)
        .bind(2, session.client_id)
        .bind(3, std::int64_t{packet_id})
        .run();
  }
}

// Rows of one instance as read back: message ids map to indexes into `state.messages`.
struct InstanceReader {
  StoredInstanceState state;
  std::unordered_map<std::int64_t, std::size_t> message_index;
  std::map<std::string, std::size_t, std::less<>> session_index;

  std::optional<std::size_t> message(std::int64_t id) const {
    auto it = message_index.find(id);
    if (it == message_index.end()) return std::nullopt;
    return it->second;
  }
  StoredSession* session(const std::string& client_id) {
    auto it = session_index.find(client_id);
    return it == session_index.end() ? nullptr : &state.sessions[it->second];
  }
};

}  // namespace

std::vector<StoredInstanceState> read_broker_state(Connection& connection) {
  std::map<std::string, InstanceReader, std::less<>> instances;
  auto reader_for = [&](const std::string& id) -> InstanceReader& {
    auto& reader = instances[id];
    reader.state.instance_id = id;
    return reader;
  };
  {
    Statement select = connection.prepare(
        "SELECT instance_id, message_id, topic, payload, qos, retain, properties, expires_at_ms "
        "FROM broker_messages ORDER BY instance_id, message_id");
    while (select.step()) {
      auto& reader = reader_for(select.text(0));
      StoredMessage message;
      message.topic = select.text(2);
      message.payload = select.blob(3);
      message.qos = static_cast<int>(select.integer(4));
      message.retain = select.integer(5) != 0;
      message.properties = select.blob(6);
      if (!select.is_null(7)) message.expires_at_ms = select.integer(7);
      reader.message_index.emplace(select.integer(1), reader.state.messages.size());
      reader.state.messages.push_back(std::move(message));
    }
  }
  {
    Statement select = connection.prepare(
        "SELECT instance_id, message_id FROM broker_retained ORDER BY instance_id, message_id");
    while (select.step()) {
      auto& reader = reader_for(select.text(0));
      if (auto index = reader.message(select.integer(1))) reader.state.retained.push_back(*index);
    }
  }
  {
    Statement select = connection.prepare(
        "SELECT instance_id, client_id, expiry_interval, offline_since_ms, credential_serial, "
        "next_packet_id, will_topic, will_payload, will_qos, will_retain, will_properties, "
        "will_due_ms FROM broker_sessions ORDER BY instance_id, client_id");
    while (select.step()) {
      auto& reader = reader_for(select.text(0));
      StoredSession session;
      session.client_id = select.text(1);
      session.expiry_interval = select.integer(2);
      session.offline_since_ms = select.integer(3);
      session.credential_serial = select.integer(4);
      session.next_packet_id = static_cast<int>(select.integer(5));
      if (!select.is_null(6)) {
        session.will =
            StoredWill{select.text(6),         select.blob(7),  static_cast<int>(select.integer(8)),
                       select.integer(9) != 0, select.blob(10), select.integer(11)};
      }
      reader.session_index.emplace(session.client_id, reader.state.sessions.size());
      reader.state.sessions.push_back(std::move(session));
    }
  }
  // Rows of sessions that do not exist are skipped (they cannot be written that way).
  {
    Statement select = connection.prepare(
        "SELECT instance_id, client_id, filter, qos, no_local, retain_as_published, "
        "retain_handling, identifier FROM broker_subscriptions "
        "ORDER BY instance_id, client_id, filter");
    while (select.step()) {
      auto* session = reader_for(select.text(0)).session(select.text(1));
      if (!session) continue;
      session->subscriptions.push_back({select.text(2), static_cast<int>(select.integer(3)),
                                        select.integer(4) != 0, select.integer(5) != 0,
                                        static_cast<int>(select.integer(6)), select.integer(7)});
    }
  }
  {
    Statement select = connection.prepare(
        "SELECT instance_id, client_id, message_id, qos, retain, subscription_ids, shared_filter "
        "FROM broker_queue ORDER BY instance_id, client_id, position");
    while (select.step()) {
      auto& reader = reader_for(select.text(0));
      auto* session = reader.session(select.text(1));
      auto message = reader.message(select.integer(2));
      if (!session || !message) continue;
      session->queue.push_back({*message, static_cast<int>(select.integer(3)),
                                select.integer(4) != 0, split_ids(select.text(5)), select.text(6)});
    }
  }
  {
    Statement select = connection.prepare(
        "SELECT instance_id, client_id, packet_id, message_id, qos, retain, released, "
        "subscription_ids, shared_filter FROM broker_inflight "
        "ORDER BY instance_id, client_id, packet_id");
    while (select.step()) {
      auto& reader = reader_for(select.text(0));
      auto* session = reader.session(select.text(1));
      if (!session) continue;
      StoredInflight inflight;
      inflight.packet_id = static_cast<int>(select.integer(2));
      if (!select.is_null(3)) {
        inflight.message = reader.message(select.integer(3));
        if (!inflight.message) continue;
      }
      inflight.qos = static_cast<int>(select.integer(4));
      inflight.retain = select.integer(5) != 0;
      inflight.released = select.integer(6) != 0;
      inflight.subscription_ids = split_ids(select.text(7));
      inflight.shared_filter = select.text(8);
      session->inflight.push_back(std::move(inflight));
    }
  }
  {
    Statement select = connection.prepare(
        "SELECT instance_id, client_id, packet_id FROM broker_incoming_qos2 "
        "ORDER BY instance_id, client_id, packet_id");
    while (select.step()) {
      auto* session = reader_for(select.text(0)).session(select.text(1));
      if (session) session->incoming_qos2.push_back(static_cast<int>(select.integer(2)));
    }
  }
  std::vector<StoredInstanceState> out;
  out.reserve(instances.size());
  for (auto& [id, reader] : instances) out.push_back(std::move(reader.state));
  return out;
}

void replace_broker_state(Connection& connection,
                          const std::vector<StoredInstanceState>& instances) {
  for (const auto& instance : instances) {
    const std::string& id = instance.instance_id;
    delete_instance(connection, id);
    const std::size_t message_count = instance.messages.size();
    std::int64_t message_id = 0;
    for (const auto& message : instance.messages) {
      connection
          .prepare(
              "INSERT INTO broker_messages(instance_id, message_id, topic, payload, qos, retain, "
              "properties, expires_at_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
          .bind(1, id)
          .bind(2, message_id++)
          .bind(3, message.topic)
          .bind_blob(4, message.payload)
          .bind(5, std::int64_t{message.qos})
          .bind(6, std::int64_t{message.retain})
          .bind_blob(7, message.properties)
          .bind(8, message.expires_at_ms)
          .run();
    }
    for (auto index : instance.retained) {
      connection
          .prepare("INSERT OR IGNORE INTO broker_retained(instance_id, message_id) VALUES(?1, ?2)")
          .bind(1, id)
          .bind(2, checked_index(index, message_count))
          .run();
    }
    for (const auto& session : instance.sessions) {
      insert_session(connection, id, session, message_count);
    }
  }
}

void delete_all_broker_state(Connection& connection) {
  connection.exec(
      "DELETE FROM broker_incoming_qos2; DELETE FROM broker_inflight; DELETE FROM broker_queue; "
      "DELETE FROM broker_subscriptions; DELETE FROM broker_sessions; "
      "DELETE FROM broker_retained; DELETE FROM broker_messages;");
}

}  // namespace credmq::storage
