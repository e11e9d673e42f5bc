"""Durability from the outside: SIGKILL during concurrent S3 writes, and compaction through `leofs adm`."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer

pytestmark = pytest.mark.slow

SIZES = [0, 1, 1000, 4096, 65536, 300_000, 6 * 1024 * 1024 + 3]  # the last one is stored in chunks


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ledger:
    """Which states each key may hold after a crash.

    Every operation has an interval [start, end] on one counter (end None while in flight). The
    store resolves concurrent writes by clock, and a clock is taken inside the interval, so an
    operation can be the final one unless an acknowledged operation started after it ended.
    Operations in flight at the crash may or may not have happened.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0
        self.ops: dict[str, list[list[Any]]] = {}

    def begin(self, key: str, outcome: str | None) -> list[Any]:
        with self.lock:
            self.seq += 1
            op = [self.seq, None, outcome]
            self.ops.setdefault(key, []).append(op)
            return op

    def ack(self, op: list[Any]) -> None:
        with self.lock:
            self.seq += 1
            op[1] = self.seq

    def settle(self, key: str, outcome: str | None) -> None:
        """After a restart: the state now read is the only history of the key."""
        with self.lock:
            self.seq += 1
            self.ops[key] = [[self.seq, self.seq, outcome]]

    def allowed(self, key: str) -> set[str | None]:
        with self.lock:
            ops = self.ops.get(key, [])
            if not ops:
                return {None}
            done = [op for op in ops if op[1] is not None]
            allowed = {op[2] for op in ops if op[1] is None or not any(other[0] > op[1] for other in done)}
            if not done:  # nothing acknowledged yet: the key may still be absent
                allowed.add(None)
            return allowed

    def acknowledged(self) -> int:
        with self.lock:
            return sum(1 for ops in self.ops.values() for op in ops if op[1] is not None and op[2] is not None)


