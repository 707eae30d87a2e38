#include "core.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cstdio>
#include <random>

#include "credmq/common/log.hpp"
#include "credmq/mqtt/codec.hpp"

namespace credmq::broker::detail {

MessagePtr make_message(std::string topic, std::string payload, std::uint8_t qos, bool retain,
                        const mqtt::Properties& from) {
  auto message = std::make_shared<Message>();
  message->topic = std::move(topic);
  message->payload = std::move(payload);
  message->qos = qos;
  message->retain = retain;
  auto& to = message->properties;
  to.payload_format_indicator = from.payload_format_indicator;
  to.message_expiry_interval = from.message_expiry_interval;
  to.content_type = from.content_type;
  to.response_topic = from.response_topic;
  to.correlation_data = from.correlation_data;
  to.user_properties = from.user_properties;
  if (from.message_expiry_interval) {
    message->expires_at =
        std::chrono::steady_clock::now() + std::chrono::seconds(*from.message_expiry_interval);
  }
  return message;
}

std::uint32_t Message::seconds_left(std::chrono::steady_clock::time_point now) const {
  if (expires_at <= now) return 1;
  const auto left = std::chrono::ceil<std::chrono::seconds>(expires_at - now).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 1, 0xFFFFFFFF));
}

Core::Core(BrokerConfig cfg, auth::Authenticator& auth, auth::RevocationHub& revocation_hub)
    : config(std::move(cfg)), authenticator(auth), hub(revocation_hub) {
  std::random_device random;
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "auto-%08x%08x-", random(), random());
  client_id_prefix_ = prefix;
}

Core::~Core() {
  // Delayed wills still waiting are dropped with the broker; leave the hub clean.
  for (auto& [id, instance] : instances_) {
    for (Session* session : instance->delayed_wills) {
      if (session->delayed_will && session->delayed_will->serial != 0) {
        hub.unbind(session->delayed_will->serial, session->delayed_will.get());
      }
    }
    for (Session* session : instance->offline_bound) {
      const auto& credential = session->offline_credential;
      if (credential && credential->serial != 0) hub.unbind(credential->serial, credential.get());
    }
  }
}

Instance& Core::instance(const std::string& id) {
  std::lock_guard lock(instances_mutex_);
  auto& slot = instances_[id];
  if (!slot) {
    const TopicRules* rules = nullptr;
    if (auto it = config.topic_rules.find(id);
        it != config.topic_rules.end() && !it->second.empty()) {
      rules = &it->second;
    }
    slot = std::make_unique<Instance>(id, rules);
  }
  return *slot;
}

std::vector<Instance*> Core::instances() {
  std::lock_guard lock(instances_mutex_);
  std::vector<Instance*> all;
  all.reserve(instances_.size());
  for (auto& [id, instance] : instances_) all.push_back(instance.get());
  return all;
}

void Instance::client_connected() {
  const auto now = clients_connected.fetch_add(1, std::memory_order_relaxed) + 1;
  auto maximum = clients_maximum.load(std::memory_order_relaxed);
  while (now > maximum &&
         !clients_maximum.compare_exchange_weak(maximum, now, std::memory_order_relaxed)) {
  }
}

bool Core::route(Instance& instance, const MessagePtr& message, const Session* publisher) {
  thread_local std::vector<TopicTree::Match> matches;
  matches.clear();
  std::shared_lock lock(instance.mutex);
  instance.subscriptions.match(message->topic, matches);
  bool matched = false;
  // Overlapping subscriptions of one session: one copy at the highest granted QoS. Shared
  // subscriptions (null session) sort first; each gets its own copy.
  std::sort(matches.begin(), matches.end(),
            [](const auto& a, const auto& b) { return a.session < b.session; });
  for (std::size_t i = 0; i < matches.size();) {
    if (matches[i].group) {
      matched = deliver_shared(*matches[i].group, message, nullptr) || matched;
      ++i;
      continue;
    }
    Session* session = matches[i].session;
    int qos = -1;
    bool retain_as_published = false;
    SubscriptionIds ids;
    for (; i < matches.size() && matches[i].session == session; ++i) {
      const auto& subscription = matches[i].subscription;
      const auto& options = subscription.options;
      if (options.no_local && session == publisher) continue;
      qos = std::max<int>(qos, options.qos);
      retain_as_published = retain_as_published || options.retain_as_published;
      ids.add(subscription.identifier);  // every matching one [MQTT-3.3.4-3]
    }
    if (qos < 0) continue;
    // Topic rules: a subscriber receives only topics it may read, whatever its filter.
    if (!instance.may_receive(*session, message->topic)) continue;
    matched = true;
    enqueue(*session, {message, static_cast<std::uint8_t>(std::min<int>(qos, message->qos)),
                       retain_as_published && message->retain, std::move(ids), nullptr});
  }
  return matched;
}

