"""Scenarios with paho-mqtt 1.6 (3.1.1 and 5.0) against the real credmq, devices logging in
with DeviceCredential: persistent sessions, offline queue limit, shared subscriptions, topic
aliases, message expiry and will delay (docs/mqtt5.md)."""
import math
import subprocess
import time

import pytest

from credmq_harness import CREDMQ_BIN, Credmq, wait_until
from scenario_clients import MqttJsAgent, PahoClient, register_device as device, wait_for_clock

DISCONNECT_TOPIC_ALIAS_INVALID = 0x94
DISCONNECT_PROTOCOL_ERROR = 0x82


def paho_device(broker, name, version=5, clean=True):
    client_id, login = device(broker, name)
    return PahoClient(broker.mqtt_port, client_id, version=version, clean=clean, login=login)


def connected(broker, name, version=5, clean=True, **connect):
    client = paho_device(broker, name, version, clean)
    assert client.connect(**connect) == (0, False)
    return client


def assert_next_is_fence(client, topic, publisher):
    """Publishes a fence message and asserts it is the next message `client` receives: nothing
    else was queued or published for it before the fence."""
    publisher.publish(topic, b"fence", qos=1)
    message = client.message()
    assert (message.topic, message.payload) == (topic, b"fence")


# ------------------------------------------------------------------ a. persistent sessions

def test_311_persistent_session_keeps_subscriptions_and_queues_qos1_qos2_in_order(broker):
    client_id, login = device(broker, "resume-311")
    subscriber = PahoClient(broker.mqtt_port, client_id, version=4, clean=False, login=login)
    assert subscriber.connect() == (0, False)  # no session existed
    assert subscriber.subscribe("resume311/#", qos=2) == [2]
    subscriber.disconnect()

    publisher = connected(broker, "resume-311-pub", version=4)
    for i in range(6):
        publisher.publish(f"resume311/{i}", f"m{i}".encode(), qos=1 + i % 2)

    again = PahoClient(broker.mqtt_port, client_id, version=4, clean=False, login=login)
    assert again.connect() == (0, True)
    # In order on the wire (paho itself hands QoS 2 messages over only at PUBREL).
    assert again.wire_publishes(6) == [(f"resume311/{i}", 1 + i % 2, False) for i in range(6)]
    received = sorted(again.messages(6), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.qos) for m in received] == [
        (f"resume311/{i}", f"m{i}".encode(), 1 + i % 2) for i in range(6)]
    # The subscription is still live after the resume.
    publisher.publish("resume311/live", b"live", qos=1)
    message = again.message()
    assert (message.topic, message.payload, message.qos) == ("resume311/live", b"live", 1)
    again.disconnect()

    # Clean session 1 discards it: no session present then, nor at the next clean session 0.
    fresh = PahoClient(broker.mqtt_port, client_id, version=4, clean=True, login=login)
    assert fresh.connect() == (0, False)
    fresh.disconnect()
    last = PahoClient(broker.mqtt_port, client_id, version=4, clean=False, login=login)
    assert last.connect() == (0, False)
    last.disconnect()
    publisher.disconnect()


