"""Authentication happens before session takeover; takeover itself; CLI start-up contract."""
import json
import os
import stat
import subprocess

from credmq_harness import CREDMQ_BIN, Credmq, RawClient, device_login, publish_packet, \
    subscribe_packet


def test_wrong_password_leaves_the_live_session_connected(broker):
    cred = broker.admin.register("GID_sess@@@dev-live", broker.instance_id)
    live = RawClient(broker.mqtt_port)
    assert live.connect(cred["ClientId"], *device_login(cred), version=5) == 0
    username, _ = device_login(cred)
    intruder = RawClient(broker.mqtt_port)
    assert intruder.connect(cred["ClientId"], username, "M3v+3gMytjSty/yuqToL1QgEjNM=",
                            version=5) == 0x86
    assert intruder.wait_closed() is None
    assert live.is_open()


def test_takeover_disconnects_the_old_connection_with_0x8e(broker):
    cred = broker.admin.register("GID_sess@@@dev-takeover", broker.instance_id)
    old = RawClient(broker.mqtt_port)
    assert old.connect(cred["ClientId"], *device_login(cred), version=5) == 0
    new = RawClient(broker.mqtt_port)
    assert new.connect(cred["ClientId"], *device_login(cred), version=5) == 0
    assert old.wait_closed() == 0x8E
    new.send(subscribe_packet("t/#", version=5))
    assert new.read_packet()[0] == 9
    new.send(publish_packet("t/1", b"x", version=5))
    assert new.read_packet()[0] == 3


def test_credential_for_another_client_id_is_not_authorized(broker):
    cred = broker.admin.register("GID_sess@@@dev-owner", broker.instance_id)
    client = RawClient(broker.mqtt_port)
    assert client.connect("GID_sess@@@dev-other", *device_login(cred), version=4) == 5


def test_anonymous_refused_by_default(broker):
    client = RawClient(broker.mqtt_port)
    assert client.connect("anon-1", version=4) == 5
    client = RawClient(broker.mqtt_port)
    assert client.connect("anon-2", version=5) == 0x87


def test_allow_anonymous_lets_clients_in():
    with Credmq(["--allow-anonymous"]) as running:
        client = RawClient(running.mqtt_port)
        assert client.connect("anon-1", version=4) == 0


def test_first_start_writes_admin_credentials_0600_and_later_starts_reuse_them():
    first = Credmq().start()
    try:
        path = os.path.join(first.data_dir, "admin-credentials.json")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            creds = json.load(f)
        assert set(creds) == {"AccessKeyId", "AccessKeySecret", "InstanceId"}
        assert creds["InstanceId"] == "credmq-default"
        assert any(creds["AccessKeySecret"] in line for line in first.stdout_lines)
        assert first.stop() == 0
        second = Credmq(data_dir=first.data_dir).start()
        assert second.admin.key_id == creds["AccessKeyId"]
        assert not any(creds["AccessKeySecret"] in line for line in second.stdout_lines)
        status, _ = second.admin.call("ListDeviceCredentialClientId", GroupId="GID_nobody",
                                      InstanceId=creds["InstanceId"])
        assert status == 200
        assert second.stop() == 0
        assert creds["AccessKeySecret"] not in second.log_text()
        # An instance declared later is usable with the same admin key.
        third = Credmq(["--instance", "mqtt-cn-test0001"], data_dir=first.data_dir).start()
        status, body = third.admin.call("RegisterDeviceCredential", ClientId="GID_test@@@d1",
                                        InstanceId="mqtt-cn-test0001")
        assert status == 200 and body["DeviceCredential"]["InstanceId"] == "mqtt-cn-test0001"
        status, body = third.admin.call("GetDeviceCredential", ClientId="GID_test@@@d1",
                                        InstanceId="mqtt-cn-unknown")
        assert (status, body["Code"]) == (400, "InstanceNotFound")
        assert third.stop() == 0
    finally:
        first.cleanup()


def test_sigterm_sends_v5_clients_server_shutting_down():
    running = Credmq(["--allow-anonymous"]).start()
    try:
        client = RawClient(running.mqtt_port)
        assert client.connect("anon-v5", version=5) == 0
        assert running.stop() == 0
        assert client.wait_closed() == 0x8B
    finally:
        running.cleanup()


def test_a_second_broker_on_the_same_data_dir_refuses_to_start(broker):
    second = subprocess.run([CREDMQ_BIN, "--data-dir", broker.data_dir, "--listen", "127.0.0.1:0",
                             "--admin-listen", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=10)
    assert second.returncode == 1
    assert "in use by another credmq process" in second.stderr


def test_flags_replace_config_file_values(tmp_path):
    config = tmp_path / "credmq.conf"
    config.write_text("listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\nlog-level = debug\n")
    with Credmq(["--config", str(config)]) as running:  # the harness passes --listen :0
        listening = [line for line in running.stdout_lines if line.startswith("MQTT listening")]
        assert listening == [f"MQTT listening on 127.0.0.1:{running.mqtt_port}"]


def test_help_and_bad_flags():
    help_run = subprocess.run([CREDMQ_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert help_run.returncode == 0
    for flag in ("--config", "--data-dir", "--listen", "--admin-listen", "--allow-anonymous",
                 "--log-level"):
        assert flag in help_run.stdout
    bad = subprocess.run([CREDMQ_BIN, "--no-such-flag"], capture_output=True, text=True,
                         timeout=10)
    assert bad.returncode == 2 and "no-such-flag" in bad.stderr
    for args in (["--io-threads", "-1"], ["--io-threads", "100000"], ["stray-word"],
                 ["--auth-fail-limit-client", "-1"], ["--max-packet-size", "1"]):
        run = subprocess.run([CREDMQ_BIN, *args], capture_output=True, text=True, timeout=10)
        assert run.returncode == 2, (args, run.stderr)


def test_instances_are_isolated():
    with Credmq(["--instance", "mqtt-cn-second"]) as running:
        admin, first = running.admin, running.instance_id
        a = admin.register("GID_iso@@@device", first)
        b = admin.register("GID_iso@@@device", "mqtt-cn-second")  # same client id, other instance
        sub_a = RawClient(running.mqtt_port)
        assert sub_a.connect(a["ClientId"], *device_login(a)) == 0
        sub_b = RawClient(running.mqtt_port)
        assert sub_b.connect(b["ClientId"], *device_login(b)) == 0  # no takeover across instances
        for client in (sub_a, sub_b):
            client.send(subscribe_packet("iso/#"))
            assert client.read_packet()[0] == 9
        sub_b.send(publish_packet("iso/from-b", b"b"))
        assert sub_b.read_packet()[2].endswith(b"b")
        sub_a.send(publish_packet("iso/from-a", b"a"))
        kind, _, body = sub_a.read_packet()
        assert kind == 3 and b"iso/from-a" in body  # a's first message is its own, not b's
        assert sub_a.is_open() and sub_b.is_open()
        # A credential of one instance does not log in on the other.
        cross = RawClient(running.mqtt_port)
        user, password = device_login(a)
        assert cross.connect(a["ClientId"], user.replace(first, "mqtt-cn-second"), password) == 5