bool Core::deliver_shared(const std::shared_ptr<SharedGroup>& group, const MessagePtr& message,
                          const Session* exclude) {
  const auto& members = group->members;
  const std::size_t count = members.size();
  if (count == 0) return false;
  const std::size_t start = group->cursor.fetch_add(1, std::memory_order_relaxed);
  const std::pair<Session*, Subscription>* chosen = nullptr;
  for (std::size_t k = 0; k < count; ++k) {
    const auto& member = members[(start + k) % count];
    if (member.first == exclude) continue;
    if (!member.first->instance.may_receive(*member.first, message->topic)) continue;
    bool online;
    {
      Session& session = *member.first;
      std::lock_guard lock(session.mutex);
      if (session.discarded ||
          (session.owner != nullptr && session.owner_revoked->load(std::memory_order_acquire))) {
        continue;  // would drop it
      }
      online = session.owner != nullptr;
    }
    if (online) {
      chosen = &member;
      break;
    }
    if (!chosen) chosen = &member;  // an offline session queues QoS 1/2 until it returns
  }
  if (!chosen) return false;
  const auto& options = chosen->second.options;
  Delivery delivery{message,
                    std::min(options.qos, message->qos),
                    options.retain_as_published && message->retain,
                    {},
                    group};
  delivery.subscription_ids.add(chosen->second.identifier);
  enqueue(*chosen->first, std::move(delivery));
  return true;
}

void Core::retain(Instance& instance, const MessagePtr& message) {
  std::lock_guard lock(instance.retained_mutex);
  if (message->payload.empty()) {
    instance.retained.erase(message->topic);
  } else {
    instance.retained.insert_or_assign(message->topic, message);
  }
  // $SYS values are the broker's own and republished after a restart: not worth a save.
  if (!is_sys_topic(message->topic)) instance.touch();
}

void Core::deliver_retained(Session& session, std::string_view filter,
                            const Subscription& subscription) {
  std::vector<MessagePtr> found;
  {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(session.instance.retained_mutex);
    auto& retained = session.instance.retained;
    for (auto it = retained.begin(); it != retained.end();) {
      if (it->second->expired(now)) {
        it = retained.erase(it);  // a retained message expires too [MQTT-3.3.2-5]
        session.instance.touch();
        continue;
      }
      if (mqtt::topic_matches(filter, it->first) &&
          session.instance.may_receive(session, it->first)) {
        found.push_back(it->second);
      }
      ++it;
    }
  }
  for (auto& message : found) {
    auto qos = std::min(subscription.options.qos, message->qos);
    Delivery delivery{std::move(message), qos, true, {}, nullptr};
    delivery.subscription_ids.add(subscription.identifier);
    enqueue(session, std::move(delivery));
  }
}

void Core::enqueue(Session& session, Delivery delivery) {
  std::shared_ptr<Connection> to_wake;
  {
    std::lock_guard lock(session.mutex);
    if (session.discarded) return;
    if (session.owner == nullptr) {
      if (delivery.qos == 0) return;  // offline sessions keep QoS 1/2 only (as Mosquitto)
      if (session.offline_credential && session.offline_credential->raised()) return;
    } else if (session.owner_revoked->load(std::memory_order_acquire)) {
      return;  // nothing is delivered to a revoked session
    }
    const auto max_count = config.max_queued_per_session;
    const auto max_bytes = config.max_queued_bytes_per_session;
    // As Mosquitto: full once the queue holds the limit, so one message may overshoot the
    // byte limit (a payload larger than it still gets through an empty queue).
    if ((max_count != 0 && session.queue.size() >= max_count) ||
        (max_bytes != 0 && session.queued_bytes >= max_bytes)) {
      messages_dropped.fetch_add(1, std::memory_order_relaxed);
      log::debug("queue full for client ", session.client_id, " on ", session.instance.id,
                 ": message dropped");
      return;
    }
    session.queued_bytes += delivery.message->payload.size();
    if (delivery.qos > 0) session.touch();  // QoS 0 is never saved (not kept offline)
    session.queue.push_back(std::move(delivery));
    if (session.owner != nullptr && !session.wake_pending) {
      session.wake_pending = true;
      to_wake = session.owner_ref.lock();
    }
  }
  if (to_wake) wake_connection(to_wake);
}

