"""MQTT over TLS and the admin API over HTTPS: certificates made with the openssl CLI in a
temporary directory; mosquitto_sub/pub, openssl s_client, curl and Python's ssl as clients.
Also: mutual TLS, revocation of a TLS session, SIGHUP certificate reload, the admin bind rule.
Everything talks to 127.0.0.1 only."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import urllib.parse

import pytest

from credmq_harness import (CREDMQ_BIN, Credmq, LineReader, RawClient, connect_packet,
                            device_login, publish_packet, subscribe_packet, wait_until)
from test_admin_cli import credmq_admin

DISCONNECT_ADMINISTRATIVE_ACTION = 0x98


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA, server certificates for 127.0.0.1 with chosen serials, and client certificates."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = self._ca("ca", "credmq-test-ca")
        self.other_ca = self._ca("other-ca", "credmq-other-ca")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, common_name):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={common_name}",
                cwd=self.dir)
        return self.path(f"{name}.pem")

    def issue(self, name, common_name, serial, ca="ca", server=True):
        """Writes name.pem and name.key, signed by `ca`, with this serial number."""
        with open(self.path(f"{name}.ext"), "w") as f:
            if server:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={common_name}", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-set_serial", str(serial), "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem", cwd=self.dir)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="credmq-pki-") as directory:
        authority = Pki(directory)
        authority.issue("server", "credmq-server-1", 4097)
        authority.issue("client", "GID_tls@@@mutual", 8193, server=False)
        authority.issue("stranger", "GID_tls@@@stranger", 8194, ca="other-ca", server=False)
        yield authority


def tls_args(pki, *more):
    return ["--tls-listen", "127.0.0.1:0", "--tls-cert", pki.path("server.pem"),
            "--tls-key", pki.path("server.key"), *more]


@pytest.fixture(scope="module")
def broker(pki):
    with Credmq(tls_args(pki, "--admin-tls-cert", pki.path("server.pem"), "--admin-tls-key",
                         pki.path("server.key")), admin_cafile=pki.ca) as running:
        yield running


def client_context(pki, cert=None, key=None, version=None):
    context = ssl.create_default_context(cafile=pki.ca)
    if cert:
        context.load_cert_chain(cert, key)
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def peer_certificate(port, pki):
    """serialNumber and subject CN the server presents to a new handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cert = tls.getpeercert()
    common_name = dict(entry[0] for entry in cert["subject"])["commonName"]
    return cert["serialNumber"], common_name


def mosquitto_tls(pki, broker, cred, version="mqttv311"):
    username, password = device_login(cred)
    return ["-h", "127.0.0.1", "-p", str(broker.tls_port), "--cafile", pki.ca, "-V", version,
            "-i", cred["ClientId"], "-u", username, "-P", password]


def s_client(port, *args):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input="", capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_round_trip_over_tls_with_device_credentials(pki, broker, version):
    sub_cred = broker.admin.register(f"GID_tls@@@sub-{version}", broker.instance_id)
    pub_cred = broker.admin.register(f"GID_tls@@@pub-{version}", broker.instance_id)
    topic = f"tls/{version}"
    sub = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", *mosquitto_tls(pki, broker, sub_cred, version),
         "-t", topic, "-q", "1", "-C", "1", "-d"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(sub.stdout)
    try:
        output.read_until("received SUBACK")
        pub = subprocess.run(
            ["mosquitto_pub", *mosquitto_tls(pki, broker, pub_cred, version), "-t", topic,
             "-q", "1", "-m", "over tls", "-d"], capture_output=True, text=True, timeout=10)
        assert pub.returncode == 0, pub.stdout + pub.stderr
        assert "received PUBACK" in pub.stdout
        assert output.read_until("over tls")[-1] == "over tls"
        assert sub.wait(10) == 0
    finally:
        if sub.poll() is None:
            sub.kill()
        sub.stdout.close()


def test_wrong_password_over_tls_is_refused(pki, broker):
    cred = broker.admin.register("GID_tls@@@refused", broker.instance_id)
    client = RawClient(broker.tls_port, tls=client_context(pki))
    try:
        username, _ = device_login(cred)
        assert client.connect(cred["ClientId"], username, "TdyH2E2stRxzQGZgijzPcfDrEmk=") == 4
    finally:
        client.close()


def test_plain_mqtt_on_the_tls_port_is_closed(broker):
    client = RawClient(broker.tls_port)
    try:
        client.send(connect_packet("plain-on-tls"))
        assert client.wait_closed(deadline=5.0) is None
    finally:
        client.close()


