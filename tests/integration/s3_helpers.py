"""Helpers for the S3 integration tests: raw HTTP requests signed with botocore's signers,
extra users, aws-chunked bodies built with the documented SigV4 streaming algorithm."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.servers import CLUSTER_SECRET, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
REGION = "us-east-1"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        if not self.body:
            return None
        try:
            return self.xml().findtext("Code")
        except ET.ParseError:
            return None


class _FixedPayloadSigV4(botocore.auth.S3SigV4Auth):
    """botocore's S3 SigV4 signer, with the x-amz-content-sha256 value chosen by the test."""

    def __init__(self, credentials: Credentials, payload: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def signed_headers(server: LeofsServer, method: str, path: str, *, headers: dict[str, str] | None = None,
                   body: bytes = b"", payload: str | None = None, access_key: str = ROOT_ACCESS_KEY,
                   secret_key: str = ROOT_SECRET_KEY, host: str | None = None,
                   when: dt.datetime | None = None) -> dict[str, str]:
    """Headers (incl. Authorization) of a SigV4-signed request for ``path`` (already percent-encoded)."""
    host = host or f"{server.host}:{server.port}"
    scheme = "https" if server.tls else "http"
    hdrs = {"Host": host, **(headers or {})}
    req = AWSRequest(method=method, url=f"{scheme}://{host}{path}", headers=hdrs, data=body)
    signer = _FixedPayloadSigV4(Credentials(access_key, secret_key),
                                payload if payload is not None else hashlib.sha256(body).hexdigest())
    if when is None:
        signer.add_auth(req)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
            signer.add_auth(req)
    return dict(req.headers.items())


def connection(server: LeofsServer, timeout: float = 30) -> http.client.HTTPConnection:
    if server.tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(server.host, server.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(server.host, server.port, timeout=timeout)


def request(server: LeofsServer, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes = b"", sign: bool = True, payload: str | None = None, access_key: str = ROOT_ACCESS_KEY,
            secret_key: str = ROOT_SECRET_KEY, host: str | None = None,
            when: dt.datetime | None = None) -> Response:
    """One raw HTTP request (SigV4-signed unless ``sign`` is False); the path is sent as given."""
    if sign:
        hdrs = signed_headers(server, method, path, headers=headers, body=body, payload=payload,
                              access_key=access_key, secret_key=secret_key, host=host, when=when)
    else:
        hdrs = {"Host": host or f"{server.host}:{server.port}", **(headers or {})}
    conn = connection(server)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in hdrs.items():
            conn.putheader(name, value)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
            conn.putheader("Content-Length", str(len(body)))
        elif not body and method in ("PUT", "POST") and not any(
                k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
            conn.putheader("Content-Length", "0")
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def raw_exchange(server: LeofsServer, data: bytes, *, timeout: float = 10, shutdown: bool = False) -> bytes:
    """Send raw bytes on a plain TCP connection and read until the server closes or a response ends."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def read_response(sock: socket.socket, *, head: bool = False) -> bytes:
    """Read one HTTP response (headers + Content-Length body unless ``head``), or until close."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        if not piece:
            return buf
        buf += piece
    header, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    status = int(header.split(b" ", 2)[1])
    if status == 100:
        return header + b"\r\n\r\n"
    if head or status in (204, 304):
        length = 0
    while len(rest) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    return header + b"\r\n\r\n" + rest


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def create_user(server: LeofsServer, name: str) -> tuple[str, str]:
    """A new user via ``leofs adm``: (access key, secret key)."""
    out = subprocess.run(
        [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET,
         "--json", "create-user", name], check=True, capture_output=True, text=True, timeout=60)
    data: Any = json.loads(out.stdout)
    return data["access_key"], data["secret_key"]


def adm(server: LeofsServer, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET,
         "--json", *args], check=True, capture_output=True, text=True, timeout=60)
    return out.stdout


# -- SigV4 streaming (aws-chunked with chunk signatures), from the AWS documentation -------------
def signing_key(secret: str, date: str, region: str = REGION, service: str = "s3") -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, msg: str) -> str:
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def signed_chunks(data: bytes, chunk_size: int, *, seed_signature: str, amz_date: str, secret: str,
                  trailer: tuple[str, str] | None = None, tamper: int | None = None) -> bytes:
    """aws-chunked body with chained chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]).

    ``tamper``: index of a chunk whose signature is corrupted.
    """
    date = amz_date[:8]
    scope = f"{date}/{REGION}/s3/aws4_request"
    key = signing_key(secret, date)
    prev = seed_signature
    out = bytearray()
    pieces = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for index, piece in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                         hashlib.sha256(piece).hexdigest()])
        sig = _hmac_hex(key, sts)
        prev = sig
        if tamper == index:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        out += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + piece
        if piece or trailer is None:
            out += b"\r\n"
    if trailer is not None:
        trailer_line = f"{trailer[0]}:{trailer[1]}\n"
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                         hashlib.sha256(trailer_line.encode()).hexdigest()])
        out += f"{trailer[0]}:{trailer[1]}\r\nx-amz-trailer-signature:{_hmac_hex(key, sts)}\r\n\r\n".encode()
    return bytes(out)


def unsigned_chunks(data: bytes, chunk_size: int, trailers: dict[str, str] | None = None) -> bytes:
    out = bytearray()
    for i in range(0, len(data), chunk_size):
        piece = data[i:i + chunk_size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def seed_signature(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


@contextmanager
def fake_now(when: dt.datetime) -> Iterator[None]:
    """botocore signs as if the clock said ``when`` (for clock-skew tests)."""
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: when):
        yield


def no_server_errors(server: LeofsServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-5000:]
    assert "internal error" not in log, log[-5000:]