void Core::publish_will(Instance& instance, mqtt::Will will) {
  auto message = make_message(std::move(will.topic), std::move(will.payload), will.qos, will.retain,
                              will.properties);
  if (message->retain) retain(instance, message);
  route(instance, message, nullptr);
}

void Core::publish_delayed_will(Instance& instance, const std::shared_ptr<DelayedWill>& will) {
  if (!will || will->revoked.load(std::memory_order_acquire)) return;
  publish_will(instance, std::move(will->will));
}

std::shared_ptr<DelayedWill> Core::take_delayed_will_locked(Instance& instance, Session& session) {
  auto will = std::move(session.delayed_will);
  session.delayed_will.reset();
  if (will) {
    session.touch();
    instance.delayed_wills.erase(&session);
    if (will->serial != 0) hub.unbind(will->serial, will.get());
  }
  return will;
}

void Core::set_offline_credential_locked(Instance& instance, Session& session,
                                         std::shared_ptr<RevocationFlag> credential) {
  std::lock_guard lock(session.mutex);
  session.offline_credential = std::move(credential);
  instance.offline_bound.insert(&session);
}

void Core::release_offline_credential_locked(Instance& instance, Session& session) {
  std::shared_ptr<RevocationFlag> credential;
  {
    std::lock_guard lock(session.mutex);
    credential = std::move(session.offline_credential);
    session.offline_credential.reset();
  }
  instance.offline_bound.erase(&session);
  if (credential && credential->serial != 0) hub.unbind(credential->serial, credential.get());
}

std::shared_ptr<DelayedWill> Core::discard_session_locked(Instance& instance, Session& session) {
  session.touch();
  release_offline_credential_locked(instance, session);
  auto will = take_delayed_will_locked(instance, session);
  for (const auto& [filter, subscription] : session.subscriptions) {
    instance.subscriptions.erase(filter, &session);
  }
  session.subscriptions.clear();
  instance.expiring.erase(&session);
  if (auto it = instance.sessions.find(session.client_id);
      it != instance.sessions.end() && it->second.get() == &session) {
    instance.sessions.erase(it);
    session_count.fetch_sub(1, std::memory_order_relaxed);
  }
  // Messages given to this session through a shared subscription and not yet received go to
  // another member of the group.
  std::vector<std::pair<std::shared_ptr<SharedGroup>, MessagePtr>> orphans;
  {
    std::lock_guard lock(session.mutex);
    session.discarded = true;
    for (auto& delivery : session.queue) {
      if (delivery.shared_group) {
        orphans.emplace_back(std::move(delivery.shared_group), std::move(delivery.message));
      }
    }
    for (auto& [packet_id, inflight] : session.inflight) {
      // An unacknowledged QoS 1 delivery goes to another member (the spec's SHOULD); a QoS 2
      // delivery already sent to this member must not go to any other [MQTT-4.8.2-5].
      if (inflight.shared_group && inflight.qos == 1 && inflight.message) {
        orphans.emplace_back(std::move(inflight.shared_group), std::move(inflight.message));
      }
    }
    session.queue.clear();
    session.queued_bytes = 0;
    session.inflight.clear();
    session.resend_backlog = 0;
    session.incoming_qos2.clear();
  }
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [group, message] : orphans) {
    if (!message->expired(now)) deliver_shared(group, message, &session);
  }
  return will;
}

