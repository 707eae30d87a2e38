"""The real binary with a database that fails under it: unreadable and unwritable (io-error),
unwritable (write-error) and full (SQLITE_FULL). The faults are injected by credmq's test-only
SQLite VFS shim (CREDMQ_STORAGE_FAULTS names a control file holding the fault in force, read
at every I/O operation), so each switch takes effect at the next database access.

While storage fails: admin writes answer 500 InternalError (exact spec body), reads answer
what storage can still read, new CONNECTs are refused with "server unavailable" (3.1.1 code 3,
MQTT 5 0x88), live sessions keep publishing and subscribing. When storage comes back the
broker recovers by itself: CONNECTs are accepted again, writes and revocations work, and
every row acknowledged before the fault is still there, also after a kill -9 and restart."""
import os
import re
import signal
import sqlite3
import tempfile
import time

import pytest

from credmq_harness import Credmq, RawClient, connect_packet, database_copy, device_connack, \
    device_login, publish_packet, subscribe_packet, wait_until

DEADLINE = 10
GROUP = "GID_faults"
INTERNAL_ERROR_MESSAGE = "An error occurred while processing your request. Try again later."
UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
ARGS = ["--auth-fail-limit-client", "0", "--session-save-interval", "50"]


def set_fault(path, fault):
    """Rewrites the control file; the broker reads it at its next database I/O."""
    with open(path + ".tmp", "w") as f:
        f.write(fault + "\n")
    os.replace(path + ".tmp", path)


def assert_internal_error(broker, status, body):
    assert status == 500, body
    assert set(body) == {"RequestId", "HostId", "Code", "Message"}, body
    assert body["Code"] == "InternalError"
    assert body["Message"] == INTERNAL_ERROR_MESSAGE
    assert body["HostId"] == f"127.0.0.1:{broker.admin_port}"
    assert UUID.match(body["RequestId"]), body["RequestId"]


def live_client(port, credential, version):
    client = RawClient(port)
    assert client.connect(credential["ClientId"], *device_login(credential),
                          version=version) == 0
    return client


def read_until_kind(client, kind):
    """Next packet of type `kind` (skips nothing else silently: anything else fails)."""
    got, flags, body = client.read_packet(DEADLINE)
    assert got == kind, f"expected packet type {kind}, got {got}"
    return flags, body


def publish_payload(body, version):
    """Payload of a QoS 0/1 PUBLISH body (topic, packet id if QoS > 0 is not parsed here)."""
    topic_length = int.from_bytes(body[:2], "big")
    rest = body[2 + topic_length:]
    return body[2:2 + topic_length].decode(), rest


def check_existing_sessions_work(subscriber, publisher, tag):
    """Publisher (3.1.1) -> subscriber (MQTT 5, 't/#' at QoS 0) while storage fails; the
    subscriber also subscribes anew, and the publisher's QoS 1 publish is acknowledged."""
    subscriber.send(subscribe_packet(f"extra/{tag}", qos=0, version=5, packet_id=7))
    _, body = read_until_kind(subscriber, 9)  # SUBACK
    assert body == bytes([0, 7, 0, 0])  # packet id 7, no properties, granted QoS 0
    publisher.send(publish_packet(f"t/{tag}", b"during-fault", qos=1, packet_id=3))
    _, body = read_until_kind(publisher, 4)  # PUBACK
    assert body == bytes([0, 3])
    _, body = read_until_kind(subscriber, 3)
    topic, rest = publish_payload(body, 5)
    assert (topic, rest) == (f"t/{tag}", b"\x00during-fault")
    publisher.send(publish_packet(f"extra/{tag}", b"new-sub", qos=0))
    _, body = read_until_kind(subscriber, 3)
    assert publish_payload(body, 5) == (f"extra/{tag}", b"\x00new-sub")


def saved_queue(data_dir, client_id):
    """Messages saved in credmq.db for `client_id`'s offline queue (read while it runs)."""
    db = sqlite3.connect(os.path.join(data_dir, "credmq.db"), timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM broker_queue WHERE client_id = ?",
                          (client_id,)).fetchone()[0]
    finally:
        db.close()


def integrity_of_copy(data_dir):
    """PRAGMA integrity_check on a copy of the files (the broker's own files stay untouched)."""
    with database_copy(data_dir) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


