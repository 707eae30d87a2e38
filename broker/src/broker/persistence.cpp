// Core::snapshot / Core::restore: broker state to and from the plain values of
// credmq/broker/persistence.hpp. Times are saved as wall-clock so that they mean the same
// after a restart (steady_clock restarts with the machine).
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core.hpp"
#include "credmq/common/log.hpp"

namespace credmq::broker::detail {
namespace {

using Steady = std::chrono::steady_clock;

// Converts between the two clocks through one pair of readings, so a whole snapshot (or a
// whole restore) uses the same offset.
struct ClockPair {
  Steady::time_point steady = Steady::now();
  WallClock::time_point wall = WallClock::now();

  WallClock::time_point to_wall(Steady::time_point at) const {
    return wall + std::chrono::duration_cast<WallClock::duration>(at - steady);
  }
  Steady::time_point to_steady(WallClock::time_point at) const {
    return steady + std::chrono::duration_cast<Steady::duration>(at - wall);
  }
};

std::vector<std::uint32_t> ids_of(const SubscriptionIds& ids) {
  std::vector<std::uint32_t> out;
  if (ids.empty()) return out;
  out.push_back(ids.first);
  out.insert(out.end(), ids.more.begin(), ids.more.end());
  return out;
}

SubscriptionIds ids_from(const std::vector<std::uint32_t>& ids) {
  SubscriptionIds out;
  for (auto id : ids) out.add(id);
  return out;
}

// A session's state taken under the locks: shared pointers and small values only.
struct CapturedSession {
  std::string client_id;
  std::uint32_t expiry_interval = 0;
  bool online = false;
  Steady::time_point offline_since;
  std::int64_t credential_serial = 0;
  std::vector<std::pair<std::string, Subscription>> subscriptions;
  std::vector<Delivery> queue;
  std::vector<std::pair<std::uint16_t, InflightMessage>> inflight;
  std::vector<std::uint16_t> incoming_qos2;
  std::uint16_t next_packet_id = 1;
  std::optional<mqtt::Will> will;
  Steady::time_point will_due;
};

// Deduplicates messages of one instance by identity.
class MessageTable {
 public:
  MessageTable(std::vector<PersistedMessage>& out, const ClockPair& clocks)
      : out_(out), clocks_(clocks) {}

  std::size_t index_of(const MessagePtr& message) {
    auto [it, inserted] = index_.try_emplace(message.get(), out_.size());
    if (inserted) {
      PersistedMessage saved;
      saved.topic = message->topic;
      saved.payload = message->payload;
      saved.qos = message->qos;
      saved.retain = message->retain;
      saved.properties = message->properties;
      if (message->expires_at != Steady::time_point::max()) {
        saved.expires_at = clocks_.to_wall(message->expires_at);
      }
      out_.push_back(std::move(saved));
    }
    return it->second;
  }

