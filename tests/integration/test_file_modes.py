"""Data on disk is private: every directory 0700, every file 0600, on the embedded server and on the
processes of a cluster, for new data directories and for existing ones opened with looser modes."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.servers import CLUSTER_SECRET, LeofsServer

MiB = 1024 * 1024


def adm(admin: str, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", admin, "--cluster-secret",
                          CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout) if out.stdout.strip() else None


def loose_modes(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) whose mode is not 0700 (dirs) / 0600 (files)."""
    bad = []
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != wanted:
            bad.append(f"{path.relative_to(root.parent)} {oct(stat.S_IMODE(st.st_mode))}")
    return bad


def write_objects(endpoint: str) -> None:
    """Small objects, a chunked one, a multipart one, overwrites and deletes (work for compaction)."""
    s3 = make_client(endpoint)
    s3.create_bucket(Bucket="modes")
    for i in range(20):
        s3.put_object(Bucket="modes", Key=f"small/{i}", Body=random.randbytes(1000))
    for i in range(10):
        s3.delete_object(Bucket="modes", Key=f"small/{i}")
    s3.put_object(Bucket="modes", Key="big", Body=random.randbytes(7 * MiB))
    upload = s3.create_multipart_upload(Bucket="modes", Key="multi")["UploadId"]
    part = s3.upload_part(Bucket="modes", Key="multi", UploadId=upload, PartNumber=1, Body=random.randbytes(MiB))
    s3.complete_multipart_upload(Bucket="modes", Key="multi", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})


def loosen(root: Path) -> None:
    """What an older version (umask 022) left: directories 0755, files 0644."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def runtime_dirs(pid: int) -> list[Path]:
    import tempfile

    return list(Path(tempfile.gettempdir()).glob(f"leofs-server-{pid}-*"))


def test_embedded_server_keeps_data_private_and_fixes_an_existing_tree(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data")  # two processes: the write link and shared metrics too
    server.start()
    try:
        write_objects(server.endpoint)
        adm(server.admin, "compact-start", "embedded", "--wait")
        assert server.proc is not None
        runtime = runtime_dirs(server.proc.pid)
        assert runtime, "the server's private runtime directory (write link, metrics) was not found"
        make_client(server.endpoint).list_buckets()  # request metrics written by both processes
        assert loose_modes(server.data_dir) == []
        for directory in runtime:
            assert loose_modes(directory) == []
    finally:
        server.stop()
    loosen(server.data_dir)
    assert loose_modes(server.data_dir) != []
    server.start()
    try:
        s3 = make_client(server.endpoint)
        assert len(s3.get_object(Bucket="modes", Key="big")["Body"].read()) == 7 * MiB
        assert loose_modes(server.data_dir) == []
    finally:
        server.stop()


@pytest.mark.cluster
def test_cluster_processes_keep_data_private_and_fix_an_existing_tree(tmp_path: Path) -> None:
    cluster = LeofsCluster(tmp_path / "cluster", nodes=2, n=2, w=1, r=1, d=1)
    try:
        cluster.start()
        write_objects(cluster.endpoint)
        cluster.adm("compact-start", "storage1", "--wait")
        dirs = [tmp_path / "cluster" / name for name in ("manager", "storage1", "storage2")]
        for directory in dirs:
            assert loose_modes(directory) == []
        # a replica that cannot be reached queues a repair: the repair queue is written too
        cluster.storage["storage2"].kill()
        make_client(cluster.endpoint).put_object(Bucket="modes", Key="queued", Body=b"x")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
    for directory in dirs:
        loosen(directory)
    try:
        cluster.manager.start()
        for node in cluster.storage.values():
            node.start()
        cluster.wait_until(lambda: set(cluster.node_states().values()) == {"running"}, what="nodes running")
        cluster.gateway.start()
        cluster.wait_gateway_ready()
        assert make_client(cluster.endpoint).get_object(Bucket="modes", Key="queued")["Body"].read() == b"x"
        for directory in dirs:
            assert loose_modes(directory) == []
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