def test_5_clean_start_0_with_session_expiry_resumes_and_disconnect_expiry_0_ends_it(broker):
    client_id, login = device(broker, "resume-5")
    subscriber = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
    assert subscriber.connect(session_expiry=60) == (0, False)
    assert subscriber.subscribe("resume5/#", qos=2) == [2]
    subscriber.disconnect()

    publisher = connected(broker, "resume-5-pub")
    for i in range(6):
        publisher.publish(f"resume5/{i}", f"m{i}".encode(), qos=1 + i % 2)

    again = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
    assert again.connect(session_expiry=60) == (0, True)
    # In order on the wire (paho itself hands QoS 2 messages over only at PUBREL).
    assert again.wire_publishes(6) == [(f"resume5/{i}", 1 + i % 2, False) for i in range(6)]
    received = sorted(again.messages(6), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.qos) for m in received] == [
        (f"resume5/{i}", f"m{i}".encode(), 1 + i % 2) for i in range(6)]
    publisher.publish("resume5/live", b"live", qos=2)
    message = again.message()
    assert (message.topic, message.payload, message.qos) == ("resume5/live", b"live", 2)
    # Session Expiry Interval 0 on DISCONNECT ends the session with the connection. paho
    # closes its socket right after sending DISCONNECT, so wait for the broker to have handled
    # it: a CONNECT racing ahead of it would take the session over, as the spec allows.
    disconnects = broker.log_text().count(f"client {client_id} disconnected from")
    again.disconnect(session_expiry=0)
    wait_until(lambda: broker.log_text().count(f"client {client_id} disconnected from")
               > disconnects, what="the broker handled the DISCONNECT")
    publisher.publish("resume5/after", b"x", qos=1)

    last = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
    assert last.connect(session_expiry=60) == (0, False)
    assert_next_is_fence_after_subscribe(last, publisher, "resume5/#")
    last.disconnect(session_expiry=0)
    publisher.disconnect()


def assert_next_is_fence_after_subscribe(client, publisher, topic_filter):
    """A fresh session has nothing queued: after subscribing, the first message is a fence."""
    assert client.subscribe(topic_filter, qos=1) == [1]
    assert_next_is_fence(client, topic_filter.replace("#", "fence"), publisher)


# ------------------------------------------------------------------ b. offline queue limit

def _has_option(option):
    result = subprocess.run([CREDMQ_BIN, "--help"], capture_output=True, text=True, timeout=10)
    return option in result.stdout


@pytest.mark.skipif(not _has_option("--max-queued-messages"),
                    reason="credmq has no --max-queued-messages option on this branch "
                           "(BrokerConfig::max_queued_per_session is not exposed)")
def test_offline_queue_keeps_the_first_max_queued_messages():
    with Credmq(["--max-queued-messages", "5"]) as small:
        subscriber_id, login = device(small, "queue-sub")
        subscriber = PahoClient(small.mqtt_port, subscriber_id, version=5, clean=False,
                                login=login)
        assert subscriber.connect(session_expiry=60) == (0, False)
        assert subscriber.subscribe("queue/#", qos=1) == [1]
        subscriber.disconnect()
        publisher = connected(small, "queue-pub")
        for i in range(8):
            publisher.publish(f"queue/{i}", f"q{i}".encode(), qos=1)
        again = PahoClient(small.mqtt_port, subscriber_id, version=5, clean=False, login=login)
        assert again.connect(session_expiry=60) == (0, True)
        assert [m.payload for m in again.messages(5)] == [f"q{i}".encode() for i in range(5)]
        assert_next_is_fence(again, "queue/fence", publisher)


# ------------------------------------------------------------------ c. shared subscriptions

def collect_until_fence(members, fence_topic, publisher, deadline=10.0):
    """Every member also subscribes to `fence_topic` (plain): one fence message reaches each
    after all shared messages routed before it. Returns the payloads each member received."""
    publisher.publish(fence_topic, b"fence", qos=1)
    got = []
    end = time.monotonic() + deadline
    for receive in members:
        payloads = []
        while True:
            topic, payload = receive(max(0.0, end - time.monotonic()))
            if topic == fence_topic:
                break
            payloads.append(payload)
        got.append(payloads)
    return got


def paho_receiver(client):
    def receive(deadline):
        message = client.message(deadline)
        return message.topic, message.payload.decode()
    return receive


def mqttjs_receiver(agent):
    def receive(deadline):
        event = agent.event("message", deadline)
        return event["topic"], event["payload"]
    return receive


def mqttjs_device(broker, name, **options):
    client_id, login = device(broker, name)
    agent = MqttJsAgent()
    connack = agent.connect(broker.mqtt_port, client_id, login, **options)
    assert connack["event"] == "connect" and connack["reasonCode"] == 0, connack
    return agent


