"""s3cmd with SigV4 and with SigV2 against a real server (issues 3, 4)."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import aws_env, make_client
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

MiB = 1024 * 1024
S3CMD = str(Path(sys.executable).parent / "s3cmd")
_names = itertools.count()


class S3cmd:
    def __init__(self, server: LeofsServer, home: Path, *, v2: bool) -> None:
        home.mkdir(exist_ok=True)
        self.config = home / "s3cfg"
        self.config.write_text(
            "[default]\n"
            f"access_key = {ROOT_ACCESS_KEY}\n"
            f"secret_key = {ROOT_SECRET_KEY}\n"
            f"host_base = {server.host}:{server.port}\n"
            f"host_bucket = {server.host}:{server.port}\n"
            "use_https = False\n"
            "bucket_location = us-east-1\n"
            f"signature_v2 = {v2}\n"
            "progress_meter = False\n"
        )
        self.env = aws_env(server, home)
        self.v2 = v2

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        extra = ["--signature-v2"] if self.v2 else []
        proc = subprocess.run([S3CMD, "-c", str(self.config), *extra, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc


@pytest.fixture(params=["sigv4", "sigv2"])
def s3cmd(request: pytest.FixtureRequest, server: LeofsServer, tmp_path: Path) -> S3cmd:
    return S3cmd(server, tmp_path / "home", v2=request.param == "sigv2")


def data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_s3cmd_workflow(s3cmd: S3cmd, server: LeofsServer, tmp_path: Path) -> None:
    bucket = f"s3cmd-{os.getpid()}-{next(_names)}"
    s3cmd.run("mb", f"s3://{bucket}")
    assert f"s3://{bucket}" in s3cmd.run("ls").stdout
    small = tmp_path / "small.txt"
    small.write_bytes(data(3000, 1))
    big = tmp_path / "big.bin"
    big.write_bytes(data(12 * MiB + 5, 2))
    s3cmd.run("put", str(small), f"s3://{bucket}/docs/small.txt")
    s3cmd.run("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{bucket}/big.bin")
    # ls, la
    listing = s3cmd.run("ls", f"s3://{bucket}").stdout
    assert f"s3://{bucket}/big.bin" in listing and f"s3://{bucket}/docs/" in listing
    assert f"s3://{bucket}/docs/small.txt" in s3cmd.run("ls", "--recursive", f"s3://{bucket}").stdout
    all_objects = s3cmd.run("la").stdout
    assert f"s3://{bucket}/big.bin" in all_objects
    # info: a multipart ETag (3 parts of 5, 5 and 2 MiB)
    info = s3cmd.run("info", f"s3://{bucket}/big.bin").stdout
    assert str(12 * MiB + 5) in info
    parts = [big.read_bytes()[i : i + 5 * MiB] for i in range(0, 12 * MiB + 5, 5 * MiB)]
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    # s3cmd shows the whole-file MD5 it saved in its own metadata; the server's ETag is the multipart one
    assert hashlib.md5(big.read_bytes()).hexdigest() in info
    assert make_client(server.endpoint).head_object(Bucket=bucket, Key="big.bin")["ETag"] == f'"{etag}"'
    # get, byte for byte (s3cmd checks the MD5 of single-part downloads itself)
    for key, local in (("docs/small.txt", small), ("big.bin", big)):
        out = tmp_path / f"got-{local.name}"
        s3cmd.run("get", f"s3://{bucket}/{key}", str(out))
        assert out.read_bytes() == local.read_bytes()
    # setacl --acl-public: anonymous reads now work
    url = f"{server.endpoint}/{bucket}/docs/small.txt"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=30)
    assert denied.value.code == 403
    s3cmd.run("setacl", "--acl-public", f"s3://{bucket}/docs/small.txt")
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == small.read_bytes()
    assert "*anon*: READ" in s3cmd.run("info", f"s3://{bucket}/docs/small.txt").stdout
    s3cmd.run("setacl", "--acl-private", f"s3://{bucket}/docs/small.txt")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=30)
    # sync a tree up, again (nothing to do), then down
    tree = tmp_path / "tree"
    for i, rel in enumerate(["a.txt", "sub/b.txt", "sub/deeper/c d.bin"]):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data(500 * (i + 1), 10 + i))
    out = s3cmd.run("sync", f"{tree}/", f"s3://{bucket}/tree/").stdout
    assert out.count("upload:") == 3
    out = s3cmd.run("sync", f"{tree}/", f"s3://{bucket}/tree/").stdout
    assert "upload:" not in out
    down = tmp_path / "down"
    down.mkdir()
    s3cmd.run("sync", f"s3://{bucket}/tree/", f"{down}/")
    for rel in ("a.txt", "sub/b.txt", "sub/deeper/c d.bin"):
        assert (down / rel).read_bytes() == (tree / rel).read_bytes()
    # del
    s3cmd.run("del", f"s3://{bucket}/big.bin")
    s3cmd.run("del", "--recursive", "--force", f"s3://{bucket}/")
    assert s3cmd.run("ls", "--recursive", f"s3://{bucket}").stdout.strip() == ""
    s3cmd.run("rb", f"s3://{bucket}")
    assert f"s3://{bucket}" not in s3cmd.run("ls").stdout


def test_s3cmd_errors(s3cmd: S3cmd) -> None:
    missing = s3cmd.run("ls", f"s3://no-such-bucket-{os.getpid()}/", check=False)
    assert missing.returncode != 0
    assert "NoSuchBucket" in missing.stderr or "404" in missing.stderr