@pytest.mark.parametrize("fault", ["io-error", "write-error", "full"])
def test_failing_storage_end_to_end(fault):
    with tempfile.TemporaryDirectory(prefix="credmq-faults-") as data_dir:
        control = os.path.join(data_dir, "storage-fault")
        set_fault(control, "none")
        broker = Credmq(ARGS, data_dir=data_dir, env={"CREDMQ_STORAGE_FAULTS": control})
        broker.start()
        instance = broker.instance_id
        admin = broker.admin
        try:
            acked = {f"{GROUP}@@@kept-{i}": admin.register(f"{GROUP}@@@kept-{i}", instance)
                     for i in range(20)}
            gone = f"{GROUP}@@@gone"
            gone_credential = admin.register(gone, instance)
            assert admin.unregister(gone, instance)[0] == 200
            sub_cred = admin.register(f"{GROUP}@@@sub", instance)
            pub_cred = admin.register(f"{GROUP}@@@pub", instance)
            late = acked[f"{GROUP}@@@kept-0"]  # a device that connects during the fault
            subscriber = live_client(broker.mqtt_port, sub_cred, 5)
            subscriber.send(subscribe_packet("t/#", qos=0, version=5, packet_id=1))
            assert read_until_kind(subscriber, 9)[1] == bytes([0, 1, 0, 0])
            publisher = live_client(broker.mqtt_port, pub_cred, 4)
            # A persistent 3.1.1 session, offline: what is queued for it must be saved.
            keeper_cred = admin.register(f"{GROUP}@@@keeper", instance)
            keeper = RawClient(broker.mqtt_port)
            assert keeper.connect(keeper_cred["ClientId"], *device_login(keeper_cred),
                                  clean=False) == 0
            keeper.send(subscribe_packet("q/#", qos=1, packet_id=2))
            assert read_until_kind(keeper, 9)[1] == bytes([0, 2, 1])
            keeper.send(b"\xe0\x00")  # DISCONNECT: the session goes offline
            assert keeper.wait_closed() is None
            keeper.close()

            set_fault(control, fault)
            # Admin writes: every one refused with the spec's InternalError, nothing changed.
            new_client = f"{GROUP}@@@new"
            status, body = admin.call("RegisterDeviceCredential", ClientId=new_client,
                                      InstanceId=instance)
            assert_internal_error(broker, status, body)
            status, body = admin.call("RefreshDeviceCredential", method="POST",
                                      ClientId=sub_cred["ClientId"], InstanceId=instance)
            assert_internal_error(broker, status, body)
            status, body = admin.unregister(late["ClientId"], instance)
            assert_internal_error(broker, status, body)
            # Reads: what storage can still read.
            status, body = admin.call("GetDeviceCredential", ClientId=late["ClientId"],
                                      InstanceId=instance)
            if fault == "io-error":
                assert_internal_error(broker, status, body)
            else:
                assert (status, body["DeviceCredential"]) == (200, late)

            # New CONNECTs: server unavailable, in both protocol versions, also with a
            # credential that is perfectly valid.
            assert device_connack(broker.mqtt_port, late, 4) == 3
            assert device_connack(broker.mqtt_port, late, 5) == 0x88
            # Existing sessions keep working.
            check_existing_sessions_work(subscriber, publisher, "a")
            # A message queued for the offline session cannot be saved yet.
            publisher.send(publish_packet("q/x", b"queued-during-fault", qos=1, packet_id=4))
            assert read_until_kind(publisher, 4)[1] == bytes([0, 4])
            wait_until(lambda: "persistence: saving broker state failed" in broker.log_text(),
                       DEADLINE, "a failed save")

            set_fault(control, "none")
            # Recovery without a restart: the first CONNECTs may still be refused (code 3)
            # until the broker's probe write succeeds (at most one per 200 ms).
            codes = []
            cleared = time.monotonic()
            end = cleared + DEADLINE
            while time.monotonic() < end:
                codes.append(device_connack(broker.mqtt_port, late, 4))
                if codes[-1] == 0:
                    break
            assert codes[-1] == 0 and set(codes[:-1]) <= {3}, codes
            print(f"\n{fault}: {len(codes) - 1} CONNECT(s) refused with 3 after storage came "
                  f"back, accepted after {(time.monotonic() - cleared) * 1000:.0f} ms")
            assert device_connack(broker.mqtt_port, late, 5) == 0
            check_existing_sessions_work(subscriber, publisher, "b")
            # The persistence thread's retries succeed: the queued message reaches the file.
            wait_until(lambda: saved_queue(data_dir, keeper_cred["ClientId"]) == 1, DEADLINE,
                       "the queued message saved")
            # Writes and revocation work again.
            assert admin.register(new_client, instance)["ClientId"] == new_client
            status, body = admin.call("RefreshDeviceCredential", method="POST",
                                      ClientId=sub_cred["ClientId"], InstanceId=instance)
            assert status == 200, body
            assert subscriber.wait_closed() == 0x98
            assert admin.unregister(late["ClientId"], instance)[0] == 200
            del acked[late["ClientId"]]

            # Nothing acknowledged was lost, nothing unregistered came back.
            for client_id, credential in acked.items():
                status, body = admin.call("GetDeviceCredential", ClientId=client_id,
                                          InstanceId=instance)
                assert (status, body["DeviceCredential"]) == (200, credential)
            for client_id in (gone, late["ClientId"]):
                status, body = admin.call("GetDeviceCredential", ClientId=client_id,
                                          InstanceId=instance)
                assert (status, body["Code"]) == (400, "DeviceCredentialNotFound")
            publisher.close()
            log = broker.log_text()
            for credential in [*acked.values(), sub_cred, pub_cred, gone_credential, late,
                               keeper_cred]:
                assert credential["DeviceAccessKeySecret"] not in log
        finally:
            broker.stop(signal.SIGKILL)

        assert integrity_of_copy(data_dir) == [("ok",)]
        again = Credmq(ARGS, data_dir=data_dir)
        again.start()
        try:
            for client_id, credential in acked.items():
                status, body = again.admin.call("GetDeviceCredential", ClientId=client_id,
                                                InstanceId=instance)
                assert (status, body["DeviceCredential"]) == (200, credential)
            first = next(iter(acked.values()))
            assert device_connack(again.mqtt_port, first, 4) == 0
            assert device_connack(again.mqtt_port, late, 4) == 4
            assert device_connack(again.mqtt_port, gone_credential, 4) == 4
            # The persistent session and its message queued during the fault came back.
            keeper = RawClient(again.mqtt_port)
            keeper.send(connect_packet(keeper_cred["ClientId"], *device_login(keeper_cred),
                                       clean=False))
            assert read_until_kind(keeper, 2)[1] == bytes([1, 0])  # session present
            flags, body = read_until_kind(keeper, 3)
            assert flags & 0x06 == 0x02  # QoS 1
            assert body[:5] == b"\x00\x03q/x"
            assert body[7:] == b"queued-during-fault"
            keeper.close()
        finally:
            again.stop()
