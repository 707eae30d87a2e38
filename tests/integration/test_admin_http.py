"""The admin API over plain HTTP against the real binary: JSON on every path, both status and
Code on errors, GET/POST forms, Expect: 100-continue."""
import json
import socket
import subprocess
import urllib.parse

from credmq_harness import DEFAULT_DEADLINE

JSON_TYPE = "application/json;charset=utf-8"


def test_error_bodies_have_status_code_and_json(broker):
    cases = [
        ("/?Action=GetDeviceCredential", 400, "MissingParameter.AccessKeyId"),
        ("/nowhere", 404, "ApiNotSupport"),
    ]
    for path, status, code in cases:
        got_status, headers, data = broker.admin.raw("GET", path)
        body = json.loads(data)
        assert (got_status, body["Code"]) == (status, code)
        assert set(body) == {"RequestId", "HostId", "Code", "Message"}
        assert headers["Content-Type"] == JSON_TYPE


def test_signature_mismatch_and_unknown_action(broker):
    params = broker.admin.signed_params("GetDeviceCredential",
                                        {"ClientId": "GID_http@@@d1",
                                         "InstanceId": broker.instance_id})
    params["ClientId"] = "GID_http@@@d2"  # tampered after signing
    status, _, data = broker.admin.raw("GET", "/?" + urllib.parse.urlencode(params))
    assert (status, json.loads(data)["Code"]) == (400, "SignatureDoesNotMatch")
    status, body = broker.admin.call("DescribeNothing", InstanceId=broker.instance_id)
    assert (status, body["Code"]) == (404, "ApiNotSupport")
    status, body = broker.admin.call("GetDeviceCredential", ClientId="GID_http@@@missing",
                                     InstanceId=broker.instance_id)
    assert (status, body["Code"]) == (400, "DeviceCredentialNotFound")
    assert body["Message"] == ("Device Credential Not Found. Check if the device certificate "
                               "is registered.")
    status, body = broker.admin.call("RegisterDeviceCredential", ClientId="no-group-here",
                                     InstanceId=broker.instance_id)
    assert (status, body["Code"]) == (400, "InvalidParameter.ClientId")


def test_post_with_everything_in_the_query_and_an_empty_body(broker):
    params = broker.admin.signed_params("RegisterDeviceCredential",
                                        {"ClientId": "GID_http@@@query-post",
                                         "InstanceId": broker.instance_id}, method="POST")
    status, headers, data = broker.admin.raw("POST", "/?" + urllib.parse.urlencode(params),
                                             body=b"")
    assert status == 200, data
    assert json.loads(data)["DeviceCredential"]["ClientId"] == "GID_http@@@query-post"


def test_expect_100_continue_gets_an_interim_response(broker):
    params = broker.admin.signed_params("ListDeviceCredentialClientId",
                                        {"GroupId": "GID_http", "InstanceId": broker.instance_id,
                                         "Padding": "x" * 2000}, method="POST")
    body = urllib.parse.urlencode(params).encode()
    with socket.create_connection(("127.0.0.1", broker.admin_port), DEFAULT_DEADLINE) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Expect: 100-continue\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200 OK")


def test_curl_post(broker):
    params = broker.admin.signed_params("GetDeviceCredential",
                                        {"ClientId": "GID_http@@@query-post",
                                         "InstanceId": broker.instance_id}, method="POST")
    out = subprocess.run(["curl", "-sS", "-X", "POST", "--data",
                          urllib.parse.urlencode(params),
                          f"http://127.0.0.1:{broker.admin_port}/"],
                         capture_output=True, text=True, timeout=DEFAULT_DEADLINE, check=True)
    assert json.loads(out.stdout)["DeviceCredential"]["ClientId"] == "GID_http@@@query-post"
