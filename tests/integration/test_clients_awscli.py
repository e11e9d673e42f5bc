"""The aws CLI (v1, from PyPI) against a real server: s3 mb/cp/sync/ls/rm/presign and s3api (issues 3, 4)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import aws_env
from tests.support.servers import LeofsServer

MiB = 1024 * 1024
AWS = str(Path(sys.executable).parent / "aws")
_names = itertools.count()


def write_file(path: Path, size: int, seed: int) -> Path:
    """A file of ``size`` pseudo-random bytes, written 1 MiB at a time (each MiB distinct)."""
    rng = random.Random(seed)
    block = rng.randbytes(min(size, MiB))
    with path.open("wb") as f:
        written = 0
        index = 0
        while written < size:
            piece = index.to_bytes(8, "big") + block[8:]
            piece = piece[: size - written]
            f.write(piece)
            written += len(piece)
            index += 1
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


class Cli:
    def __init__(self, server: LeofsServer, home: Path) -> None:
        home.mkdir(exist_ok=True)
        self.env = aws_env(server, home)
        self.endpoint = server.endpoint

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([AWS, "--endpoint-url", self.endpoint, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc

    def json(self, *args: str) -> Any:
        out = self.run(*args, "--output", "json").stdout
        return json.loads(out) if out.strip() else {}


@pytest.fixture
def cli(server: LeofsServer, tmp_path: Path) -> Cli:
    return Cli(server, tmp_path / "home")


@pytest.fixture
def cli_bucket(cli: Cli) -> str:
    name = f"awscli-{os.getpid()}-{next(_names)}"
    cli.run("s3", "mb", f"s3://{name}")
    return name


def test_mb_ls_cp_small_both_ways_rm(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    assert f"{cli_bucket}" in cli.run("s3", "ls").stdout
    # making it again: the CLI reports BucketAlreadyOwnedByYou
    again = cli.run("s3", "mb", f"s3://{cli_bucket}", check=False)
    assert again.returncode != 0 and "BucketAlreadyOwnedByYou" in again.stderr
    src = write_file(tmp_path / "small.txt", 1234, 1)
    cli.run("s3", "cp", str(src), f"s3://{cli_bucket}/dir/small.txt", "--only-show-errors")
    cli.run("s3", "cp", str(tmp_path / "small.txt"), f"s3://{cli_bucket}/dir/sub/other name+%.txt",
            "--only-show-errors")
    listing = cli.run("s3", "ls", f"s3://{cli_bucket}/dir/").stdout
    assert "PRE sub/" in listing and "1234 small.txt" in listing
    recursive = cli.run("s3", "ls", "--recursive", f"s3://{cli_bucket}").stdout
    assert "dir/sub/other name+%.txt" in recursive
    dst = tmp_path / "back.txt"
    cli.run("s3", "cp", f"s3://{cli_bucket}/dir/small.txt", str(dst), "--only-show-errors")
    assert dst.read_bytes() == src.read_bytes()
    cli.run("s3", "cp", f"s3://{cli_bucket}/dir/sub/other name+%.txt", str(tmp_path / "odd"), "--only-show-errors")
    assert (tmp_path / "odd").read_bytes() == src.read_bytes()
    # server-side copy through the CLI
    cli.run("s3", "cp", f"s3://{cli_bucket}/dir/small.txt", f"s3://{cli_bucket}/copy.txt", "--only-show-errors")
    cli.run("s3", "cp", f"s3://{cli_bucket}/copy.txt", str(tmp_path / "copy"), "--only-show-errors")
    assert (tmp_path / "copy").read_bytes() == src.read_bytes()
    cli.run("s3", "rm", f"s3://{cli_bucket}/copy.txt", "--only-show-errors")
    cli.run("s3", "rm", "--recursive", f"s3://{cli_bucket}/dir/", "--only-show-errors")
    assert cli.run("s3", "ls", "--recursive", f"s3://{cli_bucket}", check=False).stdout.strip() == ""
    cli.run("s3", "rb", f"s3://{cli_bucket}")
    assert cli_bucket not in cli.run("s3", "ls").stdout


def test_cp_64mib_multipart_both_ways(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    src = write_file(tmp_path / "big.bin", 64 * MiB + 12345, 2)
    cli.run("s3", "cp", str(src), f"s3://{cli_bucket}/big.bin", "--only-show-errors")
    head = cli.json("s3api", "head-object", "--bucket", cli_bucket, "--key", "big.bin")
    assert head["ContentLength"] == src.stat().st_size
    assert head["ETag"].endswith('-9"')  # 8 MiB parts: 8 full ones and a tail
    dst = tmp_path / "big.back"
    cli.run("s3", "cp", f"s3://{cli_bucket}/big.bin", str(dst), "--only-show-errors")
    assert sha256_file(dst) == sha256_file(src)
    # a multipart copy inside the server (the CLI uses UploadPartCopy above 8 MiB)
    cli.run("s3", "cp", f"s3://{cli_bucket}/big.bin", f"s3://{cli_bucket}/big.copy", "--only-show-errors")
    dst.unlink()
    cli.run("s3", "cp", f"s3://{cli_bucket}/big.copy", str(dst), "--only-show-errors")
    assert sha256_file(dst) == sha256_file(src)
    cli.run("s3", "rm", "--recursive", f"s3://{cli_bucket}", "--only-show-errors")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sync_up_down_and_noop(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "tree"
    for i, rel in enumerate(["a.txt", "b/c.txt", "b/d/e.bin", "b/d/f g.txt", "z/empty", "big/nine.bin"]):
        path = local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0 if rel == "z/empty" else (9 * MiB + 1 if rel.startswith("big/") else 100 * i + 7)
        write_file(path, size, 10 + i)
    target = f"s3://{cli_bucket}/sync"
    first = cli.run("s3", "sync", str(local), target, "--no-progress").stdout
    assert first.count("upload:") == 6
    second = cli.run("s3", "sync", str(local), target, "--no-progress").stdout
    assert second.strip() == ""  # nothing changed, nothing copied
    write_file(local / "b" / "c.txt", 555, 99)  # a different size: only this one goes
    third = cli.run("s3", "sync", str(local), target, "--no-progress").stdout
    assert third.count("upload:") == 1 and "b/c.txt" in third
    down = tmp_path / "down"
    cli.run("s3", "sync", target, str(down), "--no-progress")
    assert _tree(down) == _tree(local)
    assert cli.run("s3", "sync", target, str(down), "--no-progress").stdout.strip() == ""
    (local / "a.txt").unlink()
    deleted = cli.run("s3", "sync", str(local), target, "--delete", "--no-progress").stdout
    assert deleted.count("delete:") == 1
    listing = cli.run("s3", "ls", "--recursive", target + "/").stdout
    assert "sync/a.txt" not in listing and "sync/b/d/f g.txt" in listing
    cli.run("s3", "rm", "--recursive", target, "--only-show-errors")
    assert cli.run("s3", "ls", "--recursive", f"s3://{cli_bucket}", check=False).stdout.strip() == ""


@pytest.mark.parametrize("signature", ["default", "s3v4"])
def test_presign_then_fetch(cli: Cli, cli_bucket: str, tmp_path: Path, signature: str) -> None:
    """aws CLI v1 presigns with SigV2 by default in us-east-1, with SigV4 when configured."""
    if signature == "s3v4":
        Path(cli.env["AWS_CONFIG_FILE"]).write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    src = write_file(tmp_path / "p.bin", 70_000, 3)
    cli.run("s3", "cp", str(src), f"s3://{cli_bucket}/pre/sign me.bin", "--only-show-errors")
    url = cli.run("s3", "presign", f"s3://{cli_bucket}/pre/sign me.bin", "--expires-in", "600").stdout.strip()
    assert url.startswith(cli.endpoint)
    marker = "X-Amz-Signature=" if signature == "s3v4" else "&Signature="
    assert marker in url
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == src.read_bytes()
    # a tampered signature is refused
    at = url.index(marker) + len(marker)
    bad = url[:at] + ("0" if url[at] != "0" else "1") + url[at + 1 :]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=30)
    assert info.value.code == 403


def test_s3api_objects(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    src = write_file(tmp_path / "o.bin", 4321, 4)
    put = cli.json("s3api", "put-object", "--bucket", cli_bucket, "--key", "k1", "--body", str(src),
                   "--content-type", "text/plain", "--metadata", "color=blue")
    assert put["ETag"] == f'"{hashlib.md5(src.read_bytes()).hexdigest()}"'
    head = cli.json("s3api", "head-object", "--bucket", cli_bucket, "--key", "k1")
    assert head["ContentLength"] == 4321 and head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue"}
    out = tmp_path / "o.out"
    got = cli.json("s3api", "get-object", "--bucket", cli_bucket, "--key", "k1", "--range", "bytes=10-19", str(out))
    assert got["ContentRange"] == "bytes 10-19/4321"
    assert out.read_bytes() == src.read_bytes()[10:20]
    for i in range(2, 6):
        cli.run("s3api", "put-object", "--bucket", cli_bucket, "--key", f"k{i}", "--body", str(src))
    listed = cli.json("s3api", "list-objects-v2", "--bucket", cli_bucket, "--max-items", "3")
    assert [o["Key"] for o in listed["Contents"]] == ["k1", "k2", "k3"]
    assert listed.get("NextToken")
    full = cli.json("s3api", "list-objects-v2", "--bucket", cli_bucket, "--page-size", "2")
    assert [o["Key"] for o in full["Contents"]] == [f"k{i}" for i in range(1, 6)]
    delete = {"Objects": [{"Key": f"k{i}"} for i in range(1, 5)], "Quiet": False}
    deleted = cli.json("s3api", "delete-objects", "--bucket", cli_bucket, "--delete", json.dumps(delete))
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["k1", "k2", "k3", "k4"]
    assert [o["Key"] for o in cli.json("s3api", "list-objects-v2", "--bucket", cli_bucket)["Contents"]] == ["k5"]
    missing = cli.run("s3api", "head-object", "--bucket", cli_bucket, "--key", "k1", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_s3api_multipart(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    p1 = write_file(tmp_path / "p1", 5 * MiB, 5)
    p2 = write_file(tmp_path / "p2", 1000, 6)
    created = cli.json("s3api", "create-multipart-upload", "--bucket", cli_bucket, "--key", "mp")
    upload_id = created["UploadId"]
    uploads = cli.json("s3api", "list-multipart-uploads", "--bucket", cli_bucket)
    assert [u["UploadId"] for u in uploads["Uploads"]] == [upload_id]
    etags = []
    for number, part in ((1, p1), (2, p2)):
        resp = cli.json("s3api", "upload-part", "--bucket", cli_bucket, "--key", "mp", "--upload-id", upload_id,
                        "--part-number", str(number), "--body", str(part))
        assert resp["ETag"] == f'"{hashlib.md5(part.read_bytes()).hexdigest()}"'
        etags.append(resp["ETag"])
    parts = cli.json("s3api", "list-parts", "--bucket", cli_bucket, "--key", "mp", "--upload-id", upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 5 * MiB), (2, 1000)]
    doc = tmp_path / "complete.json"
    doc.write_text(json.dumps({"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}))
    done = cli.json("s3api", "complete-multipart-upload", "--bucket", cli_bucket, "--key", "mp", "--upload-id",
                    upload_id, "--multipart-upload", f"file://{doc}")
    expected = hashlib.md5(hashlib.md5(p1.read_bytes()).digest() + hashlib.md5(p2.read_bytes()).digest())
    assert done["ETag"] == f'"{expected.hexdigest()}-2"'
    out = tmp_path / "mp.out"
    cli.json("s3api", "get-object", "--bucket", cli_bucket, "--key", "mp", str(out))
    assert out.read_bytes() == p1.read_bytes() + p2.read_bytes()
    # abort of another upload of the same key leaves the object alone
    other = cli.json("s3api", "create-multipart-upload", "--bucket", cli_bucket, "--key", "mp")["UploadId"]
    cli.run("s3api", "abort-multipart-upload", "--bucket", cli_bucket, "--key", "mp", "--upload-id", other)
    assert cli.json("s3api", "list-multipart-uploads", "--bucket", cli_bucket).get("Uploads", []) == []
    out.unlink()
    cli.json("s3api", "get-object", "--bucket", cli_bucket, "--key", "mp", str(out))
    assert out.read_bytes() == p1.read_bytes() + p2.read_bytes()


@pytest.mark.slow
def test_cp_1gib_both_ways(cli: Cli, cli_bucket: str, tmp_path: Path) -> None:
    src = write_file(tmp_path / "gib.bin", 1024 * MiB, 7)
    cli.run("s3", "cp", str(src), f"s3://{cli_bucket}/gib.bin", "--only-show-errors", timeout=600)
    head = cli.json("s3api", "head-object", "--bucket", cli_bucket, "--key", "gib.bin")
    assert head["ContentLength"] == 1024 * MiB and head["ETag"].endswith('-128"')
    dst = tmp_path / "gib.back"
    cli.run("s3", "cp", f"s3://{cli_bucket}/gib.bin", str(dst), "--only-show-errors", timeout=600)
    expected = sha256_file(src)
    src.unlink()
    assert sha256_file(dst) == expected
    dst.unlink()
    cli.run("s3", "rm", f"s3://{cli_bucket}/gib.bin", "--only-show-errors")
