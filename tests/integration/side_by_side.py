#!/usr/bin/python3
"""Runs the same scripted MQTT scenarios against credmq (anonymous instance) and Debian's
Mosquitto 2.0 and prints what each broker did, side by side.

    CREDMQ_BIN=build/server/credmq /usr/bin/python3 tests/integration/side_by_side.py \\
        [--markdown docs/side-by-side.md]

Every client is a raw MQTT client (exact bytes, exact reason codes) on 127.0.0.1. Each
observation waits on a packet with a deadline; "nothing else arrived" is checked with a fence
message published afterwards (a session receives in order). Only where time passing is the
subject (expiry, will delay, keep alive, $SYS) does a scenario wait for the clock.

As a pytest module (`pytest side_by_side.py`) it only checks that every scenario completes
against both brokers; the behaviour itself is asserted by the test_*.py modules.
"""
import argparse
import collections
import os
import platform
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from credmq_harness import Credmq, RawClient, _str, _vbi  # noqa: E402
from scenario_clients import MOSQUITTO_BIN, Mosquitto, wait_for_clock  # noqa: E402

QUICK = 2.0  # deadline for a packet that should come at once

# ------------------------------------------------------------------ MQTT 5 properties

_PROPERTIES = {  # name: (identifier, kind)
    "payload_format": (0x01, "byte"), "message_expiry": (0x02, "u32"),
    "content_type": (0x03, "str"), "response_topic": (0x08, "str"),
    "correlation_data": (0x09, "bin"), "subscription_id": (0x0B, "vbi"),
    "session_expiry": (0x11, "u32"), "assigned_client_id": (0x12, "str"),
    "server_keep_alive": (0x13, "u16"), "authentication_method": (0x15, "str"),
    "authentication_data": (0x16, "bin"), "request_problem_info": (0x17, "byte"),
    "will_delay": (0x18, "u32"), "request_response_info": (0x19, "byte"),
    "response_info": (0x1A, "str"), "server_reference": (0x1C, "str"),
    "reason_string": (0x1F, "str"), "receive_maximum": (0x21, "u16"),
    "topic_alias_maximum": (0x22, "u16"), "topic_alias": (0x23, "u16"),
    "maximum_qos": (0x24, "byte"), "retain_available": (0x25, "byte"),
    "user_property": (0x26, "pair"), "maximum_packet_size": (0x27, "u32"),
    "wildcard_available": (0x28, "byte"), "subscription_ids_available": (0x29, "byte"),
    "shared_available": (0x2A, "byte"),
}
_BY_ID = {ident: (name, kind) for name, (ident, kind) in _PROPERTIES.items()}
_REPEATABLE = {"subscription_id", "user_property"}


def encode_properties(props):
    out = b""
    for name, value in (props or {}).items():
        ident, kind = _PROPERTIES[name]
        for item in (value if name in _REPEATABLE else [value]):
            out += _vbi(ident)
            if kind == "byte":
                out += bytes([item])
            elif kind == "u16":
                out += struct.pack("!H", item)
            elif kind == "u32":
                out += struct.pack("!I", item)
            elif kind == "vbi":
                out += _vbi(item)
            elif kind == "pair":
                out += _str(item[0]) + _str(item[1])
            else:
                out += _str(item)
    return _vbi(len(out)) + out


