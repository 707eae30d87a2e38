"""Persistent sessions and retained messages survive a restart of the real binary (SIGTERM
and kill -9 after a save), a device revoked while its session was saved never gets it back,
and --persist-sessions=false keeps nothing. Clients: paho-mqtt (MQTT 3.1.1, Clean Session 0,
QoS 1) and raw publishers."""
import os
import queue
import sqlite3
import subprocess
import threading

import paho.mqtt.client as paho
import pytest

from credmq_harness import CREDMQ_BIN, Credmq, RawClient, device_login, publish_packet, \
    wait_until

DEADLINE = 10


class Device:
    """A paho-mqtt 3.1.1 client; messages land in a queue, CONNACK flags are kept."""

    def __init__(self, port, cred, clean_session=False):
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present = None
        self.rc = None
        self.client = paho.Client(client_id=cred["ClientId"], clean_session=clean_session,
                                  protocol=paho.MQTTv311)
        self.client.username_pw_set(*device_login(cred))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda client, userdata, mid, granted: self.subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.put(
            (message.topic, message.payload, message.qos, message.retain))
        self.client.reconnect_delay_set(60, 60)  # no automatic reconnect during a test
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(DEADLINE), "no CONNACK"
        assert self.rc == 0, f"CONNACK {self.rc}"

    def _on_connect(self, client, userdata, flags, rc):
        self.session_present = flags.get("session present")
        self.rc = rc
        self.connected.set()

    def subscribe(self, topic_filter, qos=1):
        self.subscribed.clear()
        self.client.subscribe(topic_filter, qos)
        assert self.subscribed.wait(DEADLINE), "no SUBACK"

    def next_message(self):
        return self.messages.get(timeout=DEADLINE)

    def close(self):
        """DISCONNECT (the session stays, offline) and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(port, cred, messages):
    """Publishes (topic, payload, retain) tuples at QoS 1, each acknowledged."""
    publisher = RawClient(port)
    assert publisher.connect(cred["ClientId"], *device_login(cred)) == 0
    for packet_id, (topic, payload, retain) in enumerate(messages, start=1):
        publisher.send(publish_packet(topic, payload, qos=1, packet_id=packet_id, retain=retain))
        assert publisher.read_packet()[0] == 4  # PUBACK
    publisher.close()


def saved_rows(data_dir, sql, *args):
    """Reads the broker's saved state from credmq.db while credmq runs (WAL: no blocking)."""
    db = sqlite3.connect(os.path.join(data_dir, "credmq.db"), timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def queued_payloads(data_dir, client_id):
    return [row[0] for row in saved_rows(
        data_dir,
        "SELECT m.payload FROM broker_queue q JOIN broker_messages m "
        "ON m.instance_id = q.instance_id AND m.message_id = q.message_id "
        "WHERE q.client_id = ? ORDER BY q.position", client_id)]


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path)


def test_graceful_restart_keeps_the_session_its_queue_and_retained(data_dir):
    broker = Credmq(data_dir=data_dir).start()
    try:
        sub_cred = broker.admin.register("GID_per@@@sub", broker.instance_id)
        pub_cred = broker.admin.register("GID_per@@@pub", broker.instance_id)
        sub = Device(broker.mqtt_port, sub_cred)
        assert sub.session_present == 0
        sub.subscribe("p/#")
        sub.close()
        publish_all(broker.mqtt_port, pub_cred,
                    [("p/1", b"one", False), ("p/2", b"two", False), ("p/3", b"three", False),
                     ("p/retained", b"kept", True)])
        assert broker.stop() == 0  # SIGTERM: a graceful stop saves everything
        broker = Credmq(data_dir=data_dir).start()

        sub = Device(broker.mqtt_port, sub_cred)
        assert sub.session_present == 1
        assert [sub.next_message() for _ in range(4)] == [
            ("p/1", b"one", 1, 0), ("p/2", b"two", 1, 0), ("p/3", b"three", 1, 0),
            ("p/retained", b"kept", 1, 0)]
        # The subscription came back with the session.
        publish_all(broker.mqtt_port, pub_cred, [("p/4", b"four", False)])
        assert sub.next_message() == ("p/4", b"four", 1, 0)
        sub.close()

        # The retained message survived too: a new subscription gets it with RETAIN 1.
        other_cred = broker.admin.register("GID_per@@@other", broker.instance_id)
        other = Device(broker.mqtt_port, other_cred, clean_session=True)
        other.subscribe("p/retained")
        assert other.next_message() == ("p/retained", b"kept", 1, 1)
        other.close()
    finally:
        broker.stop()


