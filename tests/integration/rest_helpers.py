"""Helpers for the REST API tests: a server (embedded or cluster) serving S3 and REST on two ports
with a custom-header file, and raw HTTP requests, anonymous or SigV4-signed."""

from __future__ import annotations

import hashlib
import http.client
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.cluster import LeofsCluster
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer, free_port

HEADERS_V1 = """\
# the static files of the bucket 'pub'
location pub/static {
    expires    12h;
    add_header Cache-Control public;
    add_header X-Origin "leofs v1";
}
"""
HEADERS_V2 = """\
location /pub/static {
    expires 90s;
    add_header X-Origin v2;
}
"""


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class RestTarget:
    """A running server with S3 on ``s3_port`` and the REST API on ``rest_port``."""

    system: Any  # LeofsServer or LeofsCluster
    rest_port: int
    headers_file: Path
    ssl_context: ssl.SSLContext | None = None  # https, trusting the server's test CA

    @property
    def s3_port(self) -> int:
        return int(self.system.port)

    def request(self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
                port: int | None = None, sign: bool = False) -> Reply:
        """One request on a new connection (so that every gateway process of the server may answer)."""
        port = port or self.rest_port
        hdrs = dict(headers or {})
        if sign:
            hdrs = sign_v4(method, f"127.0.0.1:{port}", path, body, hdrs)
        conn = (http.client.HTTPConnection("127.0.0.1", port, timeout=30) if self.ssl_context is None else
                http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=self.ssl_context))
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def reload(self) -> None:
        """SIGHUP to the process that serves (the server's primary forwards it to its workers)."""
        proc = self.system.gateway.proc if isinstance(self.system, LeofsCluster) else self.system.proc
        proc.send_signal(signal.SIGHUP)


def sign_v4(method: str, host: str, path: str, body: bytes, headers: dict[str, str],
            access_key: str = ROOT_ACCESS_KEY, secret_key: str = ROOT_SECRET_KEY) -> dict[str, str]:
    """``headers`` with a SigV4 Authorization for the request (botocore's S3 signer)."""
    req = AWSRequest(method=method, url=f"http://{host}{path}", headers={"Host": host, **headers}, data=body)
    _BodySigV4(Credentials(access_key, secret_key)).add_auth(req)
    return dict(req.headers.items())


class _BodySigV4(botocore.auth.S3SigV4Auth):
    """botocore's S3 SigV4 signer, signing the body's SHA-256 (it would send UNSIGNED-PAYLOAD)."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials, "s3", "us-east-1")

    def payload(self, request: AWSRequest) -> str:
        return hashlib.sha256(request.body or b"").hexdigest()


def start_embedded(base: Path) -> RestTarget:
    headers_file = base / "custom-headers.conf"
    headers_file.write_text(HEADERS_V1)
    rest_port = free_port()
    srv = LeofsServer(base / "data", extra_args=["--protocol", "s3,rest", "--rest-address", f"127.0.0.1:{rest_port}",
                                                 "--headers-config-file", str(headers_file)])
    srv.start()
    return RestTarget(srv, rest_port, headers_file)


def start_cluster(base: Path) -> RestTarget:
    base.mkdir(parents=True, exist_ok=True)
    headers_file = base / "custom-headers.conf"
    headers_file.write_text(HEADERS_V1)
    rest_port = free_port()
    cluster = LeofsCluster(base, gateway_args=("--protocol", "s3,rest", "--rest-address", f"127.0.0.1:{rest_port}",
                                               "--headers-config-file", str(headers_file)))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    return RestTarget(cluster, rest_port, headers_file)


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true (a generous bound: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