def _read_vbi(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def decode_properties(data, i):
    length, i = _read_vbi(data, i)
    end, props = i + length, {}
    while i < end:
        ident, i = _read_vbi(data, i)
        name, kind = _BY_ID[ident]
        if kind == "byte":
            value, i = data[i], i + 1
        elif kind == "u16":
            value, i = struct.unpack_from("!H", data, i)[0], i + 2
        elif kind == "u32":
            value, i = struct.unpack_from("!I", data, i)[0], i + 4
        elif kind == "vbi":
            value, i = _read_vbi(data, i)
        elif kind == "pair":
            n = struct.unpack_from("!H", data, i)[0]
            key = data[i + 2:i + 2 + n].decode()
            i += 2 + n
            n = struct.unpack_from("!H", data, i)[0]
            value, i = (key, data[i + 2:i + 2 + n].decode()), i + 2 + n
        else:
            n = struct.unpack_from("!H", data, i)[0]
            value, i = data[i + 2:i + 2 + n], i + 2 + n
            if kind == "str":
                value = value.decode()
        if name in _REPEATABLE:
            props.setdefault(name, []).append(value)
        else:
            props[name] = value
    return props, end


# ------------------------------------------------------------------ packets

def connect_packet(client_id, version, clean, keepalive, props, will):
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will:
        topic, message, qos, retain, will_props = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += (encode_properties(will_props) if version == 5 else b"")
        payload += _str(topic) + _str(message)
    variable = _str(b"MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    variable += encode_properties(props) if version == 5 else b""
    body = variable + payload
    return b"\x10" + _vbi(len(body)) + body


def publish_packet(topic, payload, version, qos, packet_id, retain, props):
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"")
    body += (encode_properties(props) if version == 5 else b"") + payload
    return bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + _vbi(len(body)) + body


def ack_packet(kind, packet_id):
    first = {4: 0x40, 5: 0x50, 6: 0x62, 7: 0x70}[kind]
    return bytes([first, 2]) + struct.pack("!H", packet_id)


_fences = 0


def new_fence():
    """A payload no other fence has: a fence left unread by an earlier step is not taken for
    this one."""
    global _fences
    _fences += 1
    return f"fence-{_fences}".encode()


class Peer:
    """A raw MQTT client. PUBLISHes received are parsed and queued (and acknowledged unless
    `auto_ack` is off); PUBREL is answered. Reading never blocks past a deadline."""

    def __init__(self, port, version=5, auto_ack=True):
        self.raw = RawClient(port)
        self.version = version
        self.auto_ack = auto_ack
        self.publishes = collections.deque()
        self.closed = None  # None while open; else "DISCONNECT 0x.." or "closed"
        self.disconnect_reason = None
        self._next_id = 1
        self._aliases = {}  # Topic Aliases the broker set on this connection

    def packet_id(self):
        self._next_id += 1
        return self._next_id - 1

    def send(self, data):
        try:
            self.raw.send(data)
        except OSError:
            pass  # closed by the broker: the next read reports how

    def _read(self, deadline):
        """One packet, or None on timeout or once closed."""
        if self.closed:
            return None
        try:
            kind, flags, body = self.raw.read_packet(max(deadline, 0.001))
        except TimeoutError:
            return None
        except (EOFError, ConnectionError):
            self.closed = (f"DISCONNECT 0x{self.disconnect_reason:02X}"
                           if self.disconnect_reason is not None else "closed")
            return None
        if kind == 3:
            self.publishes.append(self._parse_publish(flags, body))
        elif kind == 6:
            self.send(ack_packet(7, struct.unpack("!H", body[:2])[0]))
        elif kind == 14 and self.disconnect_reason is None:
            self.disconnect_reason = body[0] if body else 0
        return kind, flags, body

    def _parse_publish(self, flags, body):
        qos = (flags >> 1) & 3
        n = struct.unpack_from("!H", body, 0)[0]
        topic, i = body[2:2 + n].decode(), 2 + n
        packet_id = None
        if qos:
            packet_id, i = struct.unpack_from("!H", body, i)[0], i + 2
        props = {}
        if self.version == 5:
            props, i = decode_properties(body, i)
        # As a client does: a topic with an alias sets it, an empty topic uses it.
        if "topic_alias" in props:
            if topic:
                self._aliases[props["topic_alias"]] = topic
            else:
                topic = self._aliases.get(props["topic_alias"], "")
        if qos and self.auto_ack:
            self.send(ack_packet(4 if qos == 1 else 5, packet_id))
        return {"topic": topic, "payload": body[i:], "qos": qos, "retain": bool(flags & 1),
                "dup": bool(flags & 8), "packet_id": packet_id, "props": props,
                "at": time.monotonic()}

    def wait_for(self, predicate, deadline=QUICK):
        """The first packet (kind, flags, body) matching, or None."""
        end = time.monotonic() + deadline
        while True:
            packet = self._read(end - time.monotonic())
            if packet is None:
                return None
            if predicate(packet):
                return packet

    def connect(self, client_id, clean=True, keepalive=60, props=None, will=None):
        """Returns {"code", "present", "props"} from the CONNACK, or {"code": None} with
        `closed` set if the broker closed instead."""
        self.send(connect_packet(client_id, self.version, clean, keepalive, props, will))
        packet = self.wait_for(lambda p: p[0] == 2)
        if packet is None:
            return {"code": None, "present": None, "props": {}}
        body = packet[2]
        props = decode_properties(body, 2)[0] if self.version == 5 and len(body) > 2 else {}
        return {"code": body[1], "present": body[0] & 1, "props": props}

    def subscribe(self, *filters, props=None):
        """filters: (filter, options byte) pairs. Returns the SUBACK codes."""
        packet_id = self.packet_id()
        body = struct.pack("!H", packet_id)
        body += encode_properties(props) if self.version == 5 else b""
        for topic_filter, options in filters:
            body += _str(topic_filter) + bytes([options])
        self.send(b"\x82" + _vbi(len(body)) + body)
        packet = self.wait_for(lambda p: p[0] == 9)
        if packet is None:
            return None
        rest = packet[2][2:]
        if self.version == 5:
            rest = rest[decode_properties(rest, 0)[1]:]
        return list(rest)

    def unsubscribe(self, *filters):
        packet_id = self.packet_id()
        body = struct.pack("!H", packet_id) + (b"\x00" if self.version == 5 else b"")
        body += b"".join(_str(f) for f in filters)
        self.send(b"\xa2" + _vbi(len(body)) + body)
        packet = self.wait_for(lambda p: p[0] == 11)
        if packet is None:
            return None
        rest = packet[2][2:]
        if self.version == 5:
            rest = rest[decode_properties(rest, 0)[1]:]
        return list(rest)

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None):
        """Publishes; QoS 1/2 wait for the flow to complete. Returns the PUBACK/PUBREC code
        (0 for QoS 0 and 3.1.1), or None if no acknowledgement came."""
        packet_id = self.packet_id() if qos else 0
        if isinstance(payload, str):
            payload = payload.encode()
        self.send(publish_packet(topic, payload, self.version, qos, packet_id, retain, props))
        if not qos:
            return 0
        expected = 4 if qos == 1 else 5
        packet = self.wait_for(
            lambda p: p[0] == expected and struct.unpack("!H", p[2][:2])[0] == packet_id)
        if packet is None:
            return None
        code = packet[2][2] if len(packet[2]) > 2 else 0
        if qos == 2 and code < 0x80:
            self.send(b"\x62\x02" + struct.pack("!H", packet_id))
            self.wait_for(lambda p: p[0] == 7 and struct.unpack("!H", p[2][:2])[0] == packet_id)
        return code

    def message(self, deadline=QUICK):
        """The next PUBLISH received, or None."""
        end = time.monotonic() + deadline
        while not self.publishes:
            if self._read(end - time.monotonic()) is None and not self.publishes:
                return None
        return self.publishes.popleft()

    def until_fence(self, fence_topic, publisher=None, deadline=QUICK):
        """Publishes a fence (QoS 1) and returns the messages received before it."""
        token = new_fence()
        (publisher or self).publish(fence_topic, token, qos=1)
        return self.collect_until(fence_topic, token, deadline)

    def collect_until(self, fence_topic, token, deadline=QUICK):
        """The messages received before the fence `token` on `fence_topic` (other fences on
        that topic, left from earlier steps, are skipped)."""
        before = []
        while True:
            message = self.message(deadline)
            if message is None:
                raise AssertionError(f"fence {token!r} on {fence_topic} never arrived")
            if message["topic"] != fence_topic:
                before.append(message)
            elif message["payload"] == token:
                return before

    def disconnect(self, reason=0, props=None):
        if self.version == 5:
            body = bytes([reason]) + encode_properties(props)
            self.send(b"\xe0" + _vbi(len(body)) + body)
        else:
            self.send(b"\xe0\x00")
        self.wait_closed()

    def wait_closed(self, deadline=QUICK):
        """Reads until the broker closes: "DISCONNECT 0x.." (5.0, reason seen first),
        "closed", or "open" if it did not close within the deadline."""
        end = time.monotonic() + deadline
        while not self.closed:
            if self._read(end - time.monotonic()) is None and not self.closed:
                return "open"
        return self.closed

    def drop(self):
        """Closes the socket without DISCONNECT."""
        self.raw.close()
        self.closed = "dropped"


