"""A GET of a chunked object that started before an overwrite finishes with the old bytes: the
replaced version's chunks are freed only after a grace longer than reads in progress take."""

from __future__ import annotations

import os
import socket
from typing import Any

from tests.integration.s3_helpers import signed_headers

MiB = 1024 * 1024


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        piece = sock.recv(min(65536, n - len(buf)))
        if not piece:
            break
        buf += piece
    return bytes(buf)


def test_get_started_before_an_overwrite_returns_the_old_bytes(server: Any, s3: Any, bucket: str) -> None:
    old, new = os.urandom(16 * MiB), os.urandom(16 * MiB)  # 4 chunks of 5 MiB: chunked, not inline
    s3.put_object(Bucket=bucket, Key="big", Body=old)
    path = f"/{bucket}/big"
    hdrs = signed_headers(server, "GET", path)
    # a small receive buffer: the server cannot have pushed the whole body before the overwrite
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(60)
    sock.connect((server.host, server.port))
    try:
        sock.sendall((f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                      + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(1)
            assert piece, "the server closed the connection before the headers"
            head += piece
        assert head.startswith(b"HTTP/1.1 200"), head
        first = _recv_exactly(sock, 256 * 1024)  # the read is in progress ...
        s3.put_object(Bucket=bucket, Key="big", Body=new)  # ... when the object is replaced
        # the overwrite is acknowledged and its replaced chunks handed to be freed; the new version
        # is what a new GET sees
        assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == new
        rest = _recv_exactly(sock, len(old) - len(first))
    finally:
        sock.close()
    assert len(first) + len(rest) == len(old), "the GET was cut short"
    assert first + rest == old