@pytest.mark.parametrize("member_count", [2, 3])
def test_shared_subscription_delivers_each_message_to_one_member_round_robin(
        broker, member_count):
    group = f"share{member_count}"
    paho5 = connected(broker, f"{group}-paho5")
    js = mqttjs_device(broker, f"{group}-js")
    members = [paho_receiver(paho5), mqttjs_receiver(js)]
    clients = [paho5]
    if member_count == 3:
        paho311 = connected(broker, f"{group}-paho311", version=4)
        members.append(paho_receiver(paho311))
        clients.append(paho311)
    for client in clients:
        assert client.subscribe(f"$share/g/{group}/t", qos=1) == [1]
        assert client.subscribe(f"{group}/fence", qos=1) == [1]
    assert js.call("subscribe", topic=f"$share/g/{group}/t", options={"qos": 1})["granted"] == [1]
    assert js.call("subscribe", topic=f"{group}/fence", options={"qos": 1})["granted"] == [1]

    publisher = connected(broker, f"{group}-pub")
    n = 30
    for i in range(n):
        publisher.publish(f"{group}/t", f"{i}".encode(), qos=1)
    got = collect_until_fence(members, f"{group}/fence", publisher)

    everything = [p for payloads in got for p in payloads]
    assert sorted(everything, key=int) == [str(i) for i in range(n)]  # each exactly once
    counts = [len(payloads) for payloads in got]
    assert max(counts) - min(counts) <= 1, counts  # round-robin
    assert sum(counts) == n
    js.call("end")
    js.close()
    for client in [*clients, publisher]:
        client.disconnect()


