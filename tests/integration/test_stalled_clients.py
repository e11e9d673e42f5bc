"""Stalled clients cannot pin a server: a body that stops arriving ends in 400 RequestTimeout and a
closed connection; connections and body bytes beyond the process's caps get 503 SlowDown at once."""

from __future__ import annotations

import http.client
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.servers import LeofsServer

MiB = 1024 * 1024
IDLE = 2.0  # the servers' --body-idle-timeout here


def start(tmp_path: Path, *args: str) -> LeofsServer:
    server = LeofsServer(tmp_path / "data", extra_args=["--workers", "1", *args])
    server.start()
    return server


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[LeofsServer]:
    """Four connections, 6,000,000 body bytes (one large body's share) and a 2 s idle timeout."""
    server = start(tmp_path, "--body-idle-timeout", str(IDLE), "--max-connections", "4",
                   "--body-budget", "6000000")
    make_client(server.endpoint).create_bucket(Bucket="limits")
    try:
        yield server
    finally:
        server.stop()


def stalled_put(server: LeofsServer, key: str, declared: int, send: int) -> socket.socket:
    """A presigned (unsigned-payload) PUT that sends its headers and ``send`` bytes, then stalls."""
    url = make_client(server.endpoint).generate_presigned_url(
        "put_object", Params={"Bucket": "limits", "Key": key}, ExpiresIn=600)
    path = url.split(str(server.port), 1)[1]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: {declared}\r\n\r\n"
                 .encode())
    sock.sendall(random.randbytes(send))
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data



@pytest.mark.parametrize("sent", [1000, 6 * MiB + 5], ids=["small", "chunked"])
def test_a_stalled_body_gets_request_timeout_and_the_connection_is_closed(limited: LeofsServer,
                                                                          sent: int) -> None:
    sock = stalled_put(limited, "stalled", 2 * sent, sent)
    started = time.monotonic()
    answer = read_until_closed(sock, timeout=IDLE + 30)  # ends only because the server closes it
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"<Code>RequestTimeout</Code>" in answer
    assert b"not read from or written to within the timeout period" in answer
    assert time.monotonic() - started >= IDLE * 0.9  # not before the idle timeout
    s3 = make_client(limited.endpoint)
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="limits", Key="stalled")
    assert err.value.response["Error"]["Code"] == "404"
    # its share of the body budget is free again: a large body fits
    s3.put_object(Bucket="limits", Key="after", Body=random.randbytes(2 * MiB))


def ping_status(server: LeofsServer) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/_leofs_adm/ping")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_connections_beyond_the_cap_get_slow_down(limited: LeofsServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(4)]
    try:
        deadline = time.monotonic() + 20
        status, body = ping_status(limited)
        while status != 503 and time.monotonic() < deadline:  # until the server has accepted all four
            time.sleep(0.05)
            status, body = ping_status(limited)
        assert status == 503
        assert b"<Code>SlowDown</Code>" in body
    finally:
        for sock in idle[1:]:
            sock.close()
    deadline = time.monotonic() + 20
    while ping_status(limited)[0] != 200:  # the closed connections are freed
        assert time.monotonic() < deadline, "connections were not freed"
        time.sleep(0.05)
    idle[0].close()


def test_body_bytes_beyond_the_budget_get_slow_down(limited: LeofsServer) -> None:
    s3 = make_client(limited.endpoint)  # no retries
    sock = stalled_put(limited, "holder", 20 * MiB, 100_000)  # holds one chunk's share of the budget
    try:
        deadline = time.monotonic() + IDLE * 0.8
        code = ""
        while code != "SlowDown" and time.monotonic() < deadline:
            try:
                s3.put_object(Bucket="limits", Key="second", Body=random.randbytes(MiB))
                s3.delete_object(Bucket="limits", Key="second")  # the stalled PUT was not admitted yet
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert code == "SlowDown"
        s3.put_object(Bucket="limits", Key="tiny", Body=b"x" * 1000)  # small bodies still fit
    finally:
        sock.close()
    deadline = time.monotonic() + 20
    while True:  # the closed upload's share is given back
        try:
            s3.put_object(Bucket="limits", Key="second", Body=random.randbytes(MiB))
            break
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "SlowDown" and time.monotonic() < deadline
            time.sleep(0.05)
    assert s3.get_object(Bucket="limits", Key="tiny")["Body"].read() == b"x" * 1000
