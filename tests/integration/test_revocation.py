"""UnRegisterDeviceCredential closes the live sessions of that credential, at once
(mqtt-auth.md, Revocation), against the real binary with raw and real (paho) clients."""
import threading
import time

import paho.mqtt.client as paho

from credmq_harness import RawClient, connect_packet, device_login, publish_packet, \
    subscribe_packet

DISCONNECT_ADMINISTRATIVE_ACTION = 0x98
BAD_USER_NAME_OR_PASSWORD_V5 = 0x86
BAD_USER_NAME_OR_PASSWORD_V311 = 4


def observer(broker, name, filters):
    """A second device, subscribed to `filters`, that must stay connected throughout."""
    cred = broker.admin.register(f"GID_observer@@@{name}", broker.instance_id)
    client = RawClient(broker.mqtt_port)
    assert client.connect(cred["ClientId"], *device_login(cred)) == 0
    for i, topic_filter in enumerate(filters, start=1):
        client.send(subscribe_packet(topic_filter, qos=0, packet_id=i))
        kind, _, body = client.read_packet()
        assert (kind, body) == (9, bytes([0, i, 0]))
    return client


def assert_next_message_is(client, topic, payload):
    kind, _, body = client.read_packet()
    assert kind == 3
    topic_len = int.from_bytes(body[:2], "big")
    assert (body[2:2 + topic_len].decode(), body[2 + topic_len:]) == (topic, payload)


def test_unregister_disconnects_v5_session_with_0x98_and_no_will(broker):
    watcher = observer(broker, "watch-v5", ["wills/#", "data/#"])
    cred = broker.admin.register("GID_rev@@@dev-v5", broker.instance_id)
    device = RawClient(broker.mqtt_port)
    assert device.connect(cred["ClientId"], *device_login(cred), version=5,
                          will=("wills/dev-v5", b"gone", 0, False)) == 0

    started = time.monotonic()
    status, body = broker.admin.unregister(cred["ClientId"], broker.instance_id)
    replied = time.monotonic()
    assert status == 200 and set(body) == {"RequestId"}
    # Sent after the reply: must not reach anyone.
    try:
        device.send(publish_packet("data/after-reply", b"late", version=5))
    except OSError:
        pass
    assert device.wait_closed(deadline=2.0) == DISCONNECT_ADMINISTRATIVE_ACTION
    closed = time.monotonic()
    print(f"\nrevocation: API {1000 * (replied - started):.2f} ms, "
          f"API call to socket close {1000 * (closed - started):.2f} ms")

    # No will, no late publish: the watcher's next message is our marker.
    watcher.send(publish_packet("wills/marker", b"m1"))
    assert_next_message_is(watcher, "wills/marker", b"m1")
    watcher.send(publish_packet("data/marker", b"m2"))
    assert_next_message_is(watcher, "data/marker", b"m2")

    again = RawClient(broker.mqtt_port)
    assert again.connect(cred["ClientId"], *device_login(cred), version=5) == \
        BAD_USER_NAME_OR_PASSWORD_V5
    assert again.wait_closed() is None
    assert watcher.is_open()


def test_unregister_closes_v311_session_and_refuses_reconnect(broker):
    watcher = observer(broker, "watch-v311", ["wills/#"])
    cred = broker.admin.register("GID_rev@@@dev-v311", broker.instance_id)
    device = RawClient(broker.mqtt_port)
    assert device.connect(cred["ClientId"], *device_login(cred), version=4,
                          will=("wills/dev-v311", b"gone", 1, False)) == 0
    status, _ = broker.admin.unregister(cred["ClientId"], broker.instance_id)
    assert status == 200
    assert device.wait_closed(deadline=2.0) is None  # 3.1.1: closed, no DISCONNECT packet
    watcher.send(publish_packet("wills/marker", b"m"))
    assert_next_message_is(watcher, "wills/marker", b"m")
    again = RawClient(broker.mqtt_port)
    assert again.connect(cred["ClientId"], *device_login(cred), version=4) == \
        BAD_USER_NAME_OR_PASSWORD_V311
    assert watcher.is_open()