def test_tls_1_1_is_refused(broker):
    result = s_client(broker.tls_port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert result.returncode != 0
    assert "alert protocol version" in result.stdout + result.stderr


@pytest.mark.parametrize("flag,protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_handshake(pki, broker, flag, protocol):
    result = s_client(broker.tls_port, flag, "-CAfile", pki.ca, "-verify_return_error")
    assert result.returncode == 0, result.stdout + result.stderr
    # The "New, ..." line is printed for every handshake; the SSL-Session block of TLS 1.3
    # only once a session ticket arrived, which may be after s_client's input ended.
    assert f"New, {protocol}, Cipher is " in result.stdout
    assert "Verify return code: 0 (ok)" in result.stdout


def test_revocation_closes_a_tls_session(pki, broker):
    cred = broker.admin.register("GID_tls@@@revoked", broker.instance_id)
    device = RawClient(broker.tls_port, tls=client_context(pki))
    try:
        username, password = device_login(cred)
        assert device.connect(cred["ClientId"], username, password, version=5) == 0
        status, _ = broker.admin.unregister(cred["ClientId"], broker.instance_id)
        assert status == 200
        assert device.wait_closed(deadline=5.0) == DISCONNECT_ADMINISTRATIVE_ACTION
    finally:
        device.close()
    again = RawClient(broker.tls_port, tls=client_context(pki))
    try:
        assert again.connect(cred["ClientId"], username, password, version=5) == 0x86
    finally:
        again.close()


def test_takeover_between_tcp_and_tls(pki, broker):
    cred = broker.admin.register("GID_tls@@@takeover", broker.instance_id)
    username, password = device_login(cred)
    first = RawClient(broker.tls_port, tls=client_context(pki))
    second = RawClient(broker.mqtt_port)
    try:
        assert first.connect(cred["ClientId"], username, password, version=5) == 0
        assert second.connect(cred["ClientId"], username, password, version=5) == 0
        assert first.wait_closed(deadline=5.0) == 0x8E  # session taken over
        assert second.is_open()
    finally:
        first.close()
        second.close()


def test_keep_alive_timeout_on_tls(pki, broker):
    cred = broker.admin.register("GID_tls@@@silent", broker.instance_id)
    username, password = device_login(cred)
    device = RawClient(broker.tls_port, tls=client_context(pki))
    try:
        assert device.connect(cred["ClientId"], username, password, version=5, keepalive=1) == 0
        # Nothing sent: closed after 1.5 x Keep Alive with DISCONNECT 0x8D.
        assert device.wait_closed(deadline=5.0) == 0x8D
    finally:
        device.close()


def test_admin_over_https_with_curl(pki, broker):
    signed = broker.admin.signed_params(
        "GetDeviceCredential", {"ClientId": "GID_tls@@@sub-mqttv311",
                                "InstanceId": broker.instance_id})
    query = urllib.parse.urlencode(signed, quote_via=urllib.parse.quote)
    result = subprocess.run(
        ["curl", "-sS", "--cacert", pki.ca, "-w", "\n%{http_code}",
         f"https://127.0.0.1:{broker.admin_port}/?{query}"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200"
    assert '"ClientId":"GID_tls@@@sub-mqttv311"' in body
    plain = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{broker.admin_port}/"],
                           capture_output=True, text=True, timeout=20)
    assert plain.returncode != 0  # plain HTTP on the HTTPS port gets no HTTP answer


def test_mutual_tls(pki):
    with Credmq(tls_args(pki, "--tls-ca", pki.ca, "--tls-require-client-cert")) as broker:
        cred = broker.admin.register("GID_tls@@@mutual", broker.instance_id)
        base = ["mosquitto_pub", *mosquitto_tls(pki, broker, cred), "-t", "m", "-m", "x",
                "-q", "1"]
        without = subprocess.run(base, capture_output=True, text=True, timeout=20)
        assert without.returncode != 0
        stranger = subprocess.run(base + ["--cert", pki.path("stranger.pem"),
                                          "--key", pki.path("stranger.key")],
                                  capture_output=True, text=True, timeout=20)
        assert stranger.returncode != 0
        right = subprocess.run(base + ["--cert", pki.path("client.pem"),
                                       "--key", pki.path("client.key"), "-d"],
                               capture_output=True, text=True, timeout=20)
        assert right.returncode == 0, right.stdout + right.stderr
        assert "received PUBACK" in right.stdout
        # TLS 1.2 fails the handshake itself without a certificate.
        refused = s_client(broker.tls_port, "-tls1_2", "-CAfile", pki.ca)
        assert refused.returncode != 0
        accepted = s_client(broker.tls_port, "-tls1_2", "-CAfile", pki.ca,
                            "-cert", pki.path("client.pem"), "-key", pki.path("client.key"))
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_sighup_reloads_certificates_and_keeps_sessions(pki):
    live = tempfile.mkdtemp(prefix="credmq-live-pki-")
    try:
        cert, key = os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")
        shutil.copy(pki.path("server.pem"), cert)
        shutil.copy(pki.path("server.key"), key)
        args = ["--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                "--admin-tls-cert", cert, "--admin-tls-key", key]
        with Credmq(args, admin_cafile=pki.ca) as broker:
            assert peer_certificate(broker.tls_port, pki) == ("1001", "credmq-server-1")
            cred = broker.admin.register("GID_tls@@@stays", broker.instance_id)
            username, password = device_login(cred)
            device = RawClient(broker.tls_port, tls=client_context(pki))
            try:
                assert device.connect(cred["ClientId"], username, password, version=5) == 0
                device.send(subscribe_packet("reload/t", qos=0, version=5))
                assert device.read_packet()[0] == 9  # SUBACK

                new_cert, new_key = pki.issue("reloaded", "credmq-server-2", 12288)
                shutil.copy(new_cert, cert)
                shutil.copy(new_key, key)
                broker.proc.send_signal(signal.SIGHUP)
                wait_until(lambda: "TLS: reloaded the admin" in broker.log_text(),
                           what="reload logged")
                assert peer_certificate(broker.tls_port, pki) == ("3000", "credmq-server-2")
                assert peer_certificate(broker.admin_port, pki) == ("3000", "credmq-server-2")

                # The session made before the reload still works, both ways.
                device.send(publish_packet("reload/t", b"after reload", version=5))
                kind, _, body = device.read_packet()
                assert kind == 3 and body.endswith(b"after reload")
                assert device.is_open()

                # A bad file keeps the previous context.
                with open(cert, "w") as f:
                    f.write("not a certificate\n")
                broker.proc.send_signal(signal.SIGHUP)
                wait_until(lambda: "keeping the previous ones" in broker.log_text(),
                           what="reload failure logged")
                assert "TLS: reloading the MQTT files failed" in broker.log_text()
                assert peer_certificate(broker.tls_port, pki) == ("3000", "credmq-server-2")
                assert device.is_open()
                status, _ = broker.admin.call("GetDeviceCredential", ClientId=cred["ClientId"],
                                              InstanceId=broker.instance_id)
                assert status == 200
            finally:
                device.close()
            assert broker.stop() == 0
    finally:
        shutil.rmtree(live, ignore_errors=True)


def run_credmq(*args):
    data_dir = tempfile.mkdtemp(prefix="credmq-bind-")
    try:
        result = subprocess.run([CREDMQ_BIN, "--data-dir", os.path.join(data_dir, "d"),
                                 "--listen", "127.0.0.1:0", *args],
                                capture_output=True, text=True, timeout=20)
        created = os.path.exists(os.path.join(data_dir, "d"))
        return result, created
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_admin_refuses_non_loopback_without_tls(address):
    # Refused before anything binds or the data dir is created: nothing leaves loopback.
    result, created = run_credmq("--admin-listen", address)
    assert result.returncode == 1
    assert "refusing to serve the admin API on non-loopback address" in result.stderr
    assert "--admin-insecure" in result.stderr
    assert not created


def test_tls_options_are_checked():
    result, _ = run_credmq("--admin-listen", "127.0.0.1:0", "--tls-cert", "x.pem")
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    result, _ = run_credmq("--admin-listen", "127.0.0.1:0", "--tls-cert", "x.pem",
                           "--tls-key", "x.key", "--tls-require-client-cert")
    assert result.returncode == 2
    assert "--tls-require-client-cert needs --tls-ca" in result.stderr
    result, created = run_credmq("--admin-listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                                 "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/x.key")
    assert result.returncode == 1
    assert "cannot load TLS certificate /nonexistent/cert.pem" in result.stderr
    assert not created


def test_credmq_admin_over_https(pki, broker):
    """The README's admin client speaks HTTPS to an admin listener with TLS."""
    endpoint = f"https://127.0.0.1:{broker.admin_port}"
    args = ("GetDeviceCredential", "ClientId=GID_tls@@@sub-mqttv311")
    result = credmq_admin(*args, data_dir=broker.data_dir, endpoint=endpoint,
                          extra=("--cacert", pki.ca))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["DeviceCredential"]["ClientId"] == "GID_tls@@@sub-mqttv311"
    untrusted = credmq_admin(*args, data_dir=broker.data_dir, endpoint=endpoint)
    assert untrusted.returncode == 2
    assert "certificate verify failed" in untrusted.stderr
    assert "pass --cacert FILE" in untrusted.stderr
    wrong_ca = credmq_admin(*args, data_dir=broker.data_dir, endpoint=endpoint,
                            extra=("--cacert", pki.other_ca))
    assert wrong_ca.returncode == 2
    assert "is --cacert the CA that signed the admin certificate?" in wrong_ca.stderr
    missing = credmq_admin(*args, data_dir=broker.data_dir, endpoint=endpoint,
                           extra=("--cacert", pki.path("no-such-ca.pem")))
    assert missing.returncode == 2
    assert f"--cacert {pki.path('no-such-ca.pem')}: no such file" in missing.stderr
    plain = credmq_admin(*args, data_dir=broker.data_dir,
                         endpoint=f"127.0.0.1:{broker.admin_port}")
    assert plain.returncode == 2
    assert "use --endpoint https://HOST:PORT" in plain.stderr
