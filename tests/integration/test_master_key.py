"""The real binary refuses to start (clear message, exit status 1, no listener opened, nothing
changed on disk) with a missing, wrong or wrongly sized master key once the database holds
encrypted secrets, also when the database's check value is gone; with the right key back it
starts and the stored credentials work."""
import os
import sqlite3
import subprocess
import tempfile

from credmq_harness import CREDMQ_BIN, Credmq, RawClient, device_login

DEADLINE = 10
CLIENT = "GID_keys@@@device-1"


def start_refused(data_dir):
    """Runs credmq on `data_dir`; returns (exit status, stdout, stderr)."""
    done = subprocess.run([CREDMQ_BIN, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                           "--admin-listen", "127.0.0.1:0"], capture_output=True, text=True,
                          timeout=DEADLINE)
    return done.returncode, done.stdout, done.stderr


def database_rows(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "credmq.db"))
    try:
        return (db.execute("SELECT name, value FROM meta ORDER BY name").fetchall(),
                db.execute("SELECT serial, access_key_id, secret_enc FROM device_credentials "
                           "ORDER BY serial").fetchall())
    finally:
        db.close()


def write_key(path, data):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def test_missing_wrong_and_short_master_keys_are_refused():
    with tempfile.TemporaryDirectory(prefix="credmq-keys-") as data_dir:
        check_refusals(data_dir)


def check_refusals(data_dir):
    key_path = os.path.join(data_dir, "master.key")
    broker = Credmq(data_dir=data_dir).start()
    credential = broker.admin.register(CLIENT, broker.instance_id)
    assert broker.stop() == 0
    with open(key_path, "rb") as f:
        good_key = f.read()
    before = database_rows(data_dir)
    missing = (f"cannot start: storage: master key {key_path} is missing but the database "
               "holds encrypted secrets (restore the master.key backed up with this "
               "credmq.db; a new key could not decrypt them)")
    wrong = ("cannot start: storage: master key does not match the database: its secrets were "
             "sealed with another master.key (restore the master.key backed up with this "
             "credmq.db)")

    def refused(expected_message):
        code, out, err = start_refused(data_dir)
        assert code == 1, (code, out, err)
        assert expected_message in err, err
        assert "listening" not in out and "credmq ready" not in out, out
        assert database_rows(data_dir) == before
        return err

    os.remove(key_path)
    refused(missing)
    assert not os.path.exists(key_path)  # never replaced by a fresh key

    write_key(key_path, os.urandom(32))
    err = refused(wrong)
    assert good_key.hex() not in err

    write_key(key_path, os.urandom(16))
    refused(f"cannot start: storage: master key {key_path} must be a regular file of 32 bytes")

    # Without the check value (an older or damaged meta table) the secrets themselves decide.
    write_key(key_path, good_key)
    db = sqlite3.connect(os.path.join(data_dir, "credmq.db"))
    db.execute("DELETE FROM meta WHERE name = 'key_check'")
    db.commit()
    db.close()
    before = database_rows(data_dir)
    write_key(key_path, os.urandom(32))
    refused(wrong)
    os.remove(key_path)
    refused(missing)
    assert not os.path.exists(key_path)

    # The right key: starts, and the device logs in with its stored credential.
    write_key(key_path, good_key)
    again = Credmq(data_dir=data_dir).start()
    try:
        status, body = again.admin.call("GetDeviceCredential", ClientId=CLIENT,
                                        InstanceId=again.instance_id)
        assert (status, body["DeviceCredential"]) == (200, credential)
        client = RawClient(again.mqtt_port)
        assert client.connect(CLIENT, *device_login(credential), version=5) == 0
        client.close()
    finally:
        assert again.stop() == 0
