"""Crash safety: a storm of concurrent Register/Refresh/UnRegister calls against the real
binary, kill -9 at several kill points, restart on the same data dir, and every acknowledged
call is reflected exactly.

Each thread owns its devices, so the calls of one device are sequential and "the latest
acknowledged state" of a device is well defined: after a 200 Register/Refresh, that
credential; after a 200 UnRegister, none; a 400 DeviceCredentialNotFound changes nothing
(and must agree with the model). At the kill each thread has at most one call in flight
(sent, no complete reply). After the restart, per device:

- no call in flight: the state is exactly the acknowledged one (GetDeviceCredential returns
  the same key id, secret, CreateTime and UpdateTime; or DeviceCredentialNotFound);
- Register in flight: the acknowledged state, or a credential with a key id never seen
  before for any device;
- Refresh in flight: the acknowledged state, or (only if a credential was acknowledged) the
  same key id and CreateTime with another secret and a later UpdateTime;
- UnRegister in flight: the acknowledged state, or none.
Anything else (an acknowledged change lost, an unregistered credential back, an older
secret back) fails. The state then found becomes the model for the next round. Also: the
current credential logs in over MQTT (3.1.1 and 5), the last superseded secrets and the
credential of an unregistered device are refused (code 4), `PRAGMA integrity_check` on the
crash image (a copy of credmq.db and credmq.db-wal taken right after the kill) is ok, and
its device_credentials rows are exactly the model's.

Kill points: right after the N-th acknowledged call of the round (N = 1, 25, 200, 1000: the killer
is the thread that got the N-th 200, while the other threads' calls are in flight), and at
random moments (seeded; the seed is printed)."""
import collections
import http.client
import os
import random
import signal
import tempfile
import threading
import time

from credmq_harness import AdminClient, Credmq, database_copy, device_connack

THREADS = 4
DEVICES_PER_THREAD = 8
GROUP = "GID_crash"
ARGS = ["--admin-rate", "1000000", "--auth-fail-limit-client", "0"]
NOT_FOUND = "DeviceCredentialNotFound"
ROUND_DEADLINE = 20.0  # a storm that reaches no kill point in this time fails the test


class Device:
    def __init__(self, client_id):
        self.client_id = client_id
        self.acked = None     # the acknowledged credential (dict) or None
        self.inflight = None  # "Register" / "Refresh" / "UnRegister" with no reply
        self.known = []       # every credential ever acknowledged or found, oldest first


