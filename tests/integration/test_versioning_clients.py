"""Versioned buckets through real tools: the aws CLI (s3api put-bucket-versioning,
list-object-versions, get-object --version-id), rclone with ``--s3-versions``, and restic
(init, backup, check) on a versioned bucket. Tools that are not installed skip."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import aws_env, make_client
from tests.integration.test_clients_rclone import RCLONE, Rclone
from tests.support.cluster import LeofsCluster
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY

AWS = str(Path(sys.executable).parent / "aws")
RESTIC = shutil.which("restic") or "/usr/bin/restic"
_names = itertools.count()


def _bucket(server: Any, versioned: bool = True) -> str:
    name = f"vtool-{os.getpid()}-{next(_names)}"
    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _embedded_only(server: Any) -> None:
    if isinstance(server, LeofsCluster):  # (CI time: the cluster's versions are the boto3 and aws CLI tests')
        pytest.skip("run against the embedded server only")


def _aws(server: Any, home: Path, *args: str) -> str:
    home.mkdir(exist_ok=True)
    proc = subprocess.run([AWS, "--endpoint-url", server.endpoint, *args], env=aws_env(server, home),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"aws {' '.join(args)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def test_aws_cli_versions(server: Any, tmp_path: Path) -> None:
    name = _bucket(server, versioned=False)
    home = tmp_path / "home"
    _aws(server, home, "s3api", "put-bucket-versioning", "--bucket", name,
         "--versioning-configuration", "Status=Enabled")
    s3 = make_client(server.endpoint)  # (each aws CLI run costs seconds: the rest through boto3)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    ids = [s3.put_object(Bucket=name, Key="k", Body=f"version {n}".encode())["VersionId"] for n in range(2)]
    s3.delete_object(Bucket=name, Key="k")
    listed = json.loads(_aws(server, home, "s3api", "list-object-versions", "--bucket", name))
    assert sorted(v["VersionId"] for v in listed["Versions"]) == sorted(ids)
    assert [m["IsLatest"] for m in listed["DeleteMarkers"]] == [True]
    out = tmp_path / "out"
    _aws(server, home, "s3api", "get-object", "--bucket", name, "--key", "k", "--version-id", ids[0], str(out))
    assert out.read_bytes() == b"version 0"


@pytest.mark.skipif(not Path(RCLONE).exists(), reason="rclone is not installed (apt-get install rclone)")
def test_rclone_lists_versions(server: Any, tmp_path: Path) -> None:
    _embedded_only(server)
    name = _bucket(server)
    s3 = make_client(server.endpoint)
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket=name, Key="dir/file.txt", Body=body)
    s3.put_object(Bucket=name, Key="other.txt", Body=b"x")
    rclone = Rclone(server, tmp_path / "rclone")
    current = rclone.run("lsf", "-R", f"leofs:{name}").stdout.split()
    assert sorted(current) == ["dir/", "dir/file.txt", "other.txt"]
    everything = rclone.run("lsf", "-R", "--s3-versions", f"leofs:{name}").stdout.split()
    old = [f for f in everything if f.startswith("dir/file-v")]
    assert len(old) == 2 and "dir/file.txt" in everything, everything  # two older versions, named by their time
    # each old version is read by its version id (rclone 1.60 cannot open one old version by name)
    rclone.run("copy", "--s3-versions", f"leofs:{name}/dir", str(tmp_path / "out"))
    contents = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert sorted(contents.values()) == ["one", "three", "two"] and contents["file.txt"] == "three"


@pytest.mark.skipif(not Path(RESTIC).exists(), reason="restic is not installed (apt-get install restic)")
def test_restic_backup_and_check(server: Any, tmp_path: Path) -> None:
    _embedded_only(server)
    name = _bucket(server)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("restic on a versioned bucket\n")
    (data / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    env.update(AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=ROOT_SECRET_KEY, AWS_DEFAULT_REGION="us-east-1",
               RESTIC_PASSWORD="versioned-secret", RESTIC_REPOSITORY=f"s3:{server.endpoint}/{name}",
               HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))

    def restic(*args: str) -> str:
        proc = subprocess.run([RESTIC, "-o", "s3.bucket-lookup=path", *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"restic {' '.join(args)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc.stdout

    restic("init")
    restic("backup", str(data))
    (data / "a.txt").write_text("changed\n")
    restic("backup", str(data))
    restic("forget", "--keep-last", "1", "--prune")  # deletes objects: delete markers in a versioned bucket
    assert "no errors were found" in restic("check", "--read-data")  # every pack read back and verified
    versions = make_client(server.endpoint).list_object_versions(Bucket=name)
    assert versions.get("DeleteMarkers"), "prune's deletes left delete markers"
