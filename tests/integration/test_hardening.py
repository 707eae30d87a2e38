"""Topic rules and connection/admin limits on the real credmq binary (docs/security.md):
mosquitto_pub/mosquitto_sub with device credentials under rules from a config file, rules
applied to a session restored from credmq.db, and the limits' options."""
import json
import os
import socket
import subprocess
import tempfile
import time

import pytest

from credmq_harness import (Credmq, LineReader, RawClient, connect_packet, device_login,
                            publish_packet, subscribe_packet)

RULES = [
    "deny publish devices/%d/locked",
    "allow pubsub devices/%d/#",
    "allow subscribe broadcast/#",
    "allow publish broadcast/%d",
]


def write_config(directory, instance, rules, extra=""):
    path = os.path.join(directory, "credmq.ini")
    with open(path, "w") as f:
        f.write("# topic rules: INSTANCE allow|deny publish|subscribe|pubsub PATTERN\n")
        for rule in rules:
            f.write(f"topic-rule = {instance} {rule}\n")
        f.write(extra)
    return path


def mosquitto(tool, broker, cred, version, *args, timeout=15):
    username, password = device_login(cred)
    return subprocess.run(
        [tool, "-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-V", version,
         "-i", cred["ClientId"], "-u", username, "-P", password, *args],
        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ruled():
    config_dir = tempfile.TemporaryDirectory(prefix="credmq-rules-")
    path = write_config(config_dir.name, "credmq-default", RULES)
    with Credmq(extra_args=["--config", path]) as running:
        yield running
    config_dir.cleanup()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_devices_are_confined_by_the_config_file_rules(ruled, version):
    reader = ruled.admin.register(f"GID_rules@@@reader-{version}", ruled.instance_id)
    writer = ruled.admin.register(f"GID_rules@@@writer-{version}", ruled.instance_id)
    reader_id = f"reader-{version}"
    writer_id = f"writer-{version}"
    username, password = device_login(reader)
    sub = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(ruled.mqtt_port),
         "-V", version, "-i", reader["ClientId"], "-u", username, "-P", password,
         "-t", f"devices/{reader_id}/#", "-t", "broadcast/#", "-q", "1", "-v", "-d"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(sub.stdout)
    try:
        suback = output.read_until("received SUBACK")
        # Both filters granted (QoS 1): the rules cover them.
        output.read_until("Subscribed (mid: 1): 1, 1")
        del suback
        # The writer may not write into the reader's tree: dropped; MQTT 5 says 0x87 (135)
        # in the PUBACK, 3.1.1 gets a plain PUBACK.
        intruding = mosquitto("mosquitto_pub", ruled, writer, version,
                              "-t", f"devices/{reader_id}/cmd", "-m", "intruder", "-q", "1", "-d")
        text = intruding.stdout + intruding.stderr
        assert "received PUBACK" in text, text
        if version == "mqttv5":
            assert "RC:135" in text, text
        else:
            assert "RC:" not in text or "RC:0" in text, text
        # Its own locked topic is denied before the allow rule of its tree.
        locked = mosquitto("mosquitto_pub", ruled, writer, version,
                           "-t", f"devices/{writer_id}/locked", "-m", "locked", "-q", "1", "-d")
        if version == "mqttv5":
            assert "RC:135" in locked.stdout + locked.stderr, locked.stdout + locked.stderr
        # Allowed: broadcast/<its device id>.
        allowed = mosquitto("mosquitto_pub", ruled, writer, version,
                            "-t", f"broadcast/{writer_id}", "-m", "hello", "-q", "1", "-d")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        lines = output.read_until(f"broadcast/{writer_id} hello")
        received = [line for line in lines if line.startswith(("devices/", "broadcast/"))]
        assert received == [f"broadcast/{writer_id} hello"], lines
    finally:
        sub.kill()
        sub.wait()
        sub.stdout.close()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_a_denied_subscription_gets_a_failure_code(ruled, version):
    device = ruled.admin.register(f"GID_rules@@@nosub-{version}", ruled.instance_id)
    result = mosquitto("mosquitto_sub", ruled, device, version, "-t", "devices/someone-else/#",
                       "-d", "-W", "5")
    text = result.stdout + result.stderr
    # mosquitto_sub prints the granted QoS / reason codes of the SUBACK: 128 (3.1.1) or
    # 135 (5.0, Not authorized), and gives up since every subscription was denied.
    assert "received SUBACK" in text, text
    assert ("128" if version == "mqttv311" else "135") in text, text


def test_rules_apply_to_a_session_restored_from_the_database(tmp_path):
    """A persistent session saved without rules, restored under rules: the subscriptions
    they forbid are gone (and nothing queued for them is delivered)."""
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    plain = Credmq(data_dir=data_dir).start()
    device = plain.admin.register("GID_rules@@@persisted", plain.instance_id)
    username, password = device_login(device)
    c = RawClient(plain.mqtt_port)
    assert c.connect(device["ClientId"], username, password, clean=False) == 0
    c.send(subscribe_packet("other/#", qos=1, packet_id=1))
    assert c.read_packet()[0] == 9
    c.send(subscribe_packet("devices/persisted/#", qos=1, packet_id=2))
    assert c.read_packet()[0] == 9
    c.send(b"\xe0\x00")
    c.wait_closed()
    c.close()
    assert plain.stop() == 0

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    path = write_config(str(config_dir), "credmq-default", RULES + ["allow publish #"])
    ruled = Credmq(extra_args=["--config", path], data_dir=data_dir).start()
    try:
        c = RawClient(ruled.mqtt_port)
        c.send(connect_packet(device["ClientId"], username, password, clean=False))
        kind, _, body = c.read_packet()
        assert kind == 2 and body == b"\x01\x00"  # session present, accepted
        # A device of the instance publishes (allow publish #) to both topics.
        sender_cred = ruled.admin.register("GID_rules@@@sender", ruled.instance_id)
        sender = RawClient(ruled.mqtt_port)
        assert sender.connect(sender_cred["ClientId"], *device_login(sender_cred)) == 0
        sender.send(publish_packet("other/x", b"dropped", qos=1, packet_id=1))
        assert sender.read_packet()[0] == 4
        sender.send(publish_packet("devices/persisted/x", b"delivered", qos=1, packet_id=2))
        assert sender.read_packet()[0] == 4
        kind, flags, body = c.read_packet()
        assert kind == 3
        topic_length = int.from_bytes(body[:2], "big")
        assert body[2:2 + topic_length] == b"devices/persisted/x"
        assert body.endswith(b"delivered")
        c.send(b"\x40\x02" + body[2 + topic_length:4 + topic_length])  # PUBACK
        with pytest.raises(TimeoutError):
            c.read_packet(deadline=0.5)
        assert "subscription other/# dropped" in ruled.log_text()
    finally:
        ruled.cleanup()


def test_limit_options():
    """--connect-timeout, --max-connections, --admin-max-body and --admin-timeout."""
    with Credmq(extra_args=["--allow-anonymous", "--connect-timeout", "1",
                            "--max-connections", "2", "--admin-max-body", "100",
                            "--admin-timeout", "2"]) as broker:
        # A socket that sends nothing is closed, without a byte, about a second later.
        opened = time.monotonic()
        silent = RawClient(broker.mqtt_port)
        with pytest.raises(EOFError):
            silent.read_packet(deadline=5)
        assert 0.95 <= time.monotonic() - opened < 3.5
        silent.close()
        # Two connections at once; a third is closed right after accept, CONNECT unanswered.
        first = RawClient(broker.mqtt_port)
        assert first.connect("first") == 0
        second = RawClient(broker.mqtt_port)
        assert second.connect("second") == 0
        third = RawClient(broker.mqtt_port)
        try:
            third.send(connect_packet("third"))
        except OSError:
            pass
        with pytest.raises((EOFError, ConnectionResetError)):
            third.read_packet(deadline=5)
        assert first.is_open() and second.is_open()
        for c in (first, second, third):
            c.close()
        # Admin: a body over --admin-max-body gets the spec's JSON error.
        status, headers, data = broker.admin.raw(
            "POST", "/", body="a" * 101,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 413
        assert headers["Content-Type"] == "application/json;charset=utf-8"
        body = json.loads(data)
        assert body["Code"] == "InvalidParameter.Body"
        assert set(body) == {"RequestId", "HostId", "Code", "Message"}
        # Admin slowloris: a header byte a second is cut off at --admin-timeout.
        slow = socket.create_connection(("127.0.0.1", broker.admin_port))
        opened = time.monotonic()
        closed = False
        for byte in b"GET /?Action=x HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaa":
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            slow.settimeout(1.0)
            try:
                if slow.recv(1) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
        slow.close()
        assert closed
        assert 1.95 <= time.monotonic() - opened < 4.5


def test_bad_rules_and_limits_are_refused_at_start(tmp_path):
    from credmq_harness import CREDMQ_BIN
    for args in (["--topic-rule", "no-such-instance allow publish a"],
                 ["--topic-rule", "credmq-default permit publish a"],
                 ["--topic-rule", "credmq-default allow publish a/#/b"],
                 ["--topic-rule", "credmq-default allow publish %x"],
                 ["--connect-timeout", "0"], ["--max-connections", "-1"],
                 ["--max-connections-per-address", "-1"], ["--admin-max-body", "-1"],
                 ["--admin-timeout", "0"]):
        run = subprocess.run([CREDMQ_BIN, "--data-dir", str(tmp_path), *args],
                             capture_output=True, text=True, timeout=10)
        assert run.returncode == 2, (args, run.stderr)
        assert args[0] in run.stderr, (args, run.stderr)


@pytest.mark.parametrize("rule, why", [
    ("credmq-default allow pubsub", "expected 3 words after the instance, 'allow|deny "
                                    "publish|subscribe|pubsub PATTERN', not 2"),
    ("credmq-default", "expected 'INSTANCE allow|deny publish|subscribe|pubsub PATTERN'"),
    ("credmq-default permit publish a", "'permit' is neither allow nor deny"),
    ("credmq-default allow publish a/#/b", "'a/#/b' is not a valid topic filter"),
    ("credmq-default allow subscribe $share/g/a", "'$share/g/a' is a shared subscription; a "
                                                  "rule's pattern is the topic filter alone"),
    ("other allow publish a", "unknown instance 'other' (declare it with --instance)"),
])
def test_bad_rule_error_quotes_the_whole_rule(tmp_path, rule, why):
    from credmq_harness import CREDMQ_BIN
    run = subprocess.run([CREDMQ_BIN, "--data-dir", str(tmp_path), "--topic-rule", rule],
                         capture_output=True, text=True, timeout=10)
    assert run.returncode == 2
    assert f"--topic-rule '{rule}': {why}" in run.stderr, run.stderr


@pytest.mark.parametrize("args, message", [
    (["--default-instance", "a|b"], "--default-instance 'a|b': an instance id is 1-64 of"),
    (["--instance", ""], "--instance '': an instance id is 1-64 of"),
    (["--instance", "has space"], "--instance 'has space': an instance id is 1-64 of"),
])
def test_unusable_instance_ids_are_refused(tmp_path, args, message):
    from credmq_harness import CREDMQ_BIN
    run = subprocess.run([CREDMQ_BIN, "--data-dir", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=10)
    assert run.returncode == 2
    assert message in run.stderr, run.stderr