def connected(port, client_id, version=5, **kw):
    peer = Peer(port, version)
    connack = peer.connect(client_id, **kw)
    assert connack["code"] == 0, (client_id, connack)
    return peer


def qos_list(messages):
    return ", ".join(f"{m['topic']} q{m['qos']}" for m in messages) or "none"


def fmt_code(code):
    return "none" if code is None else f"0x{code:02X}"


class Approx(float):
    """A measured value: the same as another within a tolerance."""

    def __new__(cls, value, tolerance, text=None):
        measured = super().__new__(cls, value)
        measured.tolerance = tolerance
        measured.text = text if text is not None else f"{value:g}"
        return measured

    def __str__(self):
        return self.text


class Timing(Approx):
    """A measured duration, shown to 0.1 s."""

    def __new__(cls, value, tolerance):
        return super().__new__(cls, value, tolerance, f"{value:.1f} s")


# credmq checks will delays and session expiry in a 1 s sweep: up to 1 s late by design.
def sweep_timing(value):
    return Timing(value, 1.0)


def keep_alive_timing(value):
    return Timing(value, 0.6)


# ------------------------------------------------------------------ scenarios

SCENARIOS = []


def scenario(title):
    def register(function):
        SCENARIOS.append((title, function))
        return function
    return register


@scenario("CONNACK properties (5.0, plain CONNECT)")
def connack_properties(port, record):
    peer = Peer(port)
    props = peer.connect("cp")["props"]
    for name in ("receive_maximum", "maximum_qos", "retain_available", "maximum_packet_size",
                 "topic_alias_maximum", "wildcard_available", "subscription_ids_available",
                 "shared_available", "server_keep_alive"):
        record(name.replace("_", " "), props.get(name, "absent"))
    peer.disconnect()


@scenario("Persistent session, 3.1.1 (clean session 0)")
def persistent_311(port, record):
    sub = Peer(port, 4)
    record("first CONNECT: session present", sub.connect("ps4-sub", clean=False)["present"])
    record("SUBSCRIBE QoS 2: granted", sub.subscribe(("ps4/#", 2)))
    sub.disconnect()
    pub = connected(port, "ps4-pub", 4)
    for i in range(4):
        pub.publish(f"ps4/{i}", f"m{i}", qos=1 + i % 2)
    sub = Peer(port, 4)
    record("resume: session present", sub.connect("ps4-sub", clean=False)["present"])
    record("queued while offline (wire order)", qos_list(sub.until_fence("ps4/fence", pub)))
    sub.disconnect()
    sub = Peer(port, 4)
    record("then clean session 1: session present", sub.connect("ps4-sub")["present"])
    sub.disconnect()
    pub.disconnect()


@scenario("Persistent session, 5.0 (Clean Start 0, Session Expiry 60)")
def persistent_5(port, record):
    expiry = {"session_expiry": 60}
    sub = Peer(port)
    record("first CONNECT: session present",
           sub.connect("ps5-sub", clean=False, props=expiry)["present"])
    sub.subscribe(("ps5/#", 2))
    sub.disconnect()
    pub = connected(port, "ps5-pub")
    for i in range(4):
        pub.publish(f"ps5/{i}", f"m{i}", qos=1 + i % 2)
    sub = Peer(port)
    record("resume: session present",
           sub.connect("ps5-sub", clean=False, props=expiry)["present"])
    record("queued while offline (wire order)", qos_list(sub.until_fence("ps5/fence", pub)))
    sub.disconnect(props={"session_expiry": 0})
    sub = Peer(port)
    record("after DISCONNECT with Session Expiry 0: session present",
           sub.connect("ps5-sub", clean=False, props=expiry)["present"])
    sub.disconnect(props={"session_expiry": 0})
    pub.disconnect()


@scenario("Offline queue, default limits (1100 QoS 1 messages to an offline session)")
def offline_queue(port, record):
    sub = connected(port, "oq-sub", 4, clean=False)
    sub.subscribe(("oq/#", 1))
    sub.disconnect()
    pub = connected(port, "oq-pub", 4)
    for i in range(1100):
        pub.publish("oq/t", str(i), qos=1)
    sub = connected(port, "oq-sub", 4, clean=False)
    got = sub.until_fence("oq/fence", pub, deadline=5.0)
    payloads = [int(m["payload"]) for m in got]
    record("delivered on resume", len(payloads))
    record("which ones", f"{payloads[0]}..{payloads[-1]}" if payloads else "none")
    sub.disconnect()
    Peer(port, 4).connect("oq-sub")  # clean session: drop it
    pub.disconnect()