def test_refresh_and_reregister_revoke_the_old_secret(broker):
    cred = broker.admin.register("GID_rev@@@dev-refresh", broker.instance_id)
    device = RawClient(broker.mqtt_port)
    assert device.connect(cred["ClientId"], *device_login(cred), version=5) == 0
    status, body = broker.admin.call("RefreshDeviceCredential", ClientId=cred["ClientId"],
                                     InstanceId=broker.instance_id)
    assert status == 200
    assert device.wait_closed(deadline=2.0) == DISCONNECT_ADMINISTRATIVE_ACTION
    fresh = body["DeviceCredential"]
    refreshed = RawClient(broker.mqtt_port)
    assert refreshed.connect(fresh["ClientId"], *device_login(fresh), version=5) == 0
    stale = RawClient(broker.mqtt_port)
    assert stale.connect(cred["ClientId"], *device_login(cred), version=5) == \
        BAD_USER_NAME_OR_PASSWORD_V5

    reissued = broker.admin.register(cred["ClientId"], broker.instance_id)
    assert reissued["DeviceAccessKeyId"] != fresh["DeviceAccessKeyId"]
    assert refreshed.wait_closed(deadline=2.0) == DISCONNECT_ADMINISTRATIVE_ACTION


def test_paho_v5_client_sees_administrative_action(broker):
    cred = broker.admin.register("GID_rev@@@dev-paho", broker.instance_id)
    connected, disconnected = threading.Event(), threading.Event()
    seen = {}

    def on_connect(client, userdata, flags, reason, properties):
        seen["connack"] = reason.value
        connected.set()

    def on_disconnect(client, userdata, reason, properties):
        seen["disconnect"] = reason.value if hasattr(reason, "value") else reason
        disconnected.set()

    client = paho.Client(client_id=cred["ClientId"], protocol=paho.MQTTv5)
    client.username_pw_set(*device_login(cred))
    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    client.reconnect_delay_set(60, 60)  # no automatic reconnect during the test
    client.connect("127.0.0.1", broker.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        assert connected.wait(10) and seen["connack"] == 0
        status, _ = broker.admin.unregister(cred["ClientId"], broker.instance_id)
        assert status == 200
        assert disconnected.wait(5)
        assert seen["disconnect"] == DISCONNECT_ADMINISTRATIVE_ACTION
    finally:
        client.loop_stop()


def test_other_devices_sessions_are_untouched(broker):
    keep = broker.admin.register("GID_rev@@@dev-keep", broker.instance_id)
    drop = broker.admin.register("GID_rev@@@dev-drop", broker.instance_id)
    kept = RawClient(broker.mqtt_port)
    assert kept.connect(keep["ClientId"], *device_login(keep), version=5) == 0
    kept.send(subscribe_packet("keep/#", version=5))
    assert kept.read_packet()[0] == 9
    dropped = RawClient(broker.mqtt_port)
    assert dropped.connect(drop["ClientId"], *device_login(drop), version=5) == 0
    assert broker.admin.unregister(drop["ClientId"], broker.instance_id)[0] == 200
    assert dropped.wait_closed(deadline=2.0) == DISCONNECT_ADMINISTRATIVE_ACTION
    kept.send(publish_packet("keep/x", b"still here", version=5))
    kind, _, body = kept.read_packet()
    assert kind == 3 and body.endswith(b"still here")


def test_refresh_discards_an_offline_persistent_session(broker):
    cred = broker.admin.register("GID_rev@@@dev-offline", broker.instance_id)
    device = RawClient(broker.mqtt_port)
    assert device.connect(cred["ClientId"], *device_login(cred), clean=False) == 0
    device.send(subscribe_packet("offline/#", qos=1))
    assert device.read_packet()[0] == 9
    device.send(b"\xe0\x00")  # DISCONNECT: the session stays, offline
    assert device.wait_closed() is None
    publisher = observer(broker, "offline-pub", [])
    publisher.send(publish_packet("offline/1", b"queued before", qos=1))
    assert publisher.read_packet()[0] == 4  # PUBACK
    status, body = broker.admin.call("RefreshDeviceCredential", ClientId=cred["ClientId"],
                                     InstanceId=broker.instance_id)
    assert status == 200
    publisher.send(publish_packet("offline/2", b"queued after", qos=1, packet_id=2))
    assert publisher.read_packet()[0] == 4
    fresh = RawClient(broker.mqtt_port)
    fresh.send(connect_packet(cred["ClientId"], *device_login(body["DeviceCredential"]),
                              clean=False))
    kind, _, connack = fresh.read_packet()
    assert (kind, connack) == (2, b"\x00\x00")  # session present 0, accepted
    fresh.send(b"\xc0\x00")  # PINGREQ: its PINGRESP must come first, before any PUBLISH
    assert fresh.read_packet()[0] == 13