def _writer(endpoint: str, bucket: str, keys: list[str], ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rnd = random.Random(seed)
    s3 = make_client(endpoint, connect_timeout=2, read_timeout=10)
    while not stop.is_set():
        key = rnd.choice(keys)
        try:
            if rnd.random() < 0.25:
                op = ledger.begin(key, None)
                s3.delete_object(Bucket=bucket, Key=key)
                ledger.ack(op)
            else:
                data = rnd.randbytes(rnd.choice(SIZES))
                op = ledger.begin(key, _digest(data))
                s3.put_object(Bucket=bucket, Key=key, Body=data)
                ledger.ack(op)
        except (BotoCoreError, ClientError, OSError):
            if stop.is_set():
                return
            time.sleep(0.05)


def _read_state(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return _digest(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as err:
        assert err.response["Error"]["Code"] == "NoSuchKey", err.response
        return None


def test_sigkill_during_concurrent_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data")
    server.start()
    try:
        s3 = make_client(server.endpoint)
        bucket = "crash"
        s3.create_bucket(Bucket=bucket)
        keys = [f"k/{i:03d}" for i in range(40)] + ["uni/ü x+y%z", "a//b/../c"]
        ledger = Ledger()
        rnd = random.Random(7)
        for round_ in range(4):
            stop = threading.Event()
            threads = [
                threading.Thread(target=_writer, args=(server.endpoint, bucket, keys, ledger, stop, round_ * 10 + i))
                for i in range(6)
            ]
            acked_before = ledger.acknowledged()
            for t in threads:
                t.start()
            # kill at a random moment after the writes are flowing (a loaded machine may take
            # seconds to answer the first one)
            deadline = time.monotonic() + 60
            while ledger.acknowledged() == acked_before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rnd.uniform(0.2, 1.5))
            server.kill()
            stop.set()
            for t in threads:
                t.join(30)
            server.start()
            s3 = make_client(server.endpoint)
            assert ledger.acknowledged() > 0, "the writers never got an acknowledgement"
            for key in keys:
                state = _read_state(s3, bucket, key)
                assert state in ledger.allowed(key), f"round {round_}: {key!r} holds {state}, expected one of " \
                    f"{ledger.allowed(key)}; history {ledger.ops.get(key)}"
                ledger.settle(key, state)
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _adm(server: LeofsServer, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET,
         "--json", *args],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return json.loads(out.stdout)


def test_compaction_through_adm_reclaims_overwritten_and_deleted_space(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data")
    server.start()
    try:
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="compact")
        rnd = random.Random(3)
        expected: dict[str, bytes] = {}
        for i in range(40):
            data = rnd.randbytes(256 * 1024)
            s3.put_object(Bucket="compact", Key=f"obj/{i}", Body=data)
            expected[f"obj/{i}"] = data
        for i in range(20):  # overwrite half
            data = rnd.randbytes(256 * 1024)
            s3.put_object(Bucket="compact", Key=f"obj/{i}", Body=data)
            expected[f"obj/{i}"] = data
        for i in range(20, 40):  # delete the other half
            s3.delete_object(Bucket="compact", Key=f"obj/{i}")
            del expected[f"obj/{i}"]
        storage = server.data_dir / "storage"
        before = _tree_size(storage)
        usage = _adm(server, "du", "embedded")
        assert sum(c["total_bytes"] for c in usage) > sum(c["active_bytes"] for c in usage)
        _adm(server, "compact-start", "embedded", "all", "--wait")
        status = _adm(server, "compact-status", "embedded")
        assert status["state"] == "idle"
        after = _tree_size(storage)
        assert after < 0.6 * before, (before, after)
        for key, data in expected.items():
            assert s3.get_object(Bucket="compact", Key=key)["Body"].read() == data
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="compact")["Contents"]]
        assert sorted(listed) == sorted(expected)
        report = _adm(server, "diagnose-start", "embedded")
        assert report["count"] == 0
        # and it all survives a restart
        server.restart()
        s3 = make_client(server.endpoint)
        for key, data in expected.items():
            assert s3.get_object(Bucket="compact", Key=key)["Body"].read() == data
    finally:
        server.stop()
    assert os.path.isdir(tmp_path / "data")


def test_disk_full_refuses_writes_with_507_and_keeps_serving(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    server = LeofsServer(mount / "data", extra_args=["--containers", "2"])
    try:
        server.start()
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="full")
        stored: dict[str, bytes] = {}
        refused = None
        for i in range(200):
            body = random.randbytes(512 * 1024)
            try:
                s3.put_object(Bucket="full", Key=f"o{i}", Body=body)
            except ClientError as err:
                refused = err.response
                break
            stored[f"o{i}"] = body
        assert refused is not None, "the disk never filled up"
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 507
        assert refused["Error"]["Code"] == "InsufficientStorage"
        assert stored, "nothing could be written before the disk filled"
        for key, body in stored.items():  # reads keep working
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body
        for key in list(stored)[: len(stored) // 2]:  # deletes keep working
            s3.delete_object(Bucket="full", Key=key)
            del stored[key]
        server.restart()  # and nothing got corrupted
        s3 = make_client(server.endpoint)
        for key, body in stored.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body
        # deleting the rest and compacting gives the space back (a container's copy needs room for
        # its live data, so with half of them live there was none): writes are accepted again
        for key in stored:
            s3.delete_object(Bucket="full", Key=key)
        assert _adm(server, "compact-start", "embedded", "all", "--wait")["reclaimed_bytes"] > 0
        body = random.randbytes(512 * 1024)
        s3.put_object(Bucket="full", Key="after-freeing", Body=body)
        server.restart()
        s3 = make_client(server.endpoint)
        assert s3.get_object(Bucket="full", Key="after-freeing")["Body"].read() == body
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]] == ["after-freeing"]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        subprocess.run(["umount", str(mount)], capture_output=True)
