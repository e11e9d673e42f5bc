"""`leofs adm` against a real embedded server: users, buckets, ACLs, endpoints, status, the secret."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer


@pytest.fixture
def server(embedded_server: LeofsServer) -> LeofsServer:
    """These tests are about the embedded server's admin API (the cluster's is in tests/cluster)."""
    return embedded_server


def adm(server: LeofsServer, *args: str, secret: str = CLUSTER_SECRET, json_out: bool = True,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", secret]
    if json_out:
        cmd.append("--json")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=check)


def adm_json(server: LeofsServer, *args: str) -> Any:
    return json.loads(adm(server, *args).stdout)


def test_users_lifecycle_and_their_keys_work_over_s3(server: LeofsServer) -> None:
    user = adm_json(server, "create-user", "alice-adm")
    assert set(user) >= {"user_id", "access_key", "secret_key"}
    assert user["user_id"] == "alice-adm"
    listed = adm_json(server, "get-users")
    assert any(u["user_id"] == "alice-adm" and u["access_key"] == user["access_key"] for u in listed)
    assert all("secret_key" not in u for u in listed)
    alice = make_client(server.endpoint, access_key=user["access_key"], secret_key=user["secret_key"])
    alice.create_bucket(Bucket="alice-adm-bucket")
    assert [b["Name"] for b in alice.list_buckets()["Buckets"]] == ["alice-adm-bucket"]
    again = adm(server, "create-user", "alice-adm", check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    adm(server, "delete-user", "alice-adm")
    with pytest.raises(ClientError) as err:
        alice.list_buckets()
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_buckets_and_acls(server: LeofsServer) -> None:
    user = adm_json(server, "create-user", "bob-adm")
    created = adm_json(server, "add-bucket", "bob-adm-logs", user["access_key"])
    assert created["name"] == "bob-adm-logs" and created["owner"] == user["access_key"]
    buckets = adm_json(server, "get-buckets")
    assert any(b["name"] == "bob-adm-logs" for b in buckets)
    assert [b["name"] for b in adm_json(server, "get-bucket", user["access_key"])] == ["bob-adm-logs"]
    bob = make_client(server.endpoint, access_key=user["access_key"], secret_key=user["secret_key"])
    bob.put_object(Bucket="bob-adm-logs", Key="hello.txt", Body=b"hi")
    anon = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        anon.get_object(Bucket="bob-adm-logs", Key="hello.txt")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    adm(server, "update-acl", "bob-adm-logs", user["access_key"], "public-read")
    # bucket READ lists; the object itself follows its own (private) ACL, as in S3
    assert [o["Key"] for o in anon.list_objects(Bucket="bob-adm-logs")["Contents"]] == ["hello.txt"]
    with pytest.raises(ClientError) as err:
        anon.get_object(Bucket="bob-adm-logs", Key="hello.txt")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    bad = adm(server, "update-acl", "bob-adm-logs", user["access_key"], "everyone-may", check=False)
    assert bad.returncode != 0
    not_empty = adm(server, "delete-bucket", "bob-adm-logs", user["access_key"], check=False)
    assert not_empty.returncode != 0 and "not empty" in not_empty.stderr
    bob.delete_object(Bucket="bob-adm-logs", Key="hello.txt")
    adm(server, "delete-bucket", "bob-adm-logs", user["access_key"])
    assert not any(b["name"] == "bob-adm-logs" for b in adm_json(server, "get-buckets"))


def test_endpoints_status_and_human_output(server: LeofsServer) -> None:
    assert "localhost" in adm_json(server, "get-endpoints")
    adm(server, "add-endpoint", "s3.example.test")
    assert "s3.example.test" in adm_json(server, "get-endpoints")
    adm(server, "delete-endpoint", "s3.example.test")
    assert "s3.example.test" not in adm_json(server, "get-endpoints")
    status = adm_json(server, "status")
    assert status["consistency"] == {"n": 1, "w": 1, "r": 1, "d": 1}
    assert {n["type"] for n in status["nodes"]} == {"storage", "gateway"}
    table = adm(server, "get-users", json_out=False).stdout
    assert "user_id" in table.splitlines()[0] and "root" in table
    du = adm_json(server, "du", "embedded")
    assert len(du) == 8 and all({"active_count", "total_bytes"} <= set(c) for c in du)


def test_wrong_cluster_secret_is_refused(server: LeofsServer) -> None:
    result = adm(server, "get-users", secret="not-the-secret", check=False)
    assert result.returncode != 0
    assert "secret" in result.stderr


def test_metrics_are_served_in_prometheus_format(server: LeofsServer) -> None:
    import urllib.request

    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket="metrics-probe")
    s3.put_object(Bucket="metrics-probe", Key="k", Body=b"v")
    for url in (f"http://{server.admin}/metrics", f"{server.endpoint}/_leofs_adm/metrics"):
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        assert 'leofs_s3_requests_total{operation="PutObject",status="200"}' in text
        assert "leofs_s3_request_seconds_bucket" in text
        assert 'leofs_storage_syncs_total{node="embedded"}' in text
