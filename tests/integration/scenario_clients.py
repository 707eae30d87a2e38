"""Real MQTT clients for the scenario tests, driven with deadlines: paho-mqtt (Python) and
MQTT.js (a Node agent taking JSON commands on stdin), plus a Mosquitto process for the
side-by-side comparison. Everything here talks to 127.0.0.1 only.
"""
import atexit
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from credmq_harness import DEFAULT_DEADLINE, NODE_CLIENTS, LineReader, device_login

MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")


def register_device(broker, name):
    """Registers GID_scn@@@<name> on a credmq; returns (ClientId, (username, password))."""
    cred = broker.admin.register(f"GID_scn@@@{name}", broker.instance_id)
    return cred["ClientId"], device_login(cred)


def wait_for_clock(moment):
    """Sleeps until time.monotonic() has passed `moment`: only for scenarios where the passing
    of time is the thing under test (expiry, will delay, keep alive)."""
    while (left := moment - time.monotonic()) > 0:
        time.sleep(left)


class EventLog:
    """Events appended by a client thread; take() removes the first one matching a predicate,
    waiting for it up to a deadline."""

    def __init__(self):
        self._events = []
        self._cond = threading.Condition()

    def put(self, event):
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def take(self, predicate, deadline=DEFAULT_DEADLINE, what="event"):
        end = time.monotonic() + deadline
        with self._cond:
            while True:
                for i, event in enumerate(self._events):
                    if predicate(event):
                        return self._events.pop(i)
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {what}; have {self._events}")
                self._cond.wait(remaining)

    def pending(self, predicate=lambda e: True):
        with self._cond:
            return [e for e in self._events if predicate(e)]


def _properties(packet_type, **values):
    if not values:
        return None
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


# paho 1.6 hands a QoS 2 message to on_message only when PUBREL arrives, so the order of
# on_message calls is not the order of PUBLISH packets on the wire; its debug log line is.
_RECEIVED_PUBLISH = re.compile(r"Received PUBLISH \(d(\d), q(\d), r(\d), m(\d+)\), '(.*)', ")