@scenario("Shared subscriptions, 5.0 ($share/g/sh/t)")
def shared(port, record):
    online = connected(port, "sh-a")
    keeper = connected(port, "sh-b", props={"session_expiry": 60})
    for member in (online, keeper):
        member.subscribe(("$share/g/sh/t", 1), ("sh/fence", 1))
    pub = connected(port, "sh-pub")
    for i in range(10):
        pub.publish("sh/t", str(i), qos=1)
    token = new_fence()
    pub.publish("sh/fence", token, qos=1)
    counts = [len(m.collect_until("sh/fence", token)) for m in (online, keeper)]
    record("2 members online, 10 QoS 1 messages: per member", "/".join(map(str, counts)))

    keeper.disconnect()  # its session stays (Session Expiry 60)
    for i in range(4):
        pub.publish("sh/t", str(i), qos=1)
    to_online = len(online.until_fence("sh/fence", pub))
    keeper = connected(port, "sh-b", clean=False, props={"session_expiry": 60})
    to_keeper = len(keeper.until_fence("sh/fence", pub))
    record("one member offline with its session kept, 4 messages: online / offline (on resume)",
           f"{to_online}/{to_keeper}")
    keeper.disconnect(props={"session_expiry": 0})

    holder = Peer(port, auto_ack=False)
    holder.connect("sh-h")
    holder.subscribe(("$share/g/sh/t", 1), ("sh/fence", 1))
    for i in range(6):
        pub.publish("sh/t", str(i), qos=1)
    token = new_fence()
    pub.publish("sh/fence", token, qos=1)
    held = holder.collect_until("sh/fence", token)
    online.collect_until("sh/fence", token)
    holder.disconnect()  # Session Expiry 0: the session ends with its unacknowledged messages
    handed = online.until_fence("sh/fence", pub)
    record("member ends its session with unacknowledged messages: redelivered to the other",
           f"{len(handed)} of {len(held)}" + (", DUP 1" if any(m["dup"] for m in handed) else ""))

    pub.publish("shr/t", "kept", qos=1, retain=True)
    late = connected(port, "sh-late")
    late.subscribe(("$share/g/shr/#", 1), ("shr-fence", 1))
    record("retained message on a shared SUBSCRIBE",
           "sent" if late.until_fence("shr-fence", pub) else "not sent")
    pub.publish("shr/t", b"", qos=1, retain=True)
    v311 = connected(port, "sh-311", 4)
    record("3.1.1 SUBSCRIBE $share/g/sh4/t: SUBACK", v311.subscribe(("$share/g/sh4/t", 1)))
    for peer in (online, pub, late, v311):
        peer.disconnect()


@scenario("Topic aliases, 5.0 (client to broker)")
def topic_aliases(port, record):
    sub = Peer(port)
    sub.connect("ta-sub", props={"topic_alias_maximum": 5})
    sub.subscribe(("ta/#", 1))
    sender = Peer(port)
    connack = sender.connect("ta-send")
    record("CONNACK Topic Alias Maximum", connack["props"].get("topic_alias_maximum", "absent"))
    sender.publish("ta/x", "1", qos=1, props={"topic_alias": 1})
    sender.publish("", "2", qos=1, props={"topic_alias": 1})
    sender.publish("ta/x", "3", qos=1)
    got = sub.until_fence("ta/fence", sender)
    record("alias 1 set, then empty topic + alias 1: subscriber sees",
           ", ".join(m["topic"] or "''" for m in got[:2]))
    outgoing = sorted({m["props"]["topic_alias"] for m in got if "topic_alias" in m["props"]})
    record("to a subscriber announcing Topic Alias Maximum 5: aliases sent",
           ", ".join(map(str, outgoing)) or "none")
    for alias, topic, label in ((11, "ta/over", "alias 11 (over the maximum)"),
                                (0, "ta/zero", "alias 0"),
                                (7, "", "empty topic with an unknown alias")):
        peer = connected(port, f"ta-{alias}")
        peer.publish(topic, "x", qos=0, props={"topic_alias": alias})
        record(f"{label}: broker answers", peer.wait_closed())
    record("none of those routed", "yes" if sub.until_fence("ta/fence", sub) == [] else "no")
    sub.disconnect()


@scenario("Message expiry, 5.0")
def message_expiry(port, record):
    live = connected(port, "me-live")
    live.subscribe(("me/live", 1))
    offline = connected(port, "me-off", props={"session_expiry": 60})
    offline.subscribe(("me/off/#", 1))
    offline.disconnect()
    pub = connected(port, "me-pub")
    pub.publish("me/live", "x", qos=1, props={"message_expiry": 60})
    message = live.message()
    record("live delivery of a 60 s message: interval forwarded",
           message["props"].get("message_expiry", "absent") if message else "nothing")
    published = time.monotonic()
    pub.publish("me/off/short", "1 s", qos=1, props={"message_expiry": 1})
    pub.publish("me/off/long", "60 s", qos=1, props={"message_expiry": 60})
    pub.publish("me/ret", "r", qos=1, retain=True, props={"message_expiry": 1})
    # Past the 1 s expiry by more than a second: Mosquitto counts expiry in whole seconds.
    wait_for_clock(published + 2.1)
    offline = connected(port, "me-off", clean=False, props={"session_expiry": 60})
    got = {m["topic"]: m for m in offline.until_fence("me/off/fence", pub)}
    record("queued 1 s message, session resumed after 2.1 s",
           "delivered" if "me/off/short" in got else "not delivered")
    long = got.get("me/off/long")
    interval = long["props"].get("message_expiry") if long else None
    # 60 minus about 2.1 s: 58 rounded up, 57 rounded down; either is the time left.
    record("queued 60 s message, resumed after 2.1 s: interval forwarded",
           "not delivered" if long is None else
           "absent" if interval is None else Approx(interval, 1))
    late = connected(port, "me-late")
    late.subscribe(("me/ret", 1), ("me/rfence", 1))
    record("retained 1 s message, subscribed after 2.1 s",
           "sent" if late.until_fence("me/rfence", pub) else "not sent")
    offline.disconnect(props={"session_expiry": 0})
    for peer in (live, pub, late):
        peer.disconnect()


