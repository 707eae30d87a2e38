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


def test_help_and_bad_flags():
    help_run = subprocess.run([CREDMQ_BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert help_run.returncode == 0
    for flag in ("--config", "--data-dir", "--listen", "--admin-listen", "--allow-anonymous",
                 "--log-level"):
        assert flag in help_run.stdout
    bad = subprocess.run([CREDMQ_BIN, "--no-such-flag"], capture_output=True, text=True,
                         timeout=10)
    assert bad.returncode == 2 and "no-such-flag" in bad.stderr
