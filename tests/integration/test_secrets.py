"""Secrets stay secret: a broker at debug level, driven through every path that handles a
secret (signed admin calls right and wrong, device logins right and wrong, refresh, revoke),
logs none of them, and its data files are private. The harness also checks every other
integration test's broker log for every secret it used (credmq_harness.SECRETS)."""
import os
import stat
import subprocess

from credmq_harness import (Credmq, RawClient, SECRETS, device_login, device_password,
                            secrets_in)


def test_debug_log_holds_no_secret_and_files_are_private():
    broker = Credmq().start()
    try:
        admin, instance = broker.admin, broker.instance_id
        credential = admin.register("GID_sec@@@dev-1", instance)
        username, password = device_login(credential)

        with RawClient(broker.mqtt_port) as client:  # right password
            assert client.connect("GID_sec@@@dev-1", username, password, version=5) == 0x00
        wrong = device_password("not-the-secret-at-all", "GID_sec@@@dev-1")
        with RawClient(broker.mqtt_port) as client:  # wrong password, 5.0 and 3.1.1
            assert client.connect("GID_sec@@@dev-1", username, wrong, version=5) == 0x86
        with RawClient(broker.mqtt_port) as client:
            assert client.connect("GID_sec@@@dev-1", username, wrong, version=4) == 0x04
        # mosquitto_pub puts the password in a real client's CONNECT.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port),
                        "-i", "GID_sec@@@dev-1", "-u", username, "-P", password, "-q", "1",
                        "-t", "t/sec", "-m", "hello"], check=True, timeout=10)

        # Admin calls: a wrong signature (signed with another secret), a refresh, a revoke.
        status, body = admin.call("GetDeviceCredential", ClientId="GID_sec@@@dev-1",
                                  InstanceId=instance, Signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        assert status == 400 and body["Code"] == "SignatureDoesNotMatch", body
        status, body = admin.call("RefreshDeviceCredential", method="POST",
                                  ClientId="GID_sec@@@dev-1", InstanceId=instance)
        assert status == 200, body
        refreshed = body["DeviceCredential"]
        assert refreshed["DeviceAccessKeySecret"] in SECRETS  # the harness saw it
        status, body = admin.unregister("GID_sec@@@dev-1", instance)
        assert status == 200, body
        username, password = device_login(refreshed)
        with RawClient(broker.mqtt_port) as client:  # a revoked credential
            assert client.connect("GID_sec@@@dev-1", username, password, version=5) == 0x86
    finally:
        broker.stop()  # raises if the log holds a secret
    log = broker.log_text()
    assert " debug " in log  # the check ran against debug-level output
    assert "GID_sec@@@dev-1" in log  # the log does name the client, just not its secrets
    assert secrets_in(log) == []
    assert len(SECRETS) >= 6  # admin secret, master key forms, device secrets and passwords

    # The data dir and every file in it are the owner's alone.
    assert stat.S_IMODE(os.stat(broker.data_dir).st_mode) == 0o700
    modes = {name: stat.S_IMODE(os.stat(os.path.join(broker.data_dir, name)).st_mode)
             for name in os.listdir(broker.data_dir) if name != "credmq-test.log"}
    assert "master.key" in modes and "admin-credentials.json" in modes and "credmq.db" in modes
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
    broker.cleanup()
