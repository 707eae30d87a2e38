"""Debian's mosquitto_sub / mosquitto_pub log in with credentials registered through the
admin API and exchange messages at QoS 0, 1 and 2 over MQTT 3.1.1 and 5.0."""
import subprocess

import pytest

from credmq_harness import LineReader, device_login


def start_subscriber(broker, cred, topic, qos, version):
    username, password = device_login(cred)
    # stdbuf: mosquitto_sub's stdout is a pipe here; line-buffer it so lines arrive promptly.
    return subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-V", version,
         "-i", cred["ClientId"], "-u", username, "-P", password, "-t", topic, "-q", str(qos),
         "-C", "1", "-d"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_with_device_credentials(broker, version, qos):
    sub_cred = broker.admin.register(f"GID_mosq@@@sub-{version}-{qos}", broker.instance_id)
    pub_cred = broker.admin.register(f"GID_mosq@@@pub-{version}-{qos}", broker.instance_id)
    topic = f"devices/{version}/qos{qos}"
    sub = start_subscriber(broker, sub_cred, topic, qos, version)
    output = LineReader(sub.stdout)
    try:
        output.read_until("received SUBACK")
        username, password = device_login(pub_cred)
        pub = subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-V", version,
             "-i", pub_cred["ClientId"], "-u", username, "-P", password, "-t", topic,
             "-q", str(qos), "-m", f"hello qos{qos}", "-d"],
            capture_output=True, text=True, timeout=10)
        assert pub.returncode == 0, pub.stdout + pub.stderr
        if qos == 1:
            assert "received PUBACK" in pub.stdout
        if qos == 2:
            assert "received PUBREC" in pub.stdout and "received PUBCOMP" in pub.stdout
        lines = output.read_until(f"hello qos{qos}")
        assert lines[-1] == f"hello qos{qos}"
        assert sub.wait(10) == 0
    finally:
        if sub.poll() is None:
            sub.kill()
        sub.stdout.close()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_wrong_password_is_refused(broker, version):
    cred = broker.admin.register(f"GID_mosq@@@refused-{version}", broker.instance_id)
    username, _ = device_login(cred)
    result = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-V", version,
         "-i", cred["ClientId"], "-u", username, "-P", "TdyH2E2stRxzQGZgijzPcfDrEmk=",
         "-t", "t", "-m", "x"], capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    # 3.1.1: "Connection Refused: bad user name or password." 5.0: "Bad user name or password"
    assert "bad user name or password" in (result.stdout + result.stderr).lower()


def test_sys_topics_read_by_mosquitto_sub(broker):
    """$SYS/broker/version and clients/connected, as Mosquitto names them, per instance."""
    cred = broker.admin.register("GID_mosq@@@sys-reader", broker.instance_id)
    username, password = device_login(cred)
    result = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-i", cred["ClientId"],
         "-u", username, "-P", password, "-v", "-C", "2", "-W", "15",
         "-t", "$SYS/broker/version", "-t", "$SYS/broker/clients/connected"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines[0] == "$SYS/broker/clients/connected 1"
    assert lines[1].startswith("$SYS/broker/version credmq version ")
