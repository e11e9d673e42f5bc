"""Membership changes with real processes: attach a 4th node and rebalance under a light read/write
load, then detach a node and rebalance with a SIGKILL of a storage node, of the manager and of the
leaving node (for good) in the middle. One cluster for the module; the tests run in order (the second
starts from the first's end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from leofs.internal.messages import SECRET_HEADER, view_decoder
from leofs.ring import Ring, ring_from_bytes
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.internal import replica_meta
from tests.support.servers import CLUSTER_SECRET, Service, free_port

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "moving"
OBJECTS = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    with running(LeofsCluster(tmp_path_factory.mktemp("rebalance"))) as c:
        yield c


@pytest.fixture(scope="module")
def s3(cluster: LeofsCluster) -> Any:
    return make_client(cluster.endpoint, connect_timeout=3, read_timeout=30)


@pytest.fixture(scope="module")
def written(cluster: LeofsCluster, s3: Any) -> dict[str, bytes | None]:
    """Small objects, a few deleted (tombstones move too), and one chunked object (6 MiB)."""
    s3.create_bucket(Bucket=BUCKET)
    objects: dict[str, bytes | None] = {}
    for i in range(OBJECTS):
        key = f"obj-{i:04d}"
        objects[key] = os.urandom(512 + i)
        s3.put_object(Bucket=BUCKET, Key=key, Body=objects[key])
    for i in range(0, OBJECTS, 24):
        s3.delete_object(Bucket=BUCKET, Key=f"obj-{i:04d}")
        objects[f"obj-{i:04d}"] = None
    objects["big"] = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="big", Body=objects["big"])
    return objects


def add_storage_node(cluster: LeofsCluster, name: str) -> Service:
    port = free_port()
    service = Service(name, ["storage", "--name", name, "--data", str(cluster.base / name), "--manager",
                             cluster.manager_address, "--address", f"127.0.0.1:{port}"], [port],
                      cluster.base / f"{name}.log")  # fmt: skip
    cluster.storage[name] = service
    cluster.data_dirs[name] = cluster.base / name
    service.start()
    return service


def api(cluster: LeofsCluster, command: str, address: str | None = None, **args: Any) -> Any:
    """One admin call over HTTP (the manager's, or a node's with ``address``): what `leofs adm --json`
    prints, without starting a Python process per poll."""
    headers = {SECRET_HEADER: CLUSTER_SECRET, "Content-Type": "application/json"}
    req = urllib.request.Request(f"http://{address or cluster.manager_address}/adm/{command}",
                                 data=json.dumps(args).encode(), method="POST", headers=headers)  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    assert answer["ok"], answer
    return answer["result"]


def states(cluster: LeofsCluster) -> dict[str, str]:
    return {n["name"]: n["state"] for n in api(cluster, "status")["nodes"] if n["type"] == "storage"}


def rings(cluster: LeofsCluster) -> tuple[Ring, Ring]:
    """(current, previous) ring as the manager serves them."""
    url = f"http://{cluster.manager_address}/int/cluster"
    req = urllib.request.Request(url, headers={SECRET_HEADER: CLUSTER_SECRET})
    with urllib.request.urlopen(req, timeout=10) as resp:
        view = view_decoder.decode(resp.read())
    return ring_from_bytes(view.ring_current), ring_from_bytes(view.ring_previous)


class Load:
    """A light steady load: one thread writes new objects and reads back acknowledged ones."""

    def __init__(self, s3: Any, expected: dict[str, bytes | None]) -> None:
        self.s3 = s3
        self.expected = expected
        self.errors: list[str] = []
        self.written: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        readable = [k for k, v in self.expected.items() if v is not None and k != "big"]
        i = 0
        while not self._stop.is_set():
            key = f"load-{id(self)}-{i}"
            body = os.urandom(300 + i % 700)
            try:
                self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                self.written[key] = body
                probe = readable[i % len(readable)]
                got = self.s3.get_object(Bucket=BUCKET, Key=probe)["Body"].read()
                if got != self.expected[probe]:
                    self.errors.append(f"{probe}: wrong bytes")
                got = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                if got != body:
                    self.errors.append(f"{key}: wrong bytes right after its write")
            except (BotoCoreError, ClientError) as exc:
                self.errors.append(f"{key}/{i}: {exc}")
            i += 1
            time.sleep(0.02)


def wait_settled(cluster: LeofsCluster, timeout: float) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def settled() -> bool:
        nonlocal last
        last = api(cluster, "rebalance-status")
        return bool(last["state"] == "idle")

    try:
        cluster.wait_until(settled, timeout=timeout, what="the rebalance to settle")
    except TimeoutError:
        print(cluster.logs()[-20000:])
        raise AssertionError(f"the rebalance did not settle in {timeout} s: {last}") from None
    return last


def check_all(s3: Any, objects: dict[str, bytes | None]) -> None:
    for key, body in objects.items():
        if body is None:
            with pytest.raises(ClientError) as err:
                s3.get_object(Bucket=BUCKET, Key=key)
            assert err.value.response["Error"]["Code"] == "NoSuchKey", key
        else:
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body, key


def holders(cluster: LeofsCluster, key: str) -> set[str]:
    """The nodes whose own copy of the object record is live."""
    out = set()
    for name in cluster.storage:
        if cluster.storage[name].alive:
            e = replica_meta(cluster.storage_address(name), f"{BUCKET}/{key}".encode())
            if e is not None and not e.tombstone:
                out.add(name)
    return out


def test_attach_a_fourth_node_and_rebalance_under_load(cluster: LeofsCluster, s3: Any,
                                                       written: dict[str, bytes | None]) -> None:  # fmt: skip
    add_storage_node(cluster, "storage4")
    cluster.wait_until(lambda: states(cluster).get("storage4") == "attached", what="storage4 attached")
    before, _ = rings(cluster)
    t0 = time.monotonic()
    with Load(s3, written) as load:
        time.sleep(0.3)
        result = cluster.adm("rebalance")
        assert result["joining"] == ["storage4"] and result["leaving"] == []
        # N=3 over 4 equal nodes: the new node takes a quarter of all copies, nothing else moves
        assert result["predicted_copies_moved"] == pytest.approx(0.25, abs=0.01)
        status = wait_settled(cluster, timeout=120)
        time.sleep(0.3)
    took = time.monotonic() - t0
    assert not load.errors, load.errors[:5]
    assert len(load.written) > 5
    current, previous = rings(cluster)
    assert current.hash == previous.hash != before.hash and "storage4" in current
    print(f"join: settled in {took:.1f} s; status {status}")
    # every object, old and written meanwhile, readable with its bytes
    check_all(s3, {**written, **load.written})
    # the new node holds exactly the keys its ring lists name it for: about 3/4 of them
    live = [k for k, v in written.items() if v is not None and k != "big"]
    on_new = [k for k in live if "storage4" in holders(cluster, k)]
    owned = [k for k in live if any(m.name == "storage4" for m in current.redundancy(f"{BUCKET}/{k}".encode()))]
    assert set(on_new) == set(owned)
    assert 0.6 < len(on_new) / len(live) < 0.9, len(on_new) / len(live)
    # the fraction of copies moved is the ring's prediction (1/4 of all copies), up to sampling
    assert len(on_new) / (3 * len(live)) == pytest.approx(result["predicted_copies_moved"], abs=0.06)
    # tombstones moved too: a deleted key whose list gained storage4 has its tombstone there
    for key in (k for k, v in written.items() if v is None):
        if any(m.name == "storage4" for m in current.redundancy(f"{BUCKET}/{key}".encode())):
            e = replica_meta(cluster.storage_address("storage4"), f"{BUCKET}/{key}".encode())
            assert e is not None and e.tombstone, key
    # compaction on an old node drops what it no longer owns: every live key is on exactly 3 nodes
    for name in ("storage1", "storage2", "storage3"):
        api(cluster, "compact-start", node=name, wait=True)
    for key in live:
        assert len(holders(cluster, key)) == 3, key
    written.update(load.written)


def test_detach_and_rebalance_survives_sigkill_of_a_node_and_the_manager(
    cluster: LeofsCluster, s3: Any, written: dict[str, bytes | None]
) -> None:
    cluster.adm("detach", "storage1")
    t0 = time.monotonic()
    # slow enough (8 KB/s per node) that the kills land in the middle
    result = cluster.adm("rebalance", "--rate", "0.008")
    assert result["leaving"] == ["storage1"]
    victim = "storage2"

    def pushing() -> bool:
        status = api(cluster, "rebalance-status")
        row = next(n for n in status["nodes"] if n["node"] == victim)
        return bool(row.get("objects", 0) > 0 and not row.get("done"))

    cluster.wait_until(pushing, timeout=60, what=f"{victim} to be pushing")
    shown = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", cluster.manager_address,
                            "--cluster-secret", CLUSTER_SECRET, "rebalance-status"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "nodes done" in shown.stdout and "] " in shown.stdout and victim in shown.stdout, shown.stdout
    # a pushing node and the manager die and come back; the leaving node dies for good (a failed
    # machine): the other old owners push its keys, and the rebalance does not wait for it
    cluster.storage[victim].kill()
    cluster.storage["storage1"].kill()
    cluster.manager.kill()
    cluster.manager.start()
    cluster.storage[victim].start()
    # faster from here, so that the test stays short (the throttle is per node, kept in its checkpoint)
    cluster.wait_until(lambda: states(cluster).get(victim) == "running", timeout=30, what=f"{victim} back")
    for name in ("storage2", "storage3", "storage4"):
        api(cluster, "rebalance-progress", cluster.storage_address(name), rate=10_000_000)
    wait_settled(cluster, timeout=120)
    print(f"leave: settled in {time.monotonic() - t0:.1f} s (kills: a node, the manager, the leaver)")
    current, _ = rings(cluster)
    assert "storage1" not in current and states(cluster)["storage1"] == "detached"
    check_all(s3, written)
    # storage1 is gone: the remaining three hold every copy
    live = [k for k, v in written.items() if v is not None and k != "big"]
    for key in live:
        assert holders(cluster, key) == {"storage2", "storage3", "storage4"}, key
    check_all(s3, written)