def test_kill_9_after_a_save_keeps_what_was_saved(data_dir):
    args = ["--session-save-interval", "100"]
    broker = Credmq(args, data_dir=data_dir).start()
    try:
        sub_cred = broker.admin.register("GID_per@@@sub", broker.instance_id)
        pub_cred = broker.admin.register("GID_per@@@pub", broker.instance_id)
        sub = Device(broker.mqtt_port, sub_cred)
        sub.subscribe("k/#")
        sub.close()
        publish_all(broker.mqtt_port, pub_cred, [("k/1", b"first", False), ("k/2", b"second", False)])
        # Wait on the data itself: the periodic save has written both queued messages.
        wait_until(lambda: queued_payloads(data_dir, "GID_per@@@sub") == [b"first", b"second"],
                   what="the queue in credmq.db")
        broker.stop(sig=9)
        assert broker.proc.returncode == -9
        broker = Credmq(args, data_dir=data_dir).start()

        sub = Device(broker.mqtt_port, sub_cred)
        assert sub.session_present == 1
        assert sub.next_message() == ("k/1", b"first", 1, 0)
        assert sub.next_message() == ("k/2", b"second", 1, 0)
        sub.close()
    finally:
        broker.stop()


@pytest.mark.parametrize("action", ["UnRegisterDeviceCredential", "RefreshDeviceCredential"])
def test_credential_revoked_before_the_restart_never_gets_its_session_back(data_dir, action):
    broker = Credmq(data_dir=data_dir).start()
    try:
        sub_cred = broker.admin.register("GID_per@@@victim", broker.instance_id)
        pub_cred = broker.admin.register("GID_per@@@pub", broker.instance_id)
        sub = Device(broker.mqtt_port, sub_cred)
        sub.subscribe("v/#")
        sub.close()
        publish_all(broker.mqtt_port, pub_cred, [("v/1", b"secret", False)])
        assert broker.stop() == 0

        # Restarted without periodic saves: the revocation below drops the session in memory
        # only, and the kill -9 leaves credmq.db holding it, bound to the revoked serial.
        broker = Credmq(["--session-save-interval", "3600000"], data_dir=data_dir).start()
        status, body = broker.admin.call(action, method="POST", ClientId=sub_cred["ClientId"],
                                         InstanceId=broker.instance_id)
        assert status == 200, body
        broker.stop(sig=9)
        assert saved_rows(data_dir, "SELECT COUNT(*) FROM broker_sessions WHERE client_id = ?",
                          "GID_per@@@victim") == [(1,)]
        assert queued_payloads(data_dir, "GID_per@@@victim") == [b"secret"]

        broker = Credmq(data_dir=data_dir).start()
        if action == "UnRegisterDeviceCredential":
            new_cred = broker.admin.register(sub_cred["ClientId"], broker.instance_id)
        else:
            new_cred = body["DeviceCredential"]
        sub = Device(broker.mqtt_port, new_cred)
        assert sub.session_present == 0
        # Nothing of the old session arrives: the first message is one sent from now on.
        sub.subscribe("v/#")
        publish_all(broker.mqtt_port, pub_cred, [("v/marker", b"new", False)])
        assert sub.next_message() == ("v/marker", b"new", 1, 0)
        sub.close()
        assert broker.stop() == 0
        assert b"secret" not in [row[0] for row in saved_rows(
            data_dir, "SELECT payload FROM broker_messages")]
    finally:
        broker.stop()


def test_persist_sessions_false_keeps_nothing(data_dir):
    args = ["--persist-sessions=false"]
    broker = Credmq(args, data_dir=data_dir).start()
    try:
        sub_cred = broker.admin.register("GID_per@@@sub", broker.instance_id)
        pub_cred = broker.admin.register("GID_per@@@pub", broker.instance_id)
        sub = Device(broker.mqtt_port, sub_cred)
        sub.subscribe("n/#")
        sub.close()
        publish_all(broker.mqtt_port, pub_cred, [("n/1", b"lost", False), ("n/r", b"r", True)])
        assert broker.stop() == 0
        assert saved_rows(data_dir, "SELECT COUNT(*) FROM broker_sessions") == [(0,)]
        assert saved_rows(data_dir, "SELECT COUNT(*) FROM broker_messages") == [(0,)]
        broker = Credmq(args, data_dir=data_dir).start()
        sub = Device(broker.mqtt_port, sub_cred)
        assert sub.session_present == 0
        sub.close()
    finally:
        broker.stop()


def test_session_options_are_range_checked(data_dir):
    for flag in (["--session-save-interval", "5"], ["--max-queued-messages", "-1"],
                 ["--persist-sessions=maybe"]):
        run = subprocess.run([CREDMQ_BIN, "--data-dir", data_dir, *flag],
                             capture_output=True, text=True, timeout=DEADLINE)
        assert run.returncode == 2, (flag, run.stderr)
