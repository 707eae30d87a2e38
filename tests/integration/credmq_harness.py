"""Test harness: runs the real credmq binary on free loopback ports and talks to it with a
V1-signing admin client and a minimal raw MQTT client (exact bytes, exact reason codes).

Everything here talks to 127.0.0.1 only.
"""
import atexit
import base64
import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import os
import queue
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

CREDMQ_BIN = os.environ.get("CREDMQ_BIN", "build/server/credmq")
# The first line of an AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer or
# ThreadSanitizer report.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")
NODE_CLIENTS = os.environ.get(
    "CREDMQ_NODE_CLIENTS", os.path.join(os.path.dirname(__file__), "node"))
DEFAULT_DEADLINE = 10.0


def wait_until(predicate, deadline=DEFAULT_DEADLINE, what="condition"):
    """Polls `predicate` until true; raises after `deadline` seconds. For state that has no
    event to block on (e.g. a process exit); socket reads block on the socket instead."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class LineReader:
    """Reads a process's output lines on a thread, so tests can wait for a line with a
    deadline without select() and Python's buffering fighting each other."""

    def __init__(self, stream):
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def read_until(self, needle, deadline=DEFAULT_DEADLINE):
        """Returns the lines read so far once one contains `needle`."""
        end = time.monotonic() + deadline
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {needle!r}: {self.lines}")
            if line is None:
                raise AssertionError(f"output ended before {needle!r}: {self.lines}")
            self.lines.append(line)
            if needle in line:
                return self.lines


_started = []

# Every secret the tests have used or been given (admin and device AccessKey secrets, device
# passwords, master keys). Each broker's log is checked for all of them when it stops, and the
# brokers log at debug level (CREDMQ_TEST_LOG_LEVEL overrides): secrets never reach a log.
SECRETS = set()


def remember_secret(value):
    if isinstance(value, bytes):
        SECRETS.update({value.hex(), value.hex().upper(), base64.b64encode(value).decode()})
    elif value and len(value) >= 8:
        SECRETS.add(value)


def _remember_secrets_in(document):
    """Remembers every value of a key naming a secret (e.g. DeviceAccessKeySecret)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if "Secret" in key and isinstance(value, str):
                remember_secret(value)
            else:
                _remember_secrets_in(value)
    elif isinstance(document, list):
        for item in document:
            _remember_secrets_in(item)


def secrets_in(text):
    """The remembered secrets that occur in `text`, each shortened to a recognisable prefix."""
    return sorted(secret[:6] + "..." for secret in SECRETS if secret in text)


@atexit.register
def _kill_leftovers():
    """A test that fails between start() and stop() must not leave a broker running."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()