class Storm:
    """Runs the threads until the broker dies; kills it after `kill_after` acknowledged
    calls (or the caller kills it at a random moment)."""

    def __init__(self, broker, devices, kill_after, rng):
        self.broker = broker
        self.devices = devices
        self.kill_after = kill_after
        self.acked = 0
        self.lock = threading.Lock()
        self.errors = []
        self.started = threading.Event()
        self.seeds = [rng.random() for _ in range(THREADS)]

    def kill(self):
        try:
            os.kill(self.broker.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run(self, index):
        rng = random.Random(self.seeds[index])
        mine = self.devices[index * DEVICES_PER_THREAD:(index + 1) * DEVICES_PER_THREAD]
        admin = AdminClient(self.broker.admin_port, self.broker.admin.key_id,
                            self.broker.admin.secret)
        instance = self.broker.instance_id
        self.started.set()
        while True:
            device = rng.choice(mine)
            if device.acked is None:
                action = rng.choices(["Register", "Refresh", "UnRegister"], [70, 15, 15])[0]
            else:
                action = rng.choices(["Register", "Refresh", "UnRegister"], [30, 35, 35])[0]
            device.inflight = action
            try:
                status, body = admin.call(action + "DeviceCredential",
                                          method=rng.choice(["GET", "POST"]),
                                          ClientId=device.client_id, InstanceId=instance)
            except (OSError, http.client.HTTPException):
                return  # the broker is gone; this call stays in flight
            device.inflight = None
            try:
                self.apply(device, action, status, body)
            except AssertionError as error:
                self.errors.append(error)
                self.kill()
                return
            with self.lock:
                self.acked += 1
                reached = self.acked == self.kill_after
            if reached:
                self.kill()

    @staticmethod
    def apply(device, action, status, body):
        if status == 400 and body.get("Code") == NOT_FOUND:
            assert action != "Register" and device.acked is None, (device.client_id, body)
            return
        assert status == 200, (device.client_id, action, status, body)
        if action == "UnRegister":
            assert device.acked is not None, device.client_id
            device.acked = None
            return
        credential = body["DeviceCredential"]
        assert credential["ClientId"] == device.client_id
        if action == "Refresh":
            assert device.acked is not None
            assert credential["DeviceAccessKeyId"] == device.acked["DeviceAccessKeyId"]
        device.acked = credential
        device.known.append(credential)


def crash_image(data_dir):
    """integrity_check result and device_credentials rows of a copy of the files as the
    kill left them (the broker's own files stay untouched for its restart)."""
    with database_copy(data_dir) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        rows = dict(db.execute("SELECT client_id, access_key_id FROM device_credentials "
                               "WHERE client_id LIKE ?", (GROUP + "@@@%",)).fetchall())
    return integrity, rows


def resolve(device, found, all_key_ids):
    """Checks what the restarted broker holds for `device` against the allowed outcomes;
    returns whether the in-flight call took effect."""
    acked, action = device.acked, device.inflight
    if found == acked:
        return False
    where = f"{device.client_id}: acked {acked}, in flight {action}, found {found}"
    if action == "Register":
        assert found is not None and found["ClientId"] == device.client_id, where
        assert found["DeviceAccessKeyId"] not in all_key_ids, where
    elif action == "Refresh" and acked is not None:
        assert found is not None, where
        assert found["DeviceAccessKeyId"] == acked["DeviceAccessKeyId"], where
        assert found["DeviceAccessKeySecret"] != acked["DeviceAccessKeySecret"], where
        assert found["CreateTime"] == acked["CreateTime"], where
        assert found["UpdateTime"] > acked["UpdateTime"], where
    elif action == "UnRegister":
        assert found is None, where
    else:
        raise AssertionError("acknowledged state not reflected: " + where)
    return True


def verify(broker, devices, image_rows):
    """Resolves in-flight calls, checks Get, MQTT logins and the crash image. Returns the
    counts: inflight (calls in flight at the kill), took (of which took effect), logins."""
    all_key_ids = {c["DeviceAccessKeyId"] for d in devices for c in d.known}
    inflight = took = logins = 0
    for device in devices:
        status, body = broker.admin.call("GetDeviceCredential", ClientId=device.client_id,
                                         InstanceId=broker.instance_id)
        if status == 400 and body.get("Code") == NOT_FOUND:
            found = None
        else:
            assert status == 200, body
            found = body["DeviceCredential"]
        if device.inflight:
            inflight += 1
            if resolve(device, found, all_key_ids):
                took += 1
                if found is not None:
                    device.known.append(found)
                device.acked = found
        else:
            assert found == device.acked, (device.client_id, device.acked, found)
        device.inflight = None

        current = device.acked
        if current is not None:
            assert device_connack(broker.mqtt_port, current, 4) == 0, device.client_id
            assert device_connack(broker.mqtt_port, current, 5) == 0, device.client_id
            logins += 2
        # The last three superseded secrets (or the last one of an unregistered device)
        # never log in again.
        old = [c for c in device.known if c is not current][-3:]
        for credential in old:
            assert device_connack(broker.mqtt_port, credential, 4) == 4, \
                (device.client_id, credential)
            logins += 1
    expected = {d.client_id: d.acked["DeviceAccessKeyId"] for d in devices if d.acked}
    assert image_rows == expected
    return collections.Counter(inflight=inflight, took=took, logins=logins)


def test_kill_9_during_a_storm_of_credential_calls():
    seed = int(os.environ.get("CREDMQ_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\ncrash safety: seed {seed} (CREDMQ_CRASH_SEED={seed} repeats it)")
    devices = [Device(f"{GROUP}@@@t{t}-d{i}") for t in range(THREADS)
               for i in range(DEVICES_PER_THREAD)]
    # ("after", N): right after the N-th acknowledged call; ("random", s): s seconds in.
    kill_points = [("after", 1), ("random", rng.uniform(0.0, 0.02)), ("after", 25),
                   ("random", rng.uniform(0.02, 0.1)), ("after", 200),
                   ("random", rng.uniform(0.1, 0.3)), ("after", 1000),
                   ("random", rng.uniform(0.3, 0.8))]
    started = time.monotonic()
    totals = collections.Counter()  # acked, plus what verify() counts, over all rounds
    with tempfile.TemporaryDirectory(prefix="credmq-crash-") as data_dir:
        image_rows = {}  # nothing before the first start
        for kind, value in kill_points:
            broker = Credmq(ARGS, data_dir=data_dir).start()
            try:
                totals += verify(broker, devices, image_rows)
                storm = Storm(broker, devices, value if kind == "after" else None, rng)
                threads = [threading.Thread(target=storm.run, args=(i,), daemon=True)
                           for i in range(THREADS)]
                for thread in threads:
                    thread.start()
                if kind == "random":
                    assert storm.started.wait(ROUND_DEADLINE)
                    threading.Event().wait(value)  # the kill point itself, not a sync
                    storm.kill()
                assert broker.proc.wait(ROUND_DEADLINE) == -signal.SIGKILL, "no kill point"
                for thread in threads:
                    thread.join(ROUND_DEADLINE)
                    assert not thread.is_alive()
                assert not storm.errors, storm.errors
            finally:
                broker.stop(signal.SIGKILL)
            integrity, image_rows = crash_image(data_dir)
            assert integrity == [("ok",)]
            in_flight_now = sum(1 for d in devices if d.inflight)
            totals["acked"] += storm.acked
            print(f"  kill {kind} {value if kind == 'after' else f'{value * 1000:.0f} ms'}: "
                  f"{storm.acked} calls acknowledged, {in_flight_now} in flight at the kill")
        # The last round's image, checked by a final restart.
        final = Credmq(ARGS, data_dir=data_dir).start()
        try:
            totals += verify(final, devices, image_rows)
        finally:
            final.stop()
    print(f"  {len(kill_points)} kills, {totals['acked']} acknowledged calls checked, "
          f"{totals['inflight']} in flight at a kill ({totals['took']} took effect), "
          f"{totals['logins']} MQTT logins checked, {time.monotonic() - started:.1f} s")
