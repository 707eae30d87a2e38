"""Scenarios with MQTT.js 5.16 (node/mqttjs_agent.js, driven from here) against the real
credmq, devices logging in with DeviceCredential: persistent sessions, shared subscriptions,
topic aliases (explicit and MQTT.js's automatic options), message expiry and will delay."""
import math
import time

import pytest

from scenario_clients import MqttJsAgent, register_device, wait_for_clock


@pytest.fixture
def agents():
    """Every MQTT.js process started by a test; all are closed at its end."""
    started = []
    yield started
    for agent in started:
        agent.close()


def js_connect(broker, agents, client_id, login, expect_present=False, **options):
    agent = MqttJsAgent()
    agents.append(agent)
    connack = agent.connect(broker.mqtt_port, client_id, login, **options)
    assert connack["event"] == "connect", connack
    assert (connack["reasonCode"], connack["sessionPresent"]) == (0, expect_present), connack
    agent.connack = connack
    return agent


def js_device(broker, agents, name, **options):
    client_id, login = register_device(broker, name)
    return js_connect(broker, agents, client_id, login, **options)


def subscribe(agent, topic, qos):
    reply = agent.call("subscribe", topic=topic, options={"qos": qos})
    assert "error" not in reply, reply
    return reply["granted"]


def publish(agent, topic, payload, qos=0, **options):
    """Publishes; for QoS 1/2 the reply comes when the flow completed."""
    reply = agent.call("publish", topic=topic, payload=payload, options={"qos": qos, **options})
    assert "error" not in reply, reply
    return reply


def message(agent, deadline=10.0):
    return agent.event("message", deadline)


def assert_next_is_fence(agent, topic, publisher):
    publish(publisher, topic, "fence", qos=1)
    event = message(agent)
    assert (event["topic"], event["payload"]) == (topic, "fence")


# ------------------------------------------------------------------ a. persistent sessions

@pytest.mark.parametrize("version", [4, 5])
def test_persistent_session_resume_keeps_subscription_and_queued_order(broker, agents, version):
    client_id, login = register_device(broker, f"js-resume-{version}")
    persistent = {"clean": False}
    if version == 5:
        persistent["properties"] = {"sessionExpiryInterval": 60}
    topic = f"jsresume{version}"
    subscriber = js_connect(broker, agents, client_id, login, protocolVersion=version,
                            **persistent)
    assert subscribe(subscriber, f"{topic}/#", 2) == [2]
    subscriber.call("end")

    publisher = js_device(broker, agents, f"js-resume-{version}-pub")
    for i in range(6):
        publish(publisher, f"{topic}/{i}", f"m{i}", qos=1 + i % 2)

    again = js_connect(broker, agents, client_id, login, expect_present=True,
                       protocolVersion=version, **persistent)
    wire = [again.event("received") for _ in range(6)]
    assert [(e["topic"], e["qos"], e["dup"]) for e in wire] == [
        (f"{topic}/{i}", 1 + i % 2, False) for i in range(6)]
    delivered = sorted((message(again) for _ in range(6)), key=lambda e: e["topic"])
    assert [(e["topic"], e["payload"], e["qos"]) for e in delivered] == [
        (f"{topic}/{i}", f"m{i}", 1 + i % 2) for i in range(6)]
    assert_next_is_fence(again, f"{topic}/fence", publisher)
    if version == 5:
        # Session Expiry Interval 0 on DISCONNECT ends the session with the connection.
        again.call("end", options={"properties": {"sessionExpiryInterval": 0}})
        last = js_connect(broker, agents, client_id, login, protocolVersion=5, **persistent)
        last.call("end", options={"properties": {"sessionExpiryInterval": 0}})
    else:
        again.call("end")
        # Clean session 1 discards the stored session: not present.
        last = js_connect(broker, agents, client_id, login, protocolVersion=4, clean=True)
        last.call("end")


# ------------------------------------------------------------------ c. shared subscriptions