class PahoClient:
    """One paho-mqtt 1.6 client whose network loop runs on a thread of ours (so paho never
    reconnects by itself); callbacks become events in `self.events`."""

    def __init__(self, port, client_id, version=5, clean=True, login=None):
        self.port = port
        self.version = version
        kwargs = {} if version == 5 else {"clean_session": clean}
        self.client = paho.Client(client_id=client_id,
                                  protocol=paho.MQTTv5 if version == 5 else paho.MQTTv311,
                                  **kwargs)
        if login:
            self.client.username_pw_set(*login)
        self.clean = clean
        self.events = EventLog()
        self._thread = None
        self._stop = threading.Event()
        c = self.client
        c.on_connect = self._on_connect
        c.on_message = lambda _c, _u, msg: self.events.put(("message", msg))
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = lambda _c, _u, mid: self.events.put(("published", mid))
        c.on_disconnect = self._on_disconnect
        c.on_log = self._on_log

    def _on_connect(self, _c, _u, flags, rc, properties=None):
        code = rc.value if hasattr(rc, "value") else rc
        self.events.put(("connack", code, flags["session present"], properties))

    def _on_subscribe(self, _c, _u, mid, granted, properties=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        self.events.put(("suback", mid, codes))

    def _on_unsubscribe(self, _c, _u, mid, properties=None, codes=None):
        if codes is not None and not isinstance(codes, list):
            codes = [codes]
        self.events.put(("unsuback", mid, [getattr(c, "value", c) for c in codes or []]))

    def _on_log(self, _c, _u, _level, line):
        match = _RECEIVED_PUBLISH.match(line)
        if match:
            dup, qos, retain, _, topic = match.groups()
            self.events.put(("wire", topic, int(qos), dup == "1", retain == "1"))

    def _on_disconnect(self, _c, _u, rc, properties=None):
        self.events.put(("disconnect", rc.value if hasattr(rc, "value") else rc))

    def _run(self):
        while not self._stop.is_set():
            if self.client.loop(timeout=0.02) != paho.MQTT_ERR_SUCCESS:
                return  # connection closed or lost: on_disconnect has run

    def connect(self, keepalive=60, session_expiry=None, will=None, will_properties=None,
                deadline=DEFAULT_DEADLINE):
        """Returns (CONNACK code, session present)."""
        if will:
            topic, payload, qos = will
            self.client.will_set(topic, payload, qos,
                                 properties=_properties(PacketTypes.WILLMESSAGE,
                                                        **(will_properties or {})))
        kwargs = {}
        if self.version == 5:
            kwargs["clean_start"] = self.clean
            if session_expiry is not None:
                kwargs["properties"] = _properties(PacketTypes.CONNECT,
                                                   SessionExpiryInterval=session_expiry)
        self.client.connect("127.0.0.1", self.port, keepalive=keepalive, **kwargs)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        _, code, present, self.connack_properties = self.events.take(
            lambda e: e[0] == "connack", deadline, "CONNACK")
        return code, bool(present)

    def subscribe(self, topic, qos=0, deadline=DEFAULT_DEADLINE, **options):
        if self.version == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            _, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos, **options))
        else:
            _, mid = self.client.subscribe(topic, qos)
        return self.events.take(lambda e: e[0] == "suback" and e[1] == mid, deadline,
                                f"SUBACK for {topic}")[2]

    def unsubscribe(self, topic, deadline=DEFAULT_DEADLINE):
        _, mid = self.client.unsubscribe(topic)
        return self.events.take(lambda e: e[0] == "unsuback" and e[1] == mid, deadline,
                                f"UNSUBACK for {topic}")[2]

    def publish(self, topic, payload, qos=0, retain=False, deadline=DEFAULT_DEADLINE,
                **properties):
        """Publishes; for QoS 1/2 waits until the flow completed (PUBACK / PUBCOMP)."""
        info = self.client.publish(topic, payload, qos, retain,
                                   properties=_properties(PacketTypes.PUBLISH, **properties))
        if qos:
            self.events.take(lambda e: e[0] == "published" and e[1] == info.mid, deadline,
                             f"acknowledgement of {topic}")
        return info

    def message(self, deadline=DEFAULT_DEADLINE):
        return self.events.take(lambda e: e[0] == "message", deadline, "message")[1]

    def messages(self, count, deadline=DEFAULT_DEADLINE):
        end = time.monotonic() + deadline
        return [self.message(max(0.0, end - time.monotonic())) for _ in range(count)]

    def wire_publishes(self, count, deadline=DEFAULT_DEADLINE):
        """The next `count` PUBLISH packets received, in wire order: (topic, qos, dup)."""
        end = time.monotonic() + deadline
        return [self.events.take(lambda e: e[0] == "wire", max(0.0, end - time.monotonic()),
                                 "PUBLISH")[1:4] for _ in range(count)]

    def wait_disconnect(self, deadline=DEFAULT_DEADLINE):
        return self.events.take(lambda e: e[0] == "disconnect", deadline, "disconnect")[1]

    def disconnect(self, session_expiry=None, reason=None):
        """A clean DISCONNECT (optionally changing the Session Expiry Interval)."""
        kwargs = {}
        if reason is not None:
            from paho.mqtt.reasoncodes import ReasonCodes
            kwargs["reasoncode"] = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason)
        if session_expiry is not None:
            kwargs["properties"] = _properties(PacketTypes.DISCONNECT,
                                               SessionExpiryInterval=session_expiry)
        self.client.disconnect(**kwargs)
        self.wait_disconnect()
        self._join()

    def drop(self):
        """Closes the socket without DISCONNECT, as a device losing its network would."""
        self._stop.set()
        self._join()
        sock = self.client.socket()
        if sock:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _join(self):
        self._stop.set()
        if self._thread:
            self._thread.join(DEFAULT_DEADLINE)
            self._thread = None