class Credmq:
    """A credmq process with its own data dir and ephemeral ports."""

    def __init__(self, extra_args=(), data_dir=None, env=None, admin_cafile=None):
        """`env`: extra environment variables for the process (on top of ours).
        `admin_cafile`: the admin API is HTTPS, verified with this CA file."""
        self._tmp = None
        self.env = dict(os.environ, **env) if env else None
        self.admin_cafile = admin_cafile
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="credmq-it-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        log_level = [] if any(str(a).startswith("--log-level") for a in extra_args) else [
            "--log-level", os.environ.get("CREDMQ_TEST_LOG_LEVEL", "debug")]
        self.args = [CREDMQ_BIN, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                     "--admin-listen", "127.0.0.1:0", *log_level, *extra_args]
        self.stdout_lines = []
        self.proc = None
        self.mqtt_port = None
        self.tls_port = None
        self.admin_port = None

    def start(self, deadline=DEFAULT_DEADLINE):
        self.log_path = os.path.join(self.data_dir, "credmq-test.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, env=self.env)
        _started.append(self.proc)
        lines = queue.Queue()
        threading.Thread(target=self._pump_stdout, args=(lines,), daemon=True).start()
        end = time.monotonic() + deadline
        while True:
            try:
                line = lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise AssertionError("credmq did not become ready: " + repr(self.stdout_lines))
            if line is None:
                raise AssertionError("credmq exited during start-up: " + self.log_text())
            if line.startswith("MQTT listening on ") and self.mqtt_port is None:
                self.mqtt_port = int(line.rsplit(":", 1)[1])
            elif line.startswith("MQTT TLS listening on ") and self.tls_port is None:
                self.tls_port = int(line.rsplit(":", 1)[1])
            elif line.startswith("Admin API listening on "):
                self.admin_port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
            elif line.strip() == "credmq ready":
                break
        with open(os.path.join(self.data_dir, "admin-credentials.json")) as f:
            creds = json.load(f)
        self.admin = AdminClient(self.admin_port, creds["AccessKeyId"], creds["AccessKeySecret"],
                                 cafile=self.admin_cafile)
        self.instance_id = creds["InstanceId"]
        master_key = os.path.join(self.data_dir, "master.key")
        if os.path.exists(master_key):
            with open(master_key, "rb") as f:
                remember_secret(f.read())
        return self

    def _pump_stdout(self, lines):
        """Collects stdout lines (the reader thread ends at EOF, signalled by None)."""
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            lines.put(line)
        lines.put(None)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=15, deadline=DEFAULT_DEADLINE):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("credmq did not stop on signal")
        code = self.proc.returncode if self.proc else None
        if getattr(self, "_log", None) and not self._log.closed:
            self._log.close()
            text = self.log_text()
            leaked = secrets_in(text)
            if leaked:
                raise AssertionError(f"secrets in the broker's log {self.log_path}: {leaked}")
            # A sanitizer build (scripts/test.sh --sanitize / --tsan) reports on stderr, which
            # is this log; a report must fail the test even when the exit status is not looked at.
            reports = [marker for marker in SANITIZER_MARKERS if marker in text]
            if reports:
                start = min(text.index(marker) for marker in reports)
                raise AssertionError(f"sanitizer report in the broker's log {self.log_path}:\n"
                                     + text[start:start + 6000])
        return code

    def cleanup(self):
        self.stop()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


# ---------------------------------------------------------------- admin API (signature V1)

def percent_encode(value):
    return urllib.parse.quote(str(value), safe="-_.~")


def sign_v1(method, params, secret):
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items())
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    string_to_sign = f"{method}&%2F&{percent_encode(canonical)}"
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AdminClient:
    def __init__(self, port, key_id, secret, cafile=None):
        self.port = port
        self.cafile = cafile  # HTTPS, verified with this CA file
        self.key_id = key_id
        self.secret = secret
        self.conn = None
        remember_secret(secret)

    def signed_params(self, action, params, method="GET", **overrides):
        all_params = {
            "Action": action, "Version": "2020-04-20", "AccessKeyId": self.key_id,
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex, "Format": "JSON",
            "Timestamp": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        all_params.update(params)
        all_params.update(overrides)
        all_params["Signature"] = sign_v1(method, all_params, self.secret)
        return all_params

    def raw(self, method, path, body=None, headers=None):
        if self.conn is None:
            if self.cafile:
                self.conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, timeout=DEFAULT_DEADLINE,
                    context=ssl.create_default_context(cafile=self.cafile))
            else:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=DEFAULT_DEADLINE)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        return response.status, dict(response.getheaders()), data

    def call(self, action, method="GET", **params):
        signed = self.signed_params(action, params, method)
        query = urllib.parse.urlencode(signed, quote_via=urllib.parse.quote)
        if method == "GET":
            status, headers, data = self.raw("GET", "/?" + query)
        else:
            status, headers, data = self.raw(
                "POST", "/", body=query,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert headers.get("Content-Type") == "application/json;charset=utf-8", headers
        body = json.loads(data)
        _remember_secrets_in(body)
        return status, body

    def register(self, client_id, instance_id):
        status, body = self.call("RegisterDeviceCredential", ClientId=client_id,
                                 InstanceId=instance_id)
        assert status == 200, body
        return body["DeviceCredential"]

    def unregister(self, client_id, instance_id):
        return self.call("UnRegisterDeviceCredential", method="POST", ClientId=client_id,
                         InstanceId=instance_id)


def device_password(secret, client_id):
    remember_secret(secret)
    password = base64.b64encode(
        hmac.new(secret.encode(), client_id.encode(), hashlib.sha1).digest()).decode()
    remember_secret(password)
    return password


def device_login(credential):
    """(username, password) for a DeviceCredential object from the admin API."""
    return (f"DeviceCredential|{credential['DeviceAccessKeyId']}|{credential['InstanceId']}",
            device_password(credential["DeviceAccessKeySecret"], credential["ClientId"]))


# ---------------------------------------------------------------- raw MQTT client

def _vbi(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id, username=None, password=None, version=4, clean=True,
                   keepalive=60, will=None):
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    props = b"\x00" if version == 5 else b""
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += (b"\x00" if version == 5 else b"") + _str(topic) + _str(message)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
    if password is not None:
        flags |= 0x40
        payload += _str(password)
    name = b"MQIsdp" if version == 3 else b"MQTT"
    variable = _str(name) + bytes([version, flags]) + struct.pack("!H", keepalive) + props
    body = variable + payload
    return b"\x10" + _vbi(len(body)) + body


def publish_packet(topic, payload, version=4, qos=0, packet_id=1, retain=False):
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"")
    body += (b"\x00" if version == 5 else b"") + payload
    return bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + _vbi(len(body)) + body