@scenario("Will delay, 5.0 (Will Delay 2 s, Session Expiry 10 s unless noted)")
def will_delay(port, record):
    observer = connected(port, "wd-obs")
    observer.subscribe(("wd/#", 1))

    def willing(name, delay=2, expiry=10):
        return connected(port, name, props={"session_expiry": expiry},
                         will=(f"wd/{name}", b"gone", 1, False, {"will_delay": delay}))

    clients = {name: willing(name) for name in ("wd-silent", "wd-resume", "wd-clean")}
    clients["wd-short"] = willing("wd-short", delay=5, expiry=1)
    dropped = {}
    for name, peer in clients.items():
        dropped[name] = time.monotonic()
        peer.drop()
    resumed = connected(port, "wd-resume", clean=False, props={"session_expiry": 10})
    cleaned = connected(port, "wd-clean")  # Clean Start 1
    arrived = {}
    end = time.monotonic() + 6.0
    while "wd/wd-silent" not in arrived:
        message = observer.message(end - time.monotonic())
        if message is None:
            break
        arrived.setdefault(message["topic"], message["at"])
    for message in observer.until_fence("wd/fence"):
        arrived.setdefault(message["topic"], message["at"])

    def outcome(name):
        at = arrived.get(f"wd/{name}")
        return "not published" if at is None else sweep_timing(at - dropped[name])

    record("connection lost, no reconnect: will published after", outcome("wd-silent"))
    record("Clean Start 0 reconnect within the delay: will", outcome("wd-resume"))
    record("Clean Start 1 reconnect within the delay: will published after", outcome("wd-clean"))
    record("Will Delay 5 s, Session Expiry 1 s: will published after", outcome("wd-short"))
    resumed.disconnect(props={"session_expiry": 0})
    for peer in (cleaned, observer):
        peer.disconnect()


@scenario("Overlapping subscriptions ('#' QoS 0 and '+' QoS 1, one QoS 1 PUBLISH)")
def overlapping(port, record):
    for version in (4, 5):
        peer = connected(port, f"ov{version}", version)
        ids = (lambda n: {"subscription_id": [n]}) if version == 5 else (lambda n: None)
        peer.subscribe((f"ov{version}/#", 0), props=ids(1))
        peer.subscribe((f"ov{version}/+", 1), props=ids(2))
        peer.subscribe((f"ovf{version}", 1))
        peer.publish(f"ov{version}/a", "x", qos=1)
        got = peer.until_fence(f"ovf{version}")
        label = "3.1.1" if version == 4 else "5.0 (Subscription Identifiers 1 and 2)"

        def copy(message):
            identifiers = sorted(message["props"].get("subscription_id", []))
            return f"QoS {message['qos']}" + (f" ids {identifiers}" if version == 5 else "")

        record(f"{label}: copies received", "; ".join(map(copy, got)) or "none")
        peer.disconnect()


@scenario("Retained message delete (empty retained PUBLISH)")
def retained_delete(port, record):
    pub = connected(port, "rd-pub")
    pub.publish("rd/t", "v", qos=1, retain=True)
    live = connected(port, "rd-live")
    live.subscribe(("rd/#", 1))
    live.message()  # the retained message itself
    pub.publish("rd/t", b"", qos=1, retain=True)
    got = live.until_fence("rd/fence", pub)
    record("existing subscriber receives the delete",
           "; ".join(f"{len(m['payload'])}-byte payload, RETAIN {int(m['retain'])}"
                     for m in got) or "nothing")
    late = connected(port, "rd-late")
    late.subscribe(("rd/#", 1))
    record("subscriber after the delete: retained messages",
           len(late.until_fence("rd/fence", pub)))
    for peer in (pub, live, late):
        peer.disconnect()


@scenario("QoS downgrade")
def qos_downgrade(port, record):
    sub = connected(port, "qd-sub")
    sub.subscribe(("qd/0", 0), ("qd/1", 1), ("qd/2", 2), ("qd/fence", 1))
    pub = connected(port, "qd-pub")
    for topic, qos in (("qd/0", 2), ("qd/1", 2), ("qd/2", 1), ("qd/2", 0)):
        pub.publish(topic, "x", qos=qos)
    record("granted 0, 1, 2, 2; published 2, 2, 1, 0: delivered",
           ", ".join(str(m["qos"]) for m in sub.until_fence("qd/fence", pub)))
    sub.disconnect()
    pub.disconnect()


@scenario("UNSUBSCRIBE of a filter not subscribed")
def unsubscribe_unknown(port, record):
    v5 = connected(port, "uu5")
    v5.subscribe(("uu/a", 0))
    record("5.0 [subscribed, unknown]: UNSUBACK reason codes",
           ", ".join(fmt_code(c) for c in v5.unsubscribe("uu/a", "uu/unknown")))
    v4 = connected(port, "uu4", 4)
    record("3.1.1: answer", "UNSUBACK" if v4.unsubscribe("uu/unknown") is not None else "none")
    v5.disconnect()
    v4.disconnect()


@scenario("Empty client id")
def empty_client_id(port, record):
    peer = Peer(port, 4)
    connack = peer.connect("", clean=False)
    record("3.1.1 clean session 0: CONNACK code, then", f"{connack['code']}, {peer.wait_closed()}")
    peer = Peer(port, 4)
    record("3.1.1 clean session 1: CONNACK code", peer.connect("")["code"])
    peer.disconnect()
    peer = Peer(port, 5)
    connack = peer.connect("", clean=False, props={"session_expiry": 60})
    record("5.0 Clean Start 0: CONNACK reason code, Assigned Client Identifier",
           f"{fmt_code(connack['code'])}, "
           + ("present" if connack["props"].get("assigned_client_id") else "absent"))
    peer.disconnect(props={"session_expiry": 0})


