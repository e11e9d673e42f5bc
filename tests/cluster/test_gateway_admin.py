"""A cluster gateway's admin commands live on its own listener, not on the public S3 port; the
manager reaches them there; every listener that checks the cluster secret throttles guessing; a gc
grace is never shorter than an upload in flight may take."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.servers import CLUSTER_SECRET, process_env

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    c = LeofsCluster(tmp_path_factory.mktemp("gwadmin"), nodes=1, n=1, w=1, r=1, d=1,
                     gateway_args=("--body-deadline", "30"))
    try:
        c.start()
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    yield c
    c.stop()


def post(address: str, path: str, secret: str | None = CLUSTER_SECRET, body: Any = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Leofs-Cluster-Secret"] = secret
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body or {}).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_admin_commands_are_not_served_on_the_s3_port(cluster: LeofsCluster) -> None:
    s3 = make_client(cluster.endpoint)
    s3.create_bucket(Bucket="adm-port")
    upload = s3.create_multipart_upload(Bucket="adm-port", Key="open")["UploadId"]
    for command in ("expire-uploads", "gc", "purge-cache"):
        status, body = post(f"127.0.0.1:{cluster.gateway_port}", f"/_leofs_adm/{command}",
                            body={"older_than": 0, "grace": 0})
        assert status in (400, 403, 404, 405), (command, status, body)
        assert b'"ok"' not in body
    assert s3.list_parts(Bucket="adm-port", Key="open", UploadId=upload)["UploadId"] == upload
    # the health and metrics URLs stay on the S3 port
    with urllib.request.urlopen(f"{cluster.endpoint}/_leofs_adm/ping", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{cluster.endpoint}/_leofs_adm/metrics", timeout=10) as r:
        assert b"leofs_s3_requests" in r.read()


def test_the_manager_sends_gateway_commands_to_the_admin_listener(cluster: LeofsCluster) -> None:
    s3 = make_client(cluster.endpoint)
    s3.create_bucket(Bucket="adm-listener")
    upload = s3.create_multipart_upload(Bucket="adm-listener", Key="old")["UploadId"]
    assert cluster.adm("expire-uploads", "--older-than", "0")["deleted"] >= 1
    assert s3.list_multipart_uploads(Bucket="adm-listener").get("Uploads", []) == []
    del upload
    report = cluster.adm("gc", "--grace", "0")
    assert report["grace"] == 60.0  # raised to twice the gateway's --body-deadline
    purged = cluster.adm("purge-cache", "adm-listener/old")
    assert [p["ok"] for p in purged] == [True]
    # and the listener itself answers with the secret only
    admin = f"127.0.0.1:{cluster.gateway_admin_port}"
    assert post(admin, "/adm/purge-cache", body={"path": "a/b"})[0] == 200
    assert post(admin, "/adm/gc", secret="wrong-secret-0000000")[0] == 403


def hammer(address: str, path: str) -> list[int]:
    """Failed secret checks until the listener throttles (at most 40)."""
    statuses = []
    for _ in range(40):
        status, _body = post(address, path, secret="not-the-cluster-secret")
        statuses.append(status)
        if status == 429:
            break
    return statuses


def test_failed_secret_checks_are_throttled_on_every_listener(cluster: LeofsCluster) -> None:
    node = next(iter(cluster.storage.values()))
    storage_port = node.ports[0]
    listeners = [
        (cluster.manager_address, "/adm/get-users"),
        (f"127.0.0.1:{cluster.gateway_admin_port}", "/adm/gc"),
        (f"127.0.0.1:{storage_port}", "/adm/du"),
    ]
    for address, path in listeners:
        statuses = hammer(address, path)
        assert statuses[0] == 403, (address, statuses)
        assert statuses[-1] == 429, (address, statuses)  # throttled after a burst
        # the right secret still passes: a host's processes share its address
        assert post(address, path)[0] == 200, address
    # every process here talks from 127.0.0.1: the cluster's own calls were never refused meanwhile

    cluster.wait_until(lambda: set(cluster.node_states().values()) == {"running"}, what="nodes running")
    cluster.wait_gateway_ready()
    s3 = make_client(cluster.endpoint)
    s3.create_bucket(Bucket="throttled")
    s3.put_object(Bucket="throttled", Key="k", Body=b"v")
    assert s3.get_object(Bucket="throttled", Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("role", ["manager", "storage", "gateway"])
def test_a_short_cluster_secret_is_refused(role: str, tmp_path: Path) -> None:
    args = {
        "manager": ["manager", "--data", str(tmp_path / "m"), "--address", "127.0.0.1:1"],
        "storage": ["storage", "--name", "s", "--data", str(tmp_path / "s"), "--manager", "127.0.0.1:1",
                    "--address", "127.0.0.1:1"],
        "gateway": ["gateway", "--manager", "127.0.0.1:1", "--address", "127.0.0.1:1", "--admin-address",
                    "127.0.0.1:1"],
    }[role]
    env = dict(process_env(), LEOFS_CLUSTER_SECRET="too-short")
    out = subprocess.run([sys.executable, "-m", "leofs", *args], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2, out
    assert "at least 16 bytes" in out.stderr