def test_shared_subscription_round_robin_over_three_mqttjs_members(broker, agents):
    members = [js_device(broker, agents, "js-share-a"),
               js_device(broker, agents, "js-share-b"),
               js_device(broker, agents, "js-share-c", protocolVersion=4)]
    for member in members:
        assert subscribe(member, "$share/g/jsshare/t", 1) == [1]
        assert subscribe(member, "jsshare/fence", 1) == [1]
    publisher = js_device(broker, agents, "js-share-pub")
    n = 30
    for i in range(n):
        publish(publisher, "jsshare/t", str(i), qos=1)
    publish(publisher, "jsshare/fence", "fence", qos=1)
    got = []
    for member in members:
        payloads = []
        while (event := message(member))["topic"] != "jsshare/fence":
            payloads.append(event["payload"])
        got.append(payloads)
    assert sorted((p for payloads in got for p in payloads), key=int) == [str(i) for i in range(n)]
    assert [len(payloads) for payloads in got] == [n // 3] * 3


# ------------------------------------------------------------------ d. topic aliases

def test_explicit_topic_alias_from_mqttjs(broker, agents):
    subscriber = js_device(broker, agents, "js-alias-sub")
    assert subscribe(subscriber, "jsalias/#", 1) == [1]
    sender = js_device(broker, agents, "js-alias-explicit")
    assert sender.connack["properties"]["topicAliasMaximum"] == 10
    publish(sender, "jsalias/explicit", "registers", qos=1, properties={"topicAlias": 3})
    publish(sender, "", "uses", qos=1, properties={"topicAlias": 3})
    sent = [sender.event("sent") for _ in range(2)]
    assert [(e["topic"], e["topicAlias"]) for e in sent] == [("jsalias/explicit", 3), ("", 3)]
    got = [message(subscriber) for _ in range(2)]
    assert [(e["topic"], e["payload"]) for e in got] == [("jsalias/explicit", "registers"),
                                                         ("jsalias/explicit", "uses")]


def test_mqttjs_automatic_topic_alias_options(broker, agents):
    subscriber = js_device(broker, agents, "js-auto-sub")
    assert subscribe(subscriber, "jsauto/#", 1) == [1]
    # autoAssignTopicAlias: MQTT.js picks an alias itself and then sends an empty topic.
    assigner = js_device(broker, agents, "js-auto-assign", autoAssignTopicAlias=True)
    for i in range(3):
        publish(assigner, "jsauto/assign", f"a{i}", qos=1)
    sent = [assigner.event("sent") for _ in range(3)]
    alias = sent[0]["topicAlias"]
    assert 1 <= alias <= 10
    assert [(e["topic"], e["topicAlias"]) for e in sent] == [
        ("jsauto/assign", alias), ("", alias), ("", alias)]
    # autoUseTopicAlias: an alias registered once is used for later publishes to its topic.
    user = js_device(broker, agents, "js-auto-use", autoUseTopicAlias=True)
    publish(user, "jsauto/use", "u0", qos=1, properties={"topicAlias": 5})
    publish(user, "jsauto/use", "u1", qos=1)
    sent = [user.event("sent") for _ in range(2)]
    assert [(e["topic"], e["topicAlias"]) for e in sent] == [("jsauto/use", 5), ("", 5)]
    got = [message(subscriber) for _ in range(5)]
    assert [(e["topic"], e["payload"]) for e in got] == [
        ("jsauto/assign", "a0"), ("jsauto/assign", "a1"), ("jsauto/assign", "a2"),
        ("jsauto/use", "u0"), ("jsauto/use", "u1")]


def test_credmq_sets_topic_aliases_for_an_mqttjs_subscriber_that_accepts_them(broker, agents):
    """Server-to-client aliases (3.3.2.3.4): MQTT.js announces a Topic Alias Maximum; credmq
    sends the topic once with an alias, then the alias alone, and MQTT.js resolves it."""
    subscriber = js_device(broker, agents, "js-alias-in", properties={"topicAliasMaximum": 4})
    assert subscribe(subscriber, "jsin/#", 1) == [1]
    sender = js_device(broker, agents, "js-alias-in-pub")
    for i in range(3):
        publish(sender, "jsin/t", f"m{i}", qos=1)
    received = [subscriber.event("received") for _ in range(3)]
    assert [(e["topic"], e["topicAlias"]) for e in received] == [("jsin/t", 1), ("", 1), ("", 1)]
    got = [message(subscriber) for _ in range(3)]
    assert [(e["topic"], e["payload"]) for e in got] == [("jsin/t", "m0"), ("jsin/t", "m1"),
                                                         ("jsin/t", "m2")]


def test_mqttjs_refuses_an_alias_over_credmqs_topic_alias_maximum(broker, agents):
    """MQTT.js checks the Topic Alias Maximum of credmq's CONNACK (10) itself, so alias 11
    never reaches the broker (paho does send it: see test_scenarios_paho.py, 0x94)."""
    sender = js_device(broker, agents, "js-alias-over")
    # QoS 0: at QoS 1/2, MQTT.js 5.16 drops this error and never calls the callback.
    reply = sender.call("publish", topic="jsalias/over", payload="x",
                        options={"qos": 0, "properties": {"topicAlias": 11}})
    assert reply["error"] == "Sending Topic Alias out of range"
    # The connection is still usable, and the refused PUBLISH was never sent.
    publish(sender, "jsalias/after", "ok", qos=1)
    sent = sender.event("sent")
    assert (sent["topic"], sent["topicAlias"]) == ("jsalias/after", None)


# ------------------------------------------------------------------ e. message expiry

def test_message_expiry_for_an_offline_mqttjs_session(broker, agents):
    client_id, login = register_device(broker, "js-expiry-sub")
    persistent = {"clean": False, "properties": {"sessionExpiryInterval": 60}}
    subscriber = js_connect(broker, agents, client_id, login, **persistent)
    assert subscribe(subscriber, "jsexpiry/#", 1) == [1]
    subscriber.call("end")

    publisher = js_device(broker, agents, "js-expiry-pub")
    before_publish = time.monotonic()
    publish(publisher, "jsexpiry/short", "1 s", qos=1, properties={"messageExpiryInterval": 1})
    publish(publisher, "jsexpiry/long", "60 s", qos=1, properties={"messageExpiryInterval": 60})
    acknowledged = time.monotonic()
    wait_for_clock(before_publish + 1.05)

    reconnecting = time.monotonic()
    again = js_connect(broker, agents, client_id, login, expect_present=True, **persistent)
    event = message(again)
    delivered = time.monotonic()
    assert (event["topic"], event["payload"]) == ("jsexpiry/long", "60 s")
    expected = {math.ceil(60 - age) for age in (reconnecting - acknowledged,
                                                delivered - before_publish)}
    assert event["properties"]["messageExpiryInterval"] in expected, (event, expected)
    assert_next_is_fence(again, "jsexpiry/fence", publisher)
    again.call("end", options={"properties": {"sessionExpiryInterval": 0}})


# ------------------------------------------------------------------ f. will delay

def test_mqttjs_will_delay_cancel_publish_and_revocation(broker, agents):
    observer = js_device(broker, agents, "js-will-observer")
    assert subscribe(observer, "jswill/#", 1) == [1]
    persistent = {"clean": False, "properties": {"sessionExpiryInterval": 10}}

    def willing(name):
        client_id, login = register_device(broker, name)
        will = {"topic": f"jswill/{name}", "payload": "gone", "qos": 1, "retain": False,
                "properties": {"willDelayInterval": 2}}
        return client_id, login, js_connect(broker, agents, client_id, login, will=will,
                                            **persistent)

    resumer_id, resumer_login, resumer = willing("js-will-resumer")
    _, _, revoked = willing("js-will-revoked")
    _, _, silent = willing("js-will-silent")
    resumer.call("drop")
    revoked.call("drop")
    silent_dropped = time.monotonic()
    silent.call("drop")

    again = js_connect(broker, agents, resumer_id, resumer_login, expect_present=True,
                       **persistent)
    status, _ = broker.admin.unregister("GID_scn@@@js-will-revoked", broker.instance_id)
    assert status == 200

    event = message(observer, deadline=6.0)
    published_after = time.monotonic() - silent_dropped
    assert (event["topic"], event["payload"], event["qos"]) == ("jswill/js-will-silent", "gone", 1)
    assert 2.0 <= published_after < 4.0, published_after
    assert_next_is_fence(observer, "jswill/fence", observer)
    again.call("end", options={"properties": {"sessionExpiryInterval": 0}})