@scenario("Second CONNECT on a connection")
def second_connect(port, record):
    for version in (4, 5):
        peer = connected(port, f"sc{version}", version)
        peer.send(connect_packet(f"sc{version}", version, True, 60, None, None))
        record(f"{'3.1.1' if version == 4 else '5.0'}: broker answers", peer.wait_closed())


@scenario("Keep alive 1 s, client silent")
def keep_alive(port, record):
    import threading
    outcome = {}

    def watch(version):
        peer = Peer(port, version)
        peer.connect(f"ka{version}", keepalive=1)
        start = time.monotonic()
        how = peer.wait_closed(deadline=8.0)
        outcome[version] = (how, time.monotonic() - start)

    threads = [threading.Thread(target=watch, args=(v,)) for v in (4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for version, label in ((4, "3.1.1"), (5, "5.0")):
        how, after = outcome[version]
        record(f"{label}: closed after",
               keep_alive_timing(after) if how != "open" else "not closed")
        record(f"{label}: how", how)


@scenario("Offline persistent session and QoS 0 (3.1.1)")
def offline_qos0(port, record):
    for name, granted in (("oz-s0", 0), ("oz-s1", 1)):
        peer = connected(port, name, 4, clean=False)
        peer.subscribe((f"oz/{granted}", granted), ("oz/fence", 1))
        peer.disconnect()
    pub = connected(port, "oz-pub", 4)
    for granted in (0, 1):
        pub.publish(f"oz/{granted}", "qos0", qos=0)
        pub.publish(f"oz/{granted}", "qos1", qos=1)
    for name, granted in (("oz-s0", 0), ("oz-s1", 1)):
        peer = connected(port, name, 4, clean=False)
        got = peer.until_fence("oz/fence", pub)
        record(f"subscribed QoS {granted}, published QoS 0 then QoS 1: delivered on resume",
               ", ".join(f"{m['payload'].decode()} as QoS {m['qos']}" for m in got) or "none")
        peer.disconnect()
        Peer(port, 4).connect(name)  # clean session: drop it
    pub.disconnect()


@scenario("Session takeover (same client id)")
def takeover(port, record):
    for version, label in ((4, "3.1.1"), (5, "5.0")):
        props = {"session_expiry": 60} if version == 5 else None
        old = connected(port, f"to{version}", version, clean=False, props=props)
        new = Peer(port, version)
        connack = new.connect(f"to{version}", clean=False, props=props)
        record(f"{label}: old connection", old.wait_closed())
        record(f"{label}: new CONNECT (clean 0) session present", connack["present"])
        new.disconnect(**({"props": {"session_expiry": 0}} if version == 5 else {}))
        if version == 4:
            Peer(port, 4).connect(f"to{version}")


@scenario("Will on takeover (checked at once, with a fence)")
def will_on_takeover(port, record):
    observer = connected(port, "wt-obs")
    observer.subscribe(("wt/#", 1))
    cases = (("wt4", 4, None, None, True, "3.1.1, will without delay"),
             ("wt5", 5, None, None, True, "5.0, will without delay"),
             ("wt5d", 5, {"session_expiry": 10}, {"will_delay": 2}, False,
              "5.0, Will Delay 2 s, taken over with Clean Start 0"),
             ("wt5c", 5, {"session_expiry": 10}, {"will_delay": 2}, True,
              "5.0, Will Delay 2 s, taken over with Clean Start 1"))
    successors = []
    for name, version, props, will_props, clean, _ in cases:
        old = connected(port, name, version, props=props,
                        will=(f"wt/{name}", b"gone", 1, False, will_props))
        successors.append(connected(port, name, version, clean=clean, props=props))
        old.wait_closed()
    published = {m["topic"] for m in observer.until_fence("wt/fence")}
    for name, _, _, _, _, label in cases:
        record(label, "published" if f"wt/{name}" in published else "not published")
    for peer, case in zip(successors, cases):
        peer.disconnect(**({"props": {"session_expiry": 0}} if case[1] == 5 else {}))
    observer.disconnect()


@scenario("$SYS topics")
def sys_topics(port, record):
    everything = connected(port, "sys-all")
    everything.subscribe(("#", 0))
    system = connected(port, "sys-sys")
    record("SUBSCRIBE $SYS/#: SUBACK", system.subscribe(("$SYS/#", 0)))
    record("client PUBLISH QoS 1 to $SYS/custom: PUBACK",
           fmt_code(everything.publish("$SYS/custom", "x", qos=1)))
    window_end = time.monotonic() + 1.0
    topics = []
    while (message := system.message(window_end - time.monotonic())) is not None:
        topics.append(message["topic"])
    record("$SYS/# subscriber receives the client's $SYS/custom",
           "yes" if "$SYS/custom" in topics else "no")
    record("$SYS/# subscriber, first second: broker's own $SYS messages",
           len([t for t in topics if t != "$SYS/custom"]))
    before = everything.until_fence("sysfence/x")
    record("'#' subscriber: $SYS messages received",
           len([m for m in before if m["topic"].startswith("$")]))
    everything.disconnect()
    system.disconnect()


# ------------------------------------------------------------------ running and reporting

def run_scenarios(port, only=None):
    """[(scenario title, [(observation, value)])], an exception recorded as an 'error' row."""
    results = []
    for title, function in SCENARIOS:
        if only and only not in title:
            continue
        rows = []
        try:
            function(port, lambda name, value: rows.append((name, value)))
        except Exception as error:  # noqa: BLE001 - reported in the table, not fatal
            rows.append(("error", f"{type(error).__name__}: {error}"))
        results.append((title, rows))
    return results


def run_brokers(only=None):
    with Credmq(["--allow-anonymous"]) as credmq:
        ours = run_scenarios(credmq.mqtt_port, only)
    with Mosquitto() as mosquitto:
        theirs = run_scenarios(mosquitto.mqtt_port, only)
    return ours, theirs


def same(a, b):
    if isinstance(a, Approx) and isinstance(b, Approx):
        return abs(a - b) <= max(a.tolerance, b.tolerance)
    return str(a) == str(b)


def fmt(value):
    if isinstance(value, list):
        return ", ".join(fmt_code(v) if v >= 0x80 else str(v) for v in value)
    return str(value)


def merged_rows(ours, theirs):
    """(scenario, observation, credmq value, mosquitto value) in scenario order."""
    rows = []
    theirs = dict(theirs)
    for title, our_rows in ours:
        their_rows = dict(theirs.get(title, []))
        names = [n for n, _ in our_rows] + [n for n in their_rows if n not in dict(our_rows)]
        for name in names:
            rows.append((title, name, dict(our_rows).get(name, "-"), their_rows.get(name, "-")))
    return rows


def mosquitto_version():
    out = subprocess.run([MOSQUITTO_BIN, "-h"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "mosquitto"


def text_table(rows):
    lines = []
    width = max(len(r[1]) for r in rows)
    current = None
    for title, name, ours, theirs in rows:
        if title != current:
            lines.append(f"\n{title}")
            current = title
        mark = " " if same(ours, theirs) else "≠"
        lines.append(f" {mark} {name:<{width}}  credmq: {fmt(ours):<28} mosquitto: {fmt(theirs)}")
    return "\n".join(lines)


# Why credmq differs where it does: the spec statement it follows, or the choice it made
# where the spec leaves room (docs/mqtt5.md).
SHARED = "Shared subscriptions, 5.0 ($share/g/sh/t)"
QUEUE = "Offline queue, default limits (1100 QoS 1 messages to an offline session)"
WILL_DELAY = "Will delay, 5.0 (Will Delay 2 s, Session Expiry 10 s unless noted)"
KEEP_ALIVE = "Keep alive 1 s, client silent"
TAKEOVER_WILL = "Will on takeover (checked at once, with a fence)"
SYS = "$SYS topics"
_SWEEP = ("No exact time is required (3.1.3.2.2); credmq publishes due wills and ends expired "
          "sessions in a 1 s sweep, so up to 1 s after the due time.")
_KEEP_ALIVE_TIME = ("[MQTT-3.1.2-22]: the server closes after 1.5 × Keep Alive without a "
                    "packet, here 1.5 s; credmq times each connection to the millisecond. "
                    "Mosquitto 2.0.11 checks keep alives less often: 1 to 7 s in our runs.")
_SYS_PUBLISH = ("A gap, not a choice: 4.7.2 says the server SHOULD prevent clients from using "
                "$-topics to exchange messages; Mosquitto refuses the PUBLISH (0x87), credmq "
                "accepts and routes it.")
CONNACK = "CONNACK properties (5.0, plain CONNECT)"
_ABSENT_MEANS_AVAILABLE = ("Absent means available (3.2.2.3); credmq states it explicitly, "
                           "Mosquitto leaves it out.")
EXPLANATIONS = {
    (CONNACK, "receive maximum"):
        "The server's choice (3.2.2.3.3): credmq acknowledges QoS 1 at once and announces "
        "`BrokerConfig::receive_maximum` (65535) for QoS 2; Mosquitto announces "
        "`max_inflight_messages` (20).",
    (CONNACK, "maximum packet size"):
        "credmq refuses packets over `--max-packet-size` (1 MiB by default) and says so; "
        "Mosquitto's `message_size_limit` is unset by default, so it announces no limit.",
    (CONNACK, "subscription ids available"): _ABSENT_MEANS_AVAILABLE,
    (CONNACK, "shared available"): _ABSENT_MEANS_AVAILABLE,
    (QUEUE, "delivered on resume"):
        "Neither spec sets a limit. credmq keeps up to 10,000 messages per session "
        "(`--max-queued-messages`, as Mosquitto's option of that name); Mosquitto's "
        "`max_queued_messages` defaults to 1000. Both drop new messages when full.",
    (QUEUE, "which ones"): "Follows from the limits above: both keep the oldest.",
    (SHARED, "one member offline with its session kept, 4 messages: online / offline "
             "(on resume)"):
        "4.8.2 leaves the choice of member to the server. credmq prefers online members, so a "
        "message does not wait for an offline member while another can take it "
        "(docs/mqtt5.md); Mosquitto round-robins over all members.",
    (SHARED, "member ends its session with unacknowledged messages: redelivered to the other"):
        "4.8.2: when the chosen member's Session ends before it acknowledged a message, the "
        "server SHOULD send it to another member; credmq does (docs/mqtt5.md), Mosquitto "
        "drops them with the session.",
    (SHARED, "retained message on a shared SUBSCRIBE"):
        "3.3.1.3 sends retained messages when a new Non-shared Subscription is made; credmq "
        "sends none on a shared subscription (docs/mqtt5.md), Mosquitto sends them.",
    ("Topic aliases, 5.0 (client to broker)",
     "to a subscriber announcing Topic Alias Maximum 5: aliases sent"):
        "A server MAY set Topic Aliases up to the client's Topic Alias Maximum (3.3.2.3.4); "
        "credmq does (first come, first served, at most 64: --outgoing-topic-aliases), which "
        "saves the topic's bytes on every later PUBLISH; Mosquitto 2.0 never does.",
    ("Topic aliases, 5.0 (client to broker)", "alias 0: broker answers"):
        "[MQTT-3.3.2-8] forbids alias 0 without naming a reason code; credmq answers 0x94 "
        "(Topic Alias invalid, the code for an alias out of range), Mosquitto 0x81 "
        "(Malformed Packet).",
    ("Message expiry, 5.0", "queued 1 s message, session resumed after 2.1 s"):
        "[MQTT-3.3.2-5]: once its expiry has passed the server MUST NOT deliver it. credmq "
        "drops it when it would hand it to the connection; Mosquitto 2.0.11 delivered it.",
    (WILL_DELAY, "connection lost, no reconnect: will published after"): _SWEEP,
    (WILL_DELAY, "Will Delay 5 s, Session Expiry 1 s: will published after"): _SWEEP,
    (WILL_DELAY, "Clean Start 1 reconnect within the delay: will published after"):
        "3.1.3.2.2: the will goes when the delay passes or the Session ends; only a new "
        "connection to the same session cancels it [MQTT-3.1.3-9]. A Clean Start CONNECT ends "
        "the session, so credmq publishes the will then (docs/mqtt5.md); Mosquitto did not "
        "publish it.",
    ("Overlapping subscriptions ('#' QoS 0 and '+' QoS 1, one QoS 1 PUBLISH)",
     "5.0 (Subscription Identifiers 1 and 2): copies received"):
        "[MQTT-3.3.4-2] requires one delivery at the highest QoS and allows one copy per "
        "subscription; credmq sends one copy with both identifiers [MQTT-3.3.4-4], as it does "
        "in 3.1.1; Mosquitto sends one copy per subscription here [MQTT-3.3.4-5].",
    ("Second CONNECT on a connection", "5.0: broker answers"):
        "[MQTT-3.1.0-2]: a protocol error, the connection is closed; credmq first sends "
        "DISCONNECT 0x82 (4.13.1 lets the server send DISCONNECT with a reason code before "
        "closing), Mosquitto closes without it.",
    (KEEP_ALIVE, "3.1.1: closed after"): _KEEP_ALIVE_TIME,
    (KEEP_ALIVE, "5.0: closed after"): _KEEP_ALIVE_TIME,
    (KEEP_ALIVE, "5.0: how"):
        "credmq sends DISCONNECT 0x8D (Keep Alive timeout) before closing (4.13.1 allows it, "
        "and the client learns why); Mosquitto closes without it.",
    ("Session takeover (same client id)", "5.0: old connection"):
        "[MQTT-3.1.4-3]: the existing connection is closed; credmq first sends DISCONNECT 0x8E "
        "(Session taken over) so the client knows not to reconnect in a loop; Mosquitto "
        "2.0.11 closed it without one here.",
    (TAKEOVER_WILL, "5.0, Will Delay 2 s, taken over with Clean Start 1"):
        "The Clean Start takeover ends the old session, so its delayed will goes at once "
        "(3.1.3.2.2, as for a reconnect above); Mosquitto did not publish it at once.",
    (SYS, "client PUBLISH QoS 1 to $SYS/custom: PUBACK"): _SYS_PUBLISH,
    (SYS, "$SYS/# subscriber receives the client's $SYS/custom"): _SYS_PUBLISH,
    (SYS, "$SYS/# subscriber, first second: broker's own $SYS messages"):
        "The spec requires no $SYS topics. Both publish retained statistics under Mosquitto's "
        "names; credmq publishes the 14 listed in docs/monitoring.md (per instance), Mosquitto "
        "also its load averages, heap and store figures.",
}


def markdown(rows, version):
    out = ["# credmq and Mosquitto side by side", "",
           "Generated by `tests/integration/side_by_side.py`; regenerate with",
           "", "```sh",
           "CREDMQ_BIN=build/server/credmq /usr/bin/python3 tests/integration/side_by_side.py \\",
           "    --markdown docs/side-by-side.md", "```", "",
           f"Both brokers run the same scripted scenarios with raw MQTT clients on the loopback "
           f"interface: credmq with `--allow-anonymous` (its anonymous instance) and {version} "
           "(Debian) with `allow_anonymous true` and `persistence false`, both on their "
           "defaults otherwise. Timings are measured once and shown to 0.1 s; two timings "
           "count as the same within 1 s for will delays and session expiry (credmq checks "
           "them in a 1 s sweep), within 0.6 s for keep alive; a forwarded Message Expiry "
           "Interval within 1 s. Rows marked ≠ differ; the reasons are listed after the table.",
           "",
           "| Scenario | Observation | credmq | Mosquitto | |", "|---|---|---|---|---|"]
    current = None
    for title, name, ours, theirs in rows:
        shown_title = title if title != current else ""
        current = title
        mark = "" if same(ours, theirs) else "≠"
        out.append(f"| {shown_title} | {name} | {fmt(ours)} | {fmt(theirs)} | {mark} |")
    out += ["", "## Differences", ""]
    differing = [r for r in rows if not same(r[2], r[3])]
    if not differing:
        out.append("None.")
    for title, name, ours, theirs in differing:
        why = EXPLANATIONS.get((title, name), "(not explained yet)")
        out.append(f"- **{title} — {name}**: credmq {fmt(ours)}, Mosquitto {fmt(theirs)}. "
                   f"{why}")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--only", help="run only scenarios whose title contains this")
    args = parser.parse_args()
    ours, theirs = run_brokers(args.only)
    rows = merged_rows(ours, theirs)
    version = mosquitto_version()
    print(f"credmq ({platform.node()}) vs {version}")
    print(text_table(rows))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(rows, version))
    errors = [r for r in rows if r[1] == "error"]
    return 1 if errors else 0


def test_both_brokers_complete_every_scenario():
    """Only that every scenario ran to its end against both brokers (no harness errors)."""
    import pytest
    if not os.path.exists(MOSQUITTO_BIN):
        pytest.skip(f"{MOSQUITTO_BIN} is not installed")
    ours, theirs = run_brokers()
    for broker, results in (("credmq", ours), ("mosquitto", theirs)):
        assert len(results) == len(SCENARIOS)
        errors = [(title, value) for title, rows in results for name, value in rows
                  if name == "error"]
        assert not errors, (broker, errors)


if __name__ == "__main__":
    sys.exit(main())
