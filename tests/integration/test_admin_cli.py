"""scripts/credmq-admin, the README's admin client: signed calls with the key pair credmq wrote
to its data dir, `mqtt-args` for mosquitto_pub/_sub, and clear errors for a wrong endpoint.
HTTPS with --cacert is tested in test_tls.py."""
import json
import os
import socket
import subprocess

import pytest

from credmq_harness import remember_secret

ADMIN_CLI = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "credmq-admin")


def credmq_admin(*args, data_dir=None, endpoint=None, extra=()):
    command = [ADMIN_CLI, *extra]
    if data_dir:
        command += ["--data-dir", data_dir]
    if endpoint:
        command += ["--endpoint", endpoint]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=20)


def test_register_get_unregister(broker):
    endpoint = f"127.0.0.1:{broker.admin_port}"
    registered = credmq_admin("RegisterDeviceCredential", "ClientId=GID_cli@@@dev-1",
                              data_dir=broker.data_dir, endpoint=endpoint)
    assert registered.returncode == 0, registered.stderr
    credential = json.loads(registered.stdout)["DeviceCredential"]
    remember_secret(credential["DeviceAccessKeySecret"])
    assert credential["ClientId"] == "GID_cli@@@dev-1"
    assert credential["InstanceId"] == broker.instance_id  # the default from the data dir

    for scheme in ("", "http://"):
        got = credmq_admin("GetDeviceCredential", "ClientId=GID_cli@@@dev-1", "--method", "GET",
                           data_dir=broker.data_dir, endpoint=scheme + endpoint)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["DeviceCredential"] == credential

    removed = credmq_admin("UnRegisterDeviceCredential", "ClientId=GID_cli@@@dev-1",
                           data_dir=broker.data_dir, endpoint=endpoint)
    assert removed.returncode == 0, removed.stderr
    missing = credmq_admin("GetDeviceCredential", "ClientId=GID_cli@@@dev-1",
                           data_dir=broker.data_dir, endpoint=endpoint)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["Code"] == "DeviceCredentialNotFound"


def test_mqtt_args_log_mosquitto_pub_in(broker):
    endpoint = f"127.0.0.1:{broker.admin_port}"
    credential = broker.admin.register("GID_cli@@@dev-2", broker.instance_id)
    printed = credmq_admin("mqtt-args", "GID_cli@@@dev-2", data_dir=broker.data_dir,
                           endpoint=endpoint)
    assert printed.returncode == 0, printed.stderr
    args = printed.stdout.split()
    assert args[:4] == ["-i", "GID_cli@@@dev-2", "-u",
                        f"DeviceCredential|{credential['DeviceAccessKeyId']}|"
                        f"{broker.instance_id}"]
    remember_secret(args[5])
    published = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port),
                                *args, "-t", "cli/test", "-m", "hi", "-q", "1"],
                               capture_output=True, text=True, timeout=20)
    assert published.returncode == 0, published.stderr


@pytest.mark.parametrize("endpoint, message", [
    ("ftp://127.0.0.1:8080", "--endpoint must be HOST:PORT, http://HOST:PORT or https://"),
    ("127.0.0.1:notaport", "--endpoint must be HOST:PORT"),
])
def test_bad_endpoint_is_named(broker, endpoint, message):
    result = credmq_admin("GetDeviceCredential", "ClientId=GID_cli@@@x",
                          data_dir=broker.data_dir, endpoint=endpoint)
    assert result.returncode == 2
    assert message in result.stderr


def test_unreachable_admin_api_says_so(broker):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    result = credmq_admin("GetDeviceCredential", "ClientId=GID_cli@@@x",
                          data_dir=broker.data_dir, endpoint=f"127.0.0.1:{free_port}")
    assert result.returncode == 2
    assert f"cannot reach the admin API at 127.0.0.1:{free_port}" in result.stderr
    assert "is credmq running? If the admin listener has TLS" in result.stderr


def test_missing_credentials_file_says_where_to_look(tmp_path):
    result = credmq_admin("GetDeviceCredential", "ClientId=GID_cli@@@x", data_dir=str(tmp_path))
    assert result.returncode == 2
    assert f"cannot read {tmp_path}/admin-credentials.json" in result.stderr