def _spawn_agent_process():
    return subprocess.Popen(["node", os.path.join(NODE_CLIENTS, "mqttjs_agent.js")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# Node takes ~0.4 s to load MQTT.js: a few processes are kept started ahead of use.
_spare_agents = []
_SPARE_AGENTS = 2


@atexit.register
def _close_spare_agents():
    for proc in _spare_agents:
        proc.kill()


class MqttJsAgent:
    """One MQTT.js client in a Node process (node/mqttjs_agent.js): commands go as JSON lines
    on stdin; replies and client events come back as JSON lines in `self.events`."""

    def __init__(self):
        while len(_spare_agents) <= _SPARE_AGENTS:
            _spare_agents.append(_spawn_agent_process())
        self.proc = _spare_agents.pop(0)
        self.events = EventLog()
        self._next_id = 0
        threading.Thread(target=self._pump, daemon=True).start()
        self.stderr = LineReader(self.proc.stderr)

    def _pump(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put({"event": "exit"})

    def send(self, op, **fields):
        self._next_id += 1
        fields.update(op=op, id=self._next_id)
        self.proc.stdin.write(json.dumps(fields) + "\n")
        self.proc.stdin.flush()
        return self._next_id

    def call(self, op, deadline=DEFAULT_DEADLINE, **fields):
        """Sends a command and returns its reply (raises if the command failed)."""
        command_id = self.send(op, **fields)
        reply = self.take(lambda e: e.get("event") == "reply" and e.get("id") == command_id,
                          deadline, f"reply to {op}")
        return reply

    def take(self, predicate, deadline=DEFAULT_DEADLINE, what="event"):
        return self.events.take(predicate, deadline, what)

    def event(self, kind, deadline=DEFAULT_DEADLINE):
        return self.take(lambda e: e.get("event") == kind, deadline, kind)

    def connect(self, port, client_id, login=None, version=5, deadline=DEFAULT_DEADLINE,
                **options):
        """Returns the CONNACK event (sessionPresent, reasonCode, properties)."""
        options.update(clientId=client_id, protocol="mqtt", host="127.0.0.1", port=port)
        options.setdefault("protocolVersion", version)
        if login:
            options.update(username=login[0], password=login[1])
        self.send("connect", options=options)
        return self.take(lambda e: e.get("event") in ("connect", "error"), deadline, "CONNACK")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(DEFAULT_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """Debian's Mosquitto 2.0 on a free loopback port: anonymous, no persistence, config in a
    temp dir; stopped by its PID."""

    def __init__(self, extra_config=()):
        self._tmp = tempfile.TemporaryDirectory(prefix="mosquitto-sbs-")
        self.extra_config = list(extra_config)
        self.proc = None
        self.mqtt_port = None

    def start(self, deadline=DEFAULT_DEADLINE):
        for _ in range(3):  # the free port may be taken between probe and bind
            self.mqtt_port = free_port()
            config = os.path.join(self._tmp.name, "mosquitto.conf")
            with open(config, "w") as f:
                f.write("\n".join([f"listener {self.mqtt_port} 127.0.0.1",
                                   "allow_anonymous true", "persistence false",
                                   "log_dest stderr", "log_type error", "log_type warning",
                                   "log_type notice", "log_type information",
                                   *self.extra_config]) + "\n")
            self.proc = subprocess.Popen([MOSQUITTO_BIN, "-c", config],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True)
            self.log = LineReader(self.proc.stderr)
            try:
                self.log.read_until(" running", deadline)
                return self
            except AssertionError:
                self.stop()
        raise AssertionError("mosquitto did not start: " + "\n".join(self.log.lines))

    def stop(self, deadline=DEFAULT_DEADLINE):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop()
        self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


__all__ = ["EventLog", "PahoClient", "MqttJsAgent", "Mosquitto", "free_port", "register_device",
           "wait_for_clock"]