def subscribe_packet(topic_filter, qos=0, version=4, packet_id=1):
    body = struct.pack("!H", packet_id) + (b"\x00" if version == 5 else b"")
    body += _str(topic_filter) + bytes([qos])
    return b"\x82" + _vbi(len(body)) + body


class RawClient:
    """One TCP connection speaking MQTT by hand; read_packet() returns (type, flags, body)."""

    def __init__(self, port, timeout=DEFAULT_DEADLINE, tls=None):
        """tls: an ssl.SSLContext to speak MQTT over TLS (server name 127.0.0.1)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        end = time.monotonic() + deadline
        while len(self.buffer) < n:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no data from broker")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by broker")
            self.buffer += chunk

    def read_packet(self, deadline=DEFAULT_DEADLINE):
        self._fill(2, deadline)
        length, multiplier, i = 0, 1, 1
        while True:
            self._fill(i + 1, deadline)
            byte = self.buffer[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
        self._fill(i + length, deadline)
        first, body = self.buffer[0], self.buffer[i:i + length]
        self.buffer = self.buffer[i + length:]
        return first >> 4, first & 0x0F, body

    def connect(self, client_id, username=None, password=None, version=4, **kw):
        """Sends CONNECT, returns the CONNACK return/reason code."""
        self.send(connect_packet(client_id, username, password, version, **kw))
        kind, _, body = self.read_packet()
        assert kind == 2, f"expected CONNACK, got packet type {kind}"
        return body[1]

    def wait_closed(self, deadline=DEFAULT_DEADLINE):
        """Reads until EOF; returns the MQTT 5 DISCONNECT reason code seen first, if any."""
        reason = None
        while True:
            try:
                kind, _, body = self.read_packet(deadline)
            except EOFError:
                return reason
            except (ConnectionResetError, ssl.SSLEOFError):
                return reason
            if kind == 14 and reason is None:
                reason = body[0] if body else 0

    def is_open(self):
        """True if the broker has not closed the connection (answers a PINGREQ)."""
        try:
            self.send(b"\xc0\x00")
            while True:
                kind, _, _ = self.read_packet(DEFAULT_DEADLINE)
                if kind == 13:
                    return True
        except (EOFError, ConnectionError, OSError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def device_connack(port, credential, version):
    """CONNACK return/reason code of one CONNECT with a DeviceCredential object from the admin
    API (the connection is closed afterwards)."""
    client = RawClient(port)
    try:
        return client.connect(credential["ClientId"], *device_login(credential), version=version)
    finally:
        client.close()


# ---------------------------------------------------------------- data dir

@contextlib.contextmanager
def database_copy(data_dir):
    """An sqlite3 connection to a copy of credmq.db (and its WAL) as they are now in `data_dir`
    (after a kill, or while the broker runs); the broker's own files stay untouched."""
    with tempfile.TemporaryDirectory(prefix="credmq-db-copy-") as copy:
        for name in ("credmq.db", "credmq.db-wal"):
            if os.path.exists(os.path.join(data_dir, name)):
                shutil.copy(os.path.join(data_dir, name), os.path.join(copy, name))
        db = sqlite3.connect(os.path.join(copy, "credmq.db"))
        try:
            yield db
        finally:
            db.close()