def test_shared_messages_unacknowledged_by_an_ending_member_go_to_another(broker):
    """MQTT.js holds back its PUBACKs, then ends its session (Session Expiry 0): the messages
    it never acknowledged are delivered to the paho member, DUP 0."""
    holder = mqttjs_device(broker, "share-holder", holdAcks=True)
    taker = connected(broker, "share-taker")
    assert holder.call("subscribe", topic="$share/g/handover/t",
                       options={"qos": 1})["granted"] == [1]
    assert taker.subscribe("$share/g/handover/t", qos=1) == [1]
    publisher = connected(broker, "share-handover-pub")
    n = 6
    for i in range(n):
        publisher.publish("handover/t", f"{i}".encode(), qos=1)
    held = [holder.event("message")["payload"] for _ in range(n // 2)]
    taken = [taker.message().payload.decode() for _ in range(n // 2)]
    assert sorted(held + taken, key=int) == [str(i) for i in range(n)]

    holder.call("end")  # DISCONNECT; Session Expiry 0 ends the session with it
    holder.close()
    handed_over = taker.messages(len(held))
    assert sorted(m.payload.decode() for m in handed_over) == sorted(held)
    assert all(m.qos == 1 and not m.dup for m in handed_over)
    # Nothing else is on its way to the remaining member.
    assert taker.subscribe("handover/fence", qos=1) == [1]
    assert_next_is_fence(taker, "handover/fence", publisher)
    taker.disconnect()
    publisher.disconnect()


# ------------------------------------------------------------------ d. topic aliases

def test_paho_5_topic_alias_is_resolved_and_alias_over_maximum_is_0x94(broker):
    subscriber = connected(broker, "alias-sub")
    assert subscriber.subscribe("alias/#", qos=1) == [1]
    sender = connected(broker, "alias-paho")
    assert sender.connack_properties.TopicAliasMaximum == 10
    sender.publish("alias/paho", b"registers", qos=1, TopicAlias=2)
    sender.publish("", b"uses", qos=1, TopicAlias=2)
    received = subscriber.messages(2)
    assert [(m.topic, m.payload) for m in received] == [("alias/paho", b"registers"),
                                                        ("alias/paho", b"uses")]
    sender.publish("alias/over", b"over", qos=0, TopicAlias=11)
    assert sender.wait_disconnect() == DISCONNECT_TOPIC_ALIAS_INVALID
    # Not routed: the subscriber's next message is the fence.
    assert_next_is_fence(subscriber, "alias/fence", subscriber)
    subscriber.disconnect()


def test_paho_5_unknown_topic_alias_with_empty_topic_is_a_protocol_error(broker):
    sender = connected(broker, "alias-unknown")
    sender.publish("", b"nothing registered", qos=0, TopicAlias=3)
    assert sender.wait_disconnect() == DISCONNECT_PROTOCOL_ERROR


# ------------------------------------------------------------------ e. message expiry

def test_expired_message_is_not_delivered_and_live_one_carries_remaining_interval(broker):
    client_id, login = device(broker, "expiry-sub")
    subscriber = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
    assert subscriber.connect(session_expiry=60) == (0, False)
    assert subscriber.subscribe("expiry/#", qos=1) == [1]
    subscriber.disconnect()

    publisher = connected(broker, "expiry-pub")
    before_publish = time.monotonic()
    publisher.publish("expiry/short", b"1 s", qos=1, MessageExpiryInterval=1)
    publisher.publish("expiry/long", b"60 s", qos=1, MessageExpiryInterval=60)
    acknowledged = time.monotonic()
    wait_for_clock(before_publish + 1.05)  # the 1 s message has expired at the broker

    again = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
    reconnecting = time.monotonic()
    assert again.connect(session_expiry=60) == (0, True)
    message = again.message()
    delivered = time.monotonic()
    assert (message.topic, message.payload) == ("expiry/long", b"60 s")
    # Seconds left, rounded up: the age at delivery lies between these two bounds.
    expected = {math.ceil(60 - age) for age in (reconnecting - acknowledged,
                                                delivered - before_publish)}
    assert message.properties.MessageExpiryInterval in expected, (
        message.properties.MessageExpiryInterval, expected)
    assert_next_is_fence(again, "expiry/fence", publisher)
    again.disconnect(session_expiry=0)
    publisher.disconnect()


# ------------------------------------------------------------------ f. will delay

def test_paho_will_delay_cancelled_by_resume_published_after_delay_dropped_by_revocation(
        broker):
    observer = connected(broker, "will-observer")
    assert observer.subscribe("will/#", qos=1) == [1]
    will_props = {"WillDelayInterval": 2}

    def willing(name):
        client_id, login = device(broker, name)
        client = PahoClient(broker.mqtt_port, client_id, version=5, clean=False, login=login)
        assert client.connect(session_expiry=10, will=(f"will/{name}", b"gone", 1),
                              will_properties=will_props) == (0, False)
        return client_id, login, client

    resumer_id, resumer_login, resumer = willing("will-resumer")
    _, _, revoked = willing("will-revoked")
    _, _, silent = willing("will-silent")

    # Dropped in this order, so the silent device's will is due last.
    resumer.drop()
    revoked.drop()
    silent_dropped = time.monotonic()
    silent.drop()

    # Resuming within the delay cancels the will [MQTT-3.1.3-9].
    again = PahoClient(broker.mqtt_port, resumer_id, version=5, clean=False, login=resumer_login)
    assert again.connect(session_expiry=10) == (0, True)
    # Revoking the credential drops its waiting will (docs/auth.md, Revocation item 4).
    status, _ = broker.admin.unregister("GID_scn@@@will-revoked", broker.instance_id)
    assert status == 200

    # The silent device's will goes after its delay (the broker sweeps once a second). It
    # was due last, so the other two wills, had they been kept, would have come first.
    message = observer.message(deadline=6.0)
    published_after = time.monotonic() - silent_dropped
    assert (message.topic, message.payload, message.qos) == ("will/will-silent", b"gone", 1)
    assert 2.0 <= published_after < 4.0, published_after
    assert_next_is_fence(observer, "will/fence", observer)
    again.disconnect(session_expiry=0)
    observer.disconnect()
