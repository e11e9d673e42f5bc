"""SIGKILL in the middle of a chunked PUT and of CompleteMultipartUpload: afterwards either the old
object or the new one is visible, whole, and the orphaned chunks are collected."""

from __future__ import annotations

import hashlib
import json
import random
import socket
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
MiB = 1024 * 1024
CHUNK = 5 * MiB  # the gateway's chunk size (large_object.chunked_obj_len)


def adm(server: LeofsServer, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret",
                          CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


#: gc never collects chunks younger than twice the body deadline: a short one keeps these tests short
BODY_DEADLINE = ["--body-deadline", "5"]


def gc_until(server: LeofsServer, enough: Any, timeout: float = 60.0) -> Any:
    """Run gc (grace 0, raised to the server's floor) until ``enough(report)``."""
    deadline = time.monotonic() + timeout
    while True:
        report = adm(server, "gc", "--grace", "0")
        if enough(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def active_entries(server: LeofsServer) -> int:
    return sum(c["active_count"] for c in adm(server, "du", "embedded"))


def _partial_put(server: LeofsServer, bucket: str, key: str, declared: int, send: int) -> None:
    """Start an unsigned-payload PUT (presigned URL), send only part of the body, wait until the server
    has stored every whole 5 MiB chunk of what it got, and SIGKILL it."""
    before = active_entries(server)
    s3 = make_client(server.endpoint)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    path = url.split(str(server.port), 1)[1]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: {declared}\r\n\r\n"
                 .encode())
    chunk = random.randbytes(MiB)
    for _ in range(send // MiB):
        sock.sendall(chunk)
    chunks = send // CHUNK
    deadline = time.monotonic() + 60
    while active_entries(server) < before + chunks:  # polled: on a loaded machine this takes a while
        assert time.monotonic() < deadline, f"the server never stored the {chunks} chunks it was sent"
        time.sleep(0.1)
    server.kill()
    sock.close()


def test_sigkill_during_chunked_put_keeps_the_old_object_and_orphans_are_collected(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data", extra_args=BODY_DEADLINE)
    server.start()
    try:
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="big")
        old = random.randbytes(7 * MiB)
        s3.put_object(Bucket="big", Key="obj", Body=old)
        baseline = active_entries(server)
        _partial_put(server, "big", "obj", declared=40 * MiB, send=22 * MiB)
        server.start()
        s3 = make_client(server.endpoint)
        assert s3.get_object(Bucket="big", Key="obj")["Body"].read() == old
        assert active_entries(server) > baseline, "the interrupted PUT should have left chunks behind"
        deleted: list[int] = []  # chunks collected by each pass (the grace floor may split them over passes)
        gc_until(server, lambda r: deleted.append(r["deleted"]) or sum(deleted) >= 22 // 5)
        assert sum(deleted) == 22 // 5  # every whole chunk the server had stored
        assert active_entries(server) == baseline
        assert s3.get_object(Bucket="big", Key="obj")["Body"].read() == old
        # a new key that never completed leaves nothing visible
        _partial_put(server, "big", "never", declared=30 * MiB, send=12 * MiB)
        server.start()
        s3 = make_client(server.endpoint)
        with pytest.raises(ClientError):
            s3.head_object(Bucket="big", Key="never")
        gc_until(server, lambda r: active_entries(server) == baseline)
        assert active_entries(server) == baseline
    finally:
        server.stop()


def test_sigkill_during_complete_multipart_upload(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data", extra_args=BODY_DEADLINE)
    server.start()
    try:
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="mpu")
        old = random.randbytes(MiB)
        parts_data = [random.randbytes(5 * MiB), random.randbytes(2 * MiB)]
        new = b"".join(parts_data)
        keys = [f"k{i}" for i in range(6)]
        uploads = {}
        for key in keys:
            s3.put_object(Bucket="mpu", Key=key, Body=old)
            upload = s3.create_multipart_upload(Bucket="mpu", Key=key)["UploadId"]
            etags = [s3.upload_part(Bucket="mpu", Key=key, UploadId=upload, PartNumber=n, Body=data)["ETag"]
                     for n, data in enumerate(parts_data, 1)]
            uploads[key] = (upload, etags)

        def complete(key: str) -> None:
            upload, etags = uploads[key]
            client = make_client(server.endpoint)
            try:
                client.complete_multipart_upload(
                    Bucket="mpu", Key=key, UploadId=upload,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
            except (BotoCoreError, ClientError):
                pass

        threads = [threading.Thread(target=complete, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.0, 0.05))
        server.kill()
        for t in threads:
            t.join(30)
        server.start()
        s3 = make_client(server.endpoint)
        for key in keys:
            body = s3.get_object(Bucket="mpu", Key=key)["Body"].read()
            assert hashlib.sha256(body).digest() in (hashlib.sha256(old).digest(), hashlib.sha256(new).digest()), key
        # uploads that did not complete can still be aborted or expire; nothing completed is harmed
        adm(server, "expire-uploads", "--older-than", "0")
        assert s3.list_multipart_uploads(Bucket="mpu").get("Uploads", []) == []
        assert gc_until(server, lambda r: r["kept_young"] == 0)["kept_young"] == 0  # every chunk considered
        for key in keys:
            body = s3.get_object(Bucket="mpu", Key=key)["Body"].read()
            assert body in (old, new), key
    finally:
        server.stop()