 private:
  std::vector<PersistedMessage>& out_;
  const ClockPair& clocks_;
  std::unordered_map<const Message*, std::size_t> index_;
};

}  // namespace

std::vector<PersistedInstance> Core::snapshot() {
  std::vector<Instance*> all;
  {
    std::lock_guard lock(instances_mutex_);
    for (auto& [id, instance] : instances_) all.push_back(instance.get());
  }
  std::vector<PersistedInstance> out;
  for (Instance* instance : all) {
    // Cleared before reading: a change from here on marks it again for the next save.
    const bool dirty = instance->dirty.exchange(false, std::memory_order_acq_rel);
    if (!dirty) continue;
    const ClockPair clocks;
    std::vector<CapturedSession> captured;
    std::vector<MessagePtr> retained;
    std::vector<std::shared_ptr<Session>> sessions;
    {
      std::shared_lock lock(instance->mutex);
      sessions.reserve(instance->sessions.size());
      for (const auto& [client_id, session] : instance->sessions) sessions.push_back(session);
    }
    captured.reserve(sessions.size());
    // One session per lock: a CONNECT or SUBSCRIBE (exclusive) waits for one session's copy
    // at most. A session discarded meanwhile is skipped; one created meanwhile has marked
    // the instance for the next save.
    for (const auto& session : sessions) {
      std::shared_lock lock(instance->mutex);
      if (session->expiry_interval == 0) continue;  // ends with its connection
      CapturedSession copy;
      copy.client_id = session->client_id;
      copy.expiry_interval = session->expiry_interval;
      copy.credential_serial = session->credential_serial;
      copy.offline_since = session->offline_since;
      for (const auto& [filter, subscription] : session->subscriptions) {
        copy.subscriptions.emplace_back(filter, subscription);
      }
      if (session->delayed_will && !session->delayed_will->raised()) {
        copy.will = session->delayed_will->will;
        copy.will_due = session->delayed_will->due;
      }
      {
        std::lock_guard session_lock(session->mutex);
        if (session->discarded) continue;
        copy.online = session->owner != nullptr;
        // Revoked, live or offline: its state is going away, never to be restored.
        if (copy.online ? session->owner_revoked->load(std::memory_order_acquire)
                        : session->offline_credential && session->offline_credential->raised()) {
          continue;
        }
        for (const auto& delivery : session->queue) {
          if (delivery.qos > 0) copy.queue.push_back(delivery);  // offline keeps QoS 1/2 only
        }
        copy.inflight.assign(session->inflight.begin(), session->inflight.end());
        copy.incoming_qos2.assign(session->incoming_qos2.begin(), session->incoming_qos2.end());
        copy.next_packet_id = session->next_packet_id;
      }
      captured.push_back(std::move(copy));
    }
    {
      std::lock_guard lock(instance->retained_mutex);
      retained.reserve(instance->retained.size());
      for (const auto& [topic, message] : instance->retained) {
        // $SYS values are republished by the running broker, not restored.
        if (!message->expired(clocks.steady) && !is_sys_topic(topic)) retained.push_back(message);
      }
    }

    // Outside the locks: the deep copies.
    PersistedInstance& saved = out.emplace_back();
    saved.id = instance->id;
    MessageTable messages(saved.messages, clocks);
    for (const auto& message : retained) saved.retained.push_back(messages.index_of(message));
    // Sorted so that equal states give equal snapshots (the session table is unordered).
    std::sort(captured.begin(), captured.end(),
              [](const auto& a, const auto& b) { return a.client_id < b.client_id; });
    saved.sessions.reserve(captured.size());
    for (auto& copy : captured) {
      PersistedSession& session = saved.sessions.emplace_back();
      session.client_id = std::move(copy.client_id);
      session.expiry_interval = copy.expiry_interval;
      session.offline_since = copy.online ? clocks.wall : clocks.to_wall(copy.offline_since);
      session.credential_serial = copy.credential_serial;
      for (auto& [filter, subscription] : copy.subscriptions) {
        session.subscriptions.push_back(
            {std::move(filter), subscription.options, subscription.identifier});
      }
      for (const auto& delivery : copy.queue) {
        session.queue.push_back({messages.index_of(delivery.message), delivery.qos, delivery.retain,
                                 ids_of(delivery.subscription_ids),
                                 delivery.shared_group ? delivery.shared_group->filter : ""});
      }
      for (const auto& [packet_id, inflight] : copy.inflight) {
        PersistedInflight& entry = session.inflight.emplace_back();
        entry.packet_id = packet_id;
        if (inflight.message) entry.message = messages.index_of(inflight.message);
        entry.qos = inflight.qos;
        entry.retain = inflight.retain;
        entry.released = inflight.released;
        entry.subscription_ids = ids_of(inflight.subscription_ids);
        if (inflight.shared_group) entry.shared_filter = inflight.shared_group->filter;
      }
      session.incoming_qos2 = std::move(copy.incoming_qos2);
      std::sort(session.incoming_qos2.begin(), session.incoming_qos2.end());
      session.next_packet_id = copy.next_packet_id;
      if (copy.will)
        session.will = PersistedWill{std::move(*copy.will), clocks.to_wall(copy.will_due)};
    }
  }
  return out;
}

void Core::mark_dirty(const std::vector<PersistedInstance>& instances) {
  for (const auto& saved : instances) instance(saved.id).touch();
}

void Core::restore(std::vector<PersistedInstance> saved) {
  const ClockPair clocks;
  std::size_t restored = 0;
  std::size_t revoked = 0;
  for (auto& saved_instance : saved) {
    Instance& instance = this->instance(saved_instance.id);

    std::vector<MessagePtr> messages;
    messages.reserve(saved_instance.messages.size());
    for (auto& saved_message : saved_instance.messages) {
      auto message = std::make_shared<Message>();
      message->topic = std::move(saved_message.topic);
      message->payload = std::move(saved_message.payload);
      message->qos = saved_message.qos;
      message->retain = saved_message.retain;
      message->properties = std::move(saved_message.properties);
      if (saved_message.expires_at)
        message->expires_at = clocks.to_steady(*saved_message.expires_at);
      messages.push_back(std::move(message));
    }
    auto message_at = [&](std::size_t index) -> MessagePtr {
      return index < messages.size() ? messages[index] : nullptr;
    };
    {
      std::lock_guard lock(instance.retained_mutex);
      for (auto index : saved_instance.retained) {
        auto message = message_at(index);
        if (message && !message->expired(clocks.steady)) {
          instance.retained.insert_or_assign(message->topic, std::move(message));
        }
      }
    }

    // The revocation check, as a CONNECT does it: the hub's epoch read before the lookup, so
    // a revocation committed after the lookup is still seen by bind().
    struct Accepted {
      PersistedSession* saved;
      std::shared_ptr<RevocationFlag> credential;
      std::shared_ptr<DelayedWill> will;
      std::shared_ptr<Session> session;
    };
    std::vector<Accepted> accepted;
    std::unordered_set<std::string_view> seen;
    for (auto& saved_session : saved_instance.sessions) {
      // Client ids are unique in a snapshot (the table's primary key); keep the first anyway.
      if (!seen.insert(saved_session.client_id).second) continue;
      Accepted entry{&saved_session, nullptr, nullptr, nullptr};
      if (saved_session.will) entry.will = std::make_shared<DelayedWill>();
      const std::int64_t serial = saved_session.credential_serial;
      if (serial != 0) {
        const std::uint64_t epoch = hub.epoch();
        bool current = false;
        try {
          current = authenticator.credential_current(instance.id, saved_session.client_id, serial);
        } catch (const std::exception& error) {
          log::error("persistence: cannot check the credential of client ", saved_session.client_id,
                     " on ", instance.id, ": ", error.what());
        }
        entry.credential = std::make_shared<RevocationFlag>();
        bool bound = current && hub.bind(serial, epoch, entry.credential) ==
                                    auth::RevocationHub::BindResult::bound;
        if (bound) entry.credential->serial = serial;
        if (bound && entry.will) {
          bound = hub.bind(serial, epoch, entry.will) == auth::RevocationHub::BindResult::bound;
          if (bound) entry.will->serial = serial;
        }
        if (!bound) {
          if (entry.credential->serial != 0) hub.unbind(serial, entry.credential.get());
          log::info("persistence: dropped the saved session of client ", saved_session.client_id,
                    " on ", instance.id, ": its credential was revoked");
          ++revoked;
          instance.touch();  // the next save forgets it
          continue;
        }
      }
      accepted.push_back(std::move(entry));
    }

    std::unique_lock lock(instance.mutex);
    for (auto& entry : accepted) {
      PersistedSession& saved_session = *entry.saved;
      auto session = std::make_shared<Session>(saved_session.client_id, instance);
      session->persistent = true;
      session->expiry_interval = saved_session.expiry_interval;
      session->credential_serial = saved_session.credential_serial;
      // Expiry counts the time the broker was down; one that passed meanwhile is discarded
      // (and its will published) by the first sweep.
      session->offline_since = clocks.to_steady(saved_session.offline_since);
      if (session->expiry_interval != kSessionNeverExpires) {
        session->expires_at =
            session->offline_since + std::chrono::seconds(session->expiry_interval);
        instance.expiring.insert(session.get());
      }
      for (auto& saved_subscription : saved_session.subscriptions) {
        const Subscription subscription{saved_subscription.options, saved_subscription.identifier};
        instance.subscriptions.insert(saved_subscription.filter, session.get(), subscription);
        session->subscriptions.insert_or_assign(std::move(saved_subscription.filter), subscription);
      }
      // Saved under other topic rules: what they no longer allow is dropped.
      drop_forbidden_subscriptions_locked(instance, *session);
      if (entry.credential) {
        session->offline_credential = std::move(entry.credential);
        instance.offline_bound.insert(session.get());
      }
      if (entry.will) {
        entry.will->will = std::move(saved_session.will->will);
        entry.will->due = clocks.to_steady(saved_session.will->due);
        session->delayed_will = std::move(entry.will);
        instance.delayed_wills.insert(session.get());
      }
      instance.sessions.emplace(session->client_id, session);
      session_count.fetch_add(1, std::memory_order_relaxed);
      entry.session = std::move(session);
    }
    // Queues once every subscription is back: a delivery through a shared subscription
    // finds its group, so it can still move to another member if this session ends.
    for (auto& entry : accepted) {
      Session& session = *entry.session;
      PersistedSession& saved_session = *entry.saved;
      std::lock_guard session_lock(session.mutex);
      for (auto& saved_delivery : saved_session.queue) {
        auto message = message_at(saved_delivery.message);
        if (!message || !instance.may_receive(session, message->topic)) continue;
        session.queued_bytes += message->payload.size();
        session.queue.push_back(
            {std::move(message), saved_delivery.qos, saved_delivery.retain,
             ids_from(saved_delivery.subscription_ids),
             saved_delivery.shared_filter.empty()
                 ? nullptr
                 : instance.subscriptions.shared_group(saved_delivery.shared_filter)});
      }
      for (auto& saved_inflight : saved_session.inflight) {
        if (saved_inflight.packet_id == 0) continue;
        MessagePtr message;
        if (!saved_inflight.released) {
          message = saved_inflight.message ? message_at(*saved_inflight.message) : nullptr;
          if (!message) continue;  // nothing to resend
        }
        session.inflight.emplace(
            saved_inflight.packet_id,
            InflightMessage{std::move(message), saved_inflight.qos, saved_inflight.retain,
                            saved_inflight.released, ids_from(saved_inflight.subscription_ids),
                            saved_inflight.shared_filter.empty()
                                ? nullptr
                                : instance.subscriptions.shared_group(saved_inflight.shared_filter),
                            false});
      }
      for (const std::uint16_t id : saved_session.incoming_qos2) session.incoming_qos2.insert(id);
      session.next_packet_id = saved_session.next_packet_id == 0 ? 1 : saved_session.next_packet_id;
      ++restored;
    }
  }
  if (restored > 0 || revoked > 0) {
    log::info("persistence: restored ", restored, " session(s); dropped ", revoked,
              " whose credential was revoked");
  }
}

}  // namespace credmq::broker::detail
