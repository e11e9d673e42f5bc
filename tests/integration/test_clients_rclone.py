"""rclone (Debian package) against a real server: copy, check, lsf, delete (issues 3, 4)."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import make_client
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

MiB = 1024 * 1024
RCLONE = shutil.which("rclone") or "/usr/bin/rclone"
_names = itertools.count()

pytestmark = pytest.mark.skipif(not Path(RCLONE).exists(), reason="rclone is not installed (apt-get install rclone)")


class Rclone:
    def __init__(self, server: LeofsServer, home: Path) -> None:
        home.mkdir(exist_ok=True)
        config = home / "rclone.conf"
        config.write_text(
            "[leofs]\n"
            "type = s3\n"
            "provider = Other\n"
            f"access_key_id = {ROOT_ACCESS_KEY}\n"
            f"secret_access_key = {ROOT_SECRET_KEY}\n"
            f"endpoint = {server.endpoint}\n"
            "region = us-east-1\n"
            "force_path_style = true\n"
        )
        # rclone's AWS SDK refuses a custom CA bundle over plain http; the endpoint here is loopback http
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        self.env = dict(env, HOME=str(home), RCLONE_CONFIG=str(config))
        self.server = server

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([RCLONE, "--retries", "1", "--low-level-retries", "1", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"hello rclone\n",
        "empty": b"",
        "docs/a.md": random.Random(1).randbytes(10_000),
        "docs/deep/b c.bin": random.Random(2).randbytes(300_000),
        "docs/deep/üñí.txt": b"unicode name\n",
        "media/big.bin": random.Random(3).randbytes(21 * MiB + 333),
        "media/mid.bin": random.Random(4).randbytes(6 * MiB),  # above the server's 5.5 MiB chunking threshold
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def test_rclone_copy_check_lsf_delete(server: LeofsServer, tmp_path: Path) -> None:
    rc = Rclone(server, tmp_path / "home")
    bucket = f"rclone-{os.getpid()}-{next(_names)}"
    rc.run("mkdir", f"leofs:{bucket}")
    src = tmp_path / "src"
    files = make_tree(src)
    # small cutoff and chunk size: big.bin goes up as a multipart upload of 5 MiB parts
    rc.run("copy", str(src), f"leofs:{bucket}/tree", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
           "--transfers", "4")
    s3 = make_client(server.endpoint)
    head = s3.head_object(Bucket=bucket, Key="tree/media/big.bin")
    assert head["ContentLength"] == len(files["media/big.bin"])
    assert head["ETag"].endswith('-5"')
    # check compares sizes and hashes (rclone stores the MD5 of multipart uploads in its metadata)
    rc.run("check", str(src), f"leofs:{bucket}/tree")
    rc.run("check", "--download", str(src), f"leofs:{bucket}/tree")
    listed = rc.run("lsf", "-R", "--files-only", f"leofs:{bucket}/tree").stdout.splitlines()
    assert sorted(listed) == sorted(files)
    sized = rc.run("lsf", "-R", "--files-only", "--format", "ps", f"leofs:{bucket}/tree").stdout.splitlines()
    assert sorted(sized) == sorted(f"{rel};{len(content)}" for rel, content in files.items())
    assert rc.run("lsf", f"leofs:{bucket}/tree").stdout.splitlines() == ["docs/", "empty", "media/", "readme.txt"]
    # a second copy transfers nothing
    again = rc.run("copy", str(src), f"leofs:{bucket}/tree", "-v", "--s3-upload-cutoff", "5M",
                   "--s3-chunk-size", "5M")
    assert "Copied" not in again.stderr
    # down again, byte for byte
    down = tmp_path / "down"
    rc.run("copy", f"leofs:{bucket}/tree", str(down), "--transfers", "4", "--multi-thread-streams", "4",
           "--multi-thread-cutoff", "8M")
    for rel, content in files.items():
        got = (down / rel).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(content).digest(), rel
    # a changed file is detected by check
    (src / "docs" / "a.md").write_bytes(b"changed")
    assert rc.run("check", str(src), f"leofs:{bucket}/tree", check=False).returncode != 0
    # server-side copy between remotes paths, then delete
    rc.run("copy", f"leofs:{bucket}/tree/media", f"leofs:{bucket}/copied")
    assert sorted(rc.run("lsf", f"leofs:{bucket}/copied").stdout.splitlines()) == ["big.bin", "mid.bin"]
    got = s3.get_object(Bucket=bucket, Key="copied/big.bin")["Body"].read()
    assert got == files["media/big.bin"]
    rc.run("delete", f"leofs:{bucket}/tree", "--include", "*.bin")
    remaining = rc.run("lsf", "-R", "--files-only", f"leofs:{bucket}/tree").stdout.splitlines()
    assert sorted(remaining) == sorted(r for r in files if not r.endswith(".bin"))
    rc.run("delete", f"leofs:{bucket}")
    assert rc.run("lsf", "-R", f"leofs:{bucket}").stdout.strip() == ""
    rc.run("rmdir", f"leofs:{bucket}")
    assert bucket not in rc.run("lsd", "leofs:").stdout
