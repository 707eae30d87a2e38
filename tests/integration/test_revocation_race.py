"""Revocation racing reconnects (mqtt-auth.md, Revocation item 7): a device reconnects in a
tight loop while UnRegisterDeviceCredential runs. Once the reply is sent, no connection of
that client id may be left open, and none may be newly accepted. Repeated 100 times."""
import threading
import time

from credmq_harness import RawClient, device_login

REPETITIONS = 100


def reconnect_loop(port, cred, stop, first_accept, outcomes):
    username, password = device_login(cred)
    while not stop.is_set():
        client = RawClient(port)
        sent_at = time.monotonic()
        try:
            code = client.connect(cred["ClientId"], username, password)
        except (EOFError, ConnectionError, TimeoutError):
            code = None
        outcomes.append((sent_at, code, client))
        if code == 0:
            first_accept.set()
        else:
            client.close()


def test_no_session_survives_a_racing_revocation(broker):
    accepted_total = refused_after = 0
    for i in range(REPETITIONS):
        cred = broker.admin.register(f"GID_race@@@dev-{i}", broker.instance_id)
        stop, first_accept, outcomes = threading.Event(), threading.Event(), []
        loop = threading.Thread(target=reconnect_loop,
                                args=(broker.mqtt_port, cred, stop, first_accept, outcomes))
        loop.start()
        try:
            assert first_accept.wait(10), "the device never got in"
            status, _ = broker.admin.unregister(cred["ClientId"], broker.instance_id)
            replied_at = time.monotonic()
            assert status == 200
            # Let the loop run into the revoked state for a few more attempts.
            end = time.monotonic() + 5
            while sum(1 for t, _, _ in outcomes if t > replied_at) < 3:
                assert time.monotonic() < end, "the reconnect loop stalled"
                time.sleep(0.001)
        finally:
            stop.set()
            loop.join(10)
        for sent_at, code, client in outcomes:
            if code == 0:
                accepted_total += 1
                assert sent_at < replied_at, "a CONNECT sent after the reply was accepted"
                # Every accepted connection ends: taken over, or closed by the revocation.
                client.wait_closed(deadline=2.0)
                client.close()
            elif sent_at > replied_at:
                assert code == 4, f"expected CONNACK 4 after revocation, got {code}"
                refused_after += 1
    print(f"\nrace: {REPETITIONS} revocations, {accepted_total} accepted connections all closed, "
          f"{refused_after} post-reply CONNECTs refused with code 4")
