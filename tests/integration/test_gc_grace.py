"""gc with grace 0 while a large PUT is still streaming: the PUT's chunks are not yet referenced by
any object, but they are younger than the floor gc keeps (twice the body deadline), so they stay and
the PUT lands whole."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer

MiB = 1024 * 1024


def adm(server: LeofsServer, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret",
                          CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def active_entries(server: LeofsServer) -> int:
    return sum(c["active_count"] for c in adm(server, "du", "embedded"))


def test_gc_with_grace_zero_spares_the_chunks_of_a_put_in_flight(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data", extra_args=["--workers", "1", "--body-deadline", "60"])
    server.start()
    try:
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="gcgrace")
        baseline = active_entries(server)
        body = random.randbytes(12 * MiB)
        url = s3.generate_presigned_url("put_object", Params={"Bucket": "gcgrace", "Key": "big"}, ExpiresIn=600)
        path = url.split(str(server.port), 1)[1]
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode())
            sock.sendall(body[: 11 * MiB])  # two 5 MiB chunks are cut and stored; the PUT goes on
            deadline = time.monotonic() + 30
            while active_entries(server) < baseline + 2:
                assert time.monotonic() < deadline, "the first chunks were not stored"
                time.sleep(0.1)
            report = adm(server, "gc", "--grace", "0")
            assert report["grace"] == 120.0 and report["deleted"] == 0
            sock.sendall(body[11 * MiB:])
            sock.settimeout(60)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert s3.get_object(Bucket="gcgrace", Key="big")["Body"].read() == body
    finally:
        server.stop()
