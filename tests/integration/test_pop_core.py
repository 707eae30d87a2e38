"""The official Alibaba Cloud RPC client (@alicloud/pop-core) against the real credmq."""
import json
import subprocess

import pytest

from credmq_harness import NODE_CLIENTS, Credmq


@pytest.fixture(scope="module")
def results():
    with Credmq() as broker:
        out = subprocess.run(
            ["node", f"{NODE_CLIENTS}/pop_core_actions.js", f"http://127.0.0.1:{broker.admin_port}",
             broker.admin.key_id, broker.admin.secret, broker.instance_id],
            capture_output=True, text=True, timeout=60, check=True)
        yield json.loads(out.stdout), broker.instance_id


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_all_five_actions_succeed(results, method):
    r, instance = results[0][method], results[1]
    client_id = f"GID_popcore@@@device-{method.lower()}"
    registered = r["register"]["body"]["DeviceCredential"]
    assert r["register"]["ok"] and set(registered) == {
        "ClientId", "InstanceId", "DeviceAccessKeyId", "DeviceAccessKeySecret", "CreateTime",
        "UpdateTime"}
    assert registered["ClientId"] == client_id and registered["InstanceId"] == instance
    assert registered["DeviceAccessKeyId"].startswith("DC.")
    assert isinstance(registered["CreateTime"], int) and isinstance(registered["UpdateTime"], int)
    assert r["get"]["body"]["DeviceCredential"] == registered
    refreshed = r["refresh"]["body"]["DeviceCredential"]
    assert refreshed["DeviceAccessKeyId"] == registered["DeviceAccessKeyId"]
    assert refreshed["DeviceAccessKeySecret"] != registered["DeviceAccessKeySecret"]
    assert refreshed["CreateTime"] == registered["CreateTime"]
    assert refreshed["UpdateTime"] >= registered["UpdateTime"]
    page = r["list"]["body"]["DeviceCredentialClientIdList"]
    assert page["ClientIdList"] == [client_id] if method == "GET" else client_id in page["ClientIdList"]
    assert page["PageNo"] == "1" and page["PageSize"] == "10"
    assert page["Total"] == ("1" if method == "GET" else page["Total"])
    assert set(r["unregister"]["body"]) == {"RequestId"}
    for key in ("register", "get", "refresh", "list", "unregister"):
        assert "Code" not in r[key]["body"]
        request_id = r[key]["body"]["RequestId"]
        assert len(request_id) == 36 and request_id == request_id.upper()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case,code", [
    ("getAfterUnregister", "DeviceCredentialNotFound"),
    ("unregisterMissing", "DeviceCredentialNotFound"),
    ("badSecret", "SignatureDoesNotMatch"),
    ("unknownKey", "InvalidAccessKeyId.NotFound"),
    ("unknownAction", "ApiNotSupport"),
    ("missingClientId", "MissingParameter.ClientId"),
])
def test_errors_are_thrown_with_their_code(results, method, case, code):
    outcome = results[0][method][case]
    assert outcome["ok"] is False, outcome
    assert outcome["code"] == code, outcome