void Core::expire_sessions() {
  std::vector<Instance*> all;
  {
    std::lock_guard lock(instances_mutex_);
    for (auto& [id, instance] : instances_) all.push_back(instance.get());
  }
  const auto now = std::chrono::steady_clock::now();
  for (Instance* instance : all) {
    std::vector<std::shared_ptr<DelayedWill>> due_wills;
    std::unique_lock lock(instance->mutex);
    std::vector<Session*> will_owners;
    for (Session* session : instance->delayed_wills) {
      if (session->delayed_will->due <= now) will_owners.push_back(session);
    }
    for (Session* session : will_owners) {
      due_wills.push_back(take_delayed_will_locked(*instance, *session));
    }
    std::vector<std::shared_ptr<Session>> expired;
    auto end_session = [&](Session* session) {
      if (auto it = instance->sessions.find(session->client_id);
          it != instance->sessions.end() && it->second.get() == session &&
          std::find(expired.begin(), expired.end(), it->second) == expired.end()) {
        expired.push_back(it->second);
      }
    };
    for (Session* session : instance->expiring) {
      if (session->expires_at <= now) end_session(session);
    }
    // The credential of an offline session was revoked: its state goes (mqtt-auth.md,
    // Revocation item 4), as it does for a live session.
    for (Session* session : instance->offline_bound) {
      if (session->offline_credential && session->offline_credential->raised()) {
        end_session(session);
      }
    }
    for (auto& session : expired) {
      log::debug("session ", session->client_id, " on ", instance->id, " expired");
      if (auto will = discard_session_locked(*instance, *session)) {
        due_wills.push_back(std::move(will));
      }
    }
    lock.unlock();
    for (const auto& will : due_wills) publish_delayed_will(*instance, will);
  }
}

std::string Core::assign_client_id() {
  return client_id_prefix_ + std::to_string(next_client_id_.fetch_add(1) + 1);
}

void Core::drop_forbidden_subscriptions_locked(Instance& instance, Session& session) {
  if (instance.rules == nullptr) return;
  for (auto it = session.subscriptions.begin(); it != session.subscriptions.end();) {
    std::string_view group;
    std::string_view filter;
    bool valid = false;
    const bool shared = parse_shared_filter(it->first, group, filter, valid);
    if (instance.rules->may_subscribe(session.client_id, shared ? filter : it->first)) {
      ++it;
      continue;
    }
    log::info("client ", session.client_id, " on ", instance.id, ": subscription ", it->first,
              " dropped, the topic rules no longer allow it");
    instance.subscriptions.erase(it->first, &session);
    it = session.subscriptions.erase(it);
    session.touch();
  }
}

Core::Admission Core::register_connection(const std::shared_ptr<Connection>& connection,
                                          const boost::asio::ip::address& ip,
                                          const std::string& address) {
  std::lock_guard lock(connections_mutex_);
  if (stopping_) return Admission::stopping;
  if (config.max_connections != 0 && connections_.size() >= config.max_connections) {
    connections_refused.fetch_add(1, std::memory_order_relaxed);
    return Admission::over_total;
  }
  std::pair<const std::string, std::size_t>* counted = nullptr;
  if (config.max_connections_per_address != 0 && (config.limit_loopback || !ip.is_loopback())) {
    counted = &*per_address_.try_emplace(address, 0).first;
    if (counted->second >= config.max_connections_per_address) {
      connections_refused.fetch_add(1, std::memory_order_relaxed);
      return Admission::over_address;
    }
    ++counted->second;
  }
  connections_.emplace(connection.get(), Registered{connection, counted});
  return Admission::admitted;
}

void Core::unregister_connection(const Connection* connection) {
  std::lock_guard lock(connections_mutex_);
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  if (auto* counted = it->second.address; counted != nullptr && --counted->second == 0) {
    per_address_.erase(per_address_.find(counted->first));  // by iterator: the key is the node's
  }
  connections_.erase(it);
}

std::vector<std::shared_ptr<Connection>> Core::begin_stopping() {
  std::lock_guard lock(connections_mutex_);
  stopping_ = true;
  std::vector<std::shared_ptr<Connection>> live;
  for (auto& [raw, registered] : connections_) {
    if (auto connection = registered.connection.lock()) live.push_back(std::move(connection));
  }
  return live;
}

std::size_t Core::connection_count() const {
  std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

}  // namespace credmq::broker::detail
