"""The REST API (plain GET/HEAD/PUT/DELETE on /bucket/key) beside S3, the health ping and the custom
response headers, on the embedded server and on a 3-node cluster (real processes, raw HTTP)."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.rest_helpers import HEADERS_V2, RestTarget, sign_v4, start_cluster, start_embedded, wait_for
from tests.integration.s3_helpers import read_response, status_of
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer, Service, free_port

_names = itertools.count()


@pytest.fixture(scope="module", params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestTarget]:
    base = tmp_path_factory.mktemp(f"rest-{request.param}")
    started = start_embedded(base) if request.param == "embedded" else start_cluster(base)
    yield started
    started.system.stop()


def _bucket(target: RestTarget, acl: str = "private") -> str:
    name = f"rest-{os.getpid()}-{next(_names)}"
    make_client(target.system.endpoint).create_bucket(Bucket=name, ACL=acl)
    return name


def _plain(reply_text: str, code: str) -> None:
    assert reply_text.startswith(f"{code}: "), reply_text
    assert "<" not in reply_text  # no XML


def test_signed_crud_with_range_and_head(target: RestTarget) -> None:
    bucket = _bucket(target)
    body = bytes(range(256)) * 40
    put = target.request("PUT", f"/{bucket}/dir/obj.bin", body=body, sign=True,
                         headers={"Content-Type": "application/x-test", "x-amz-meta-color": "blue"})
    assert put.status == 200, put.text
    assert put.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = target.request("GET", f"/{bucket}/dir/obj.bin", sign=True)
    assert (got.status, got.body) == (200, body)
    assert got.headers["Content-Type"] == "application/x-test"
    assert got.headers["x-amz-meta-color"] == "blue"
    part = target.request("GET", f"/{bucket}/dir/obj.bin", sign=True, headers={"Range": "bytes=100-299"})
    assert (part.status, part.body) == (206, body[100:300])
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(body)}"
    head = target.request("HEAD", f"/{bucket}/dir/obj.bin", sign=True)
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(body)))
    # the same object through S3: one store, two protocols
    assert make_client(target.system.endpoint).get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == body
    bad = target.request("GET", f"/{bucket}/dir/obj.bin", sign=True, headers={"Range": f"bytes={len(body)}-"})
    assert bad.status == 416
    _plain(bad.text, "InvalidRange")
    assert target.request("DELETE", f"/{bucket}/dir/obj.bin", sign=True).status == 204
    gone = target.request("GET", f"/{bucket}/dir/obj.bin", sign=True)
    assert gone.status == 404
    assert gone.headers["Content-Type"].startswith("text/plain")
    _plain(gone.text, "NoSuchKey")
    missing_head = target.request("HEAD", f"/{bucket}/dir/obj.bin", sign=True)
    assert (missing_head.status, missing_head.body) == (404, b"")


def test_chunked_large_object(target: RestTarget) -> None:
    bucket = _bucket(target, "public-read")
    body = os.urandom(6 * 1024 * 1024 + 12345)  # over 5.5 MiB: stored as chunks
    put = target.request("PUT", f"/{bucket}/big", body=body, sign=True, headers={"x-amz-acl": "public-read"})
    assert put.status == 200, put.text
    got = target.request("GET", f"/{bucket}/big")  # anonymous: the object is public-read
    assert got.status == 200
    assert hashlib.md5(got.body).digest() == hashlib.md5(body).digest()
    start, end = 5 * 1024 * 1024 - 100, 5 * 1024 * 1024 + 99  # across the chunk boundary
    part = target.request("GET", f"/{bucket}/big", headers={"Range": f"bytes={start}-{end}"})
    assert (part.status, part.body) == (206, body[start : end + 1])
    tail = target.request("GET", f"/{bucket}/big", headers={"Range": "bytes=-10"})
    assert (tail.status, tail.body) == (206, body[-10:])
    assert target.request("DELETE", f"/{bucket}/big", sign=True).status == 204


def test_private_bucket_refuses_anonymous(target: RestTarget) -> None:
    bucket = _bucket(target)
    assert target.request("PUT", f"/{bucket}/secret", body=b"s3cr3t", sign=True).status == 200
    for method in ("GET", "PUT", "DELETE"):
        reply = target.request(method, f"/{bucket}/secret", body=b"x" if method == "PUT" else b"")
        assert reply.status == 403, (method, reply.text)
        _plain(reply.text, "AccessDenied")
    head = target.request("HEAD", f"/{bucket}/secret")
    assert (head.status, head.body) == (403, b"")
    # a missing key answers the same: existence does not leak
    assert target.request("GET", f"/{bucket}/no-such-key").status == 403
    # a wrong signature is refused, never served as anonymous
    tampered = target.request("GET", f"/{bucket}/secret", headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=LEOFSTESTROOTKEY0001/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "x-amz-date": "20260101T000000Z"})
    assert tampered.status == 403
    assert target.request("GET", f"/{bucket}/secret", sign=True).body == b"s3cr3t"  # untouched


def test_public_read_bucket_reads_its_objects(target: RestTarget) -> None:
    bucket = _bucket(target, "public-read")
    assert target.request("PUT", f"/{bucket}/open", body=b"for all", sign=True,
                          headers={"x-amz-acl": "public-read"}).status == 200
    assert target.request("PUT", f"/{bucket}/plain", body=b"mine", sign=True).status == 200
    assert target.request("GET", f"/{bucket}/open").body == b"for all"
    assert target.request("HEAD", f"/{bucket}/open").status == 200
    # as in LeoFS, the bucket's canned ACL governs REST reads: its objects are public
    assert target.request("GET", f"/{bucket}/plain").body == b"mine"
    # ... through REST only: the S3 API keeps S3's rule (the object's own ACL)
    assert target.request("GET", f"/{bucket}/plain", port=target.s3_port).status == 403
    # reading is not writing
    assert target.request("PUT", f"/{bucket}/open", body=b"vandal").status == 403
    assert target.request("DELETE", f"/{bucket}/open").status == 403
    assert target.request("GET", f"/{bucket}/open").body == b"for all"
    # a missing key in a listable bucket is a plain 404
    _plain(target.request("GET", f"/{bucket}/nothing").text, "NoSuchKey")
    # response overrides need a signature, as in S3
    override = target.request("GET", f"/{bucket}/open?response-content-type=text/html")
    assert override.status == 400
    _plain(override.text, "InvalidRequest")


def test_public_read_write_bucket_takes_anonymous_writes(target: RestTarget) -> None:
    bucket = _bucket(target, "public-read-write")
    put = target.request("PUT", f"/{bucket}/drop", body=b"anonymous bytes")
    assert put.status == 200, put.text
    # POST creates as PUT does (LeoFS's REST API)
    assert target.request("POST", f"/{bucket}/drop2", body=b"posted").status == 200
    assert target.request("GET", f"/{bucket}/drop", sign=True).body == b"anonymous bytes"  # the owner reads it
    assert target.request("GET", f"/{bucket}/drop2", sign=True).body == b"posted"
    assert target.request("DELETE", f"/{bucket}/drop").status == 204
    assert target.request("GET", f"/{bucket}/drop", sign=True).status == 404


def test_presigned_urls(target: RestTarget) -> None:
    bucket = _bucket(target)
    s3 = make_client(f"http://127.0.0.1:{target.rest_port}", signature_version="s3v4")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    path = put_url.split(str(target.rest_port), 1)[1]
    # the signed-header rule: an unsigned x-amz-* header cannot ride on a presigned URL
    widened = target.request("PUT", path, body=b"public now", headers={"x-amz-acl": "public-read"})
    assert widened.status == 403, widened.text
    _plain(widened.text, "AccessDenied")
    assert target.request("PUT", path, body=b"presigned").status == 200
    assert target.request("GET", f"/{bucket}/p").status == 403  # still private
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    get_path = get_url.split(str(target.rest_port), 1)[1]
    assert target.request("GET", get_path).body == b"presigned"
    # a presigned GET does not turn into a DELETE, nor reach another key
    assert target.request("DELETE", get_path).status == 403
    assert target.request("GET", get_path.replace("/p?", "/q?", 1)).status == 403
    assert target.request("GET", f"/{bucket}/p", sign=True).body == b"presigned"
    # SigV2 presigned URLs too
    v2 = make_client(f"http://127.0.0.1:{target.rest_port}", signature_version="s3")
    v2_url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert "Signature=" in v2_url and "AWSAccessKeyId=" in v2_url
    assert target.request("GET", v2_url.split(str(target.rest_port), 1)[1]).body == b"presigned"


def test_sigv2_header(target: RestTarget) -> None:
    bucket = _bucket(target)
    host = f"127.0.0.1:{target.rest_port}"
    req = AWSRequest(method="PUT", url=f"http://{host}/{bucket}/v2", headers={"Host": host}, data=b"sigv2")
    botocore.auth.HmacV1Auth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)).add_auth(req)
    assert target.request("PUT", f"/{bucket}/v2", body=b"sigv2", headers=dict(req.headers.items())).status == 200
    req = AWSRequest(method="GET", url=f"http://{host}/{bucket}/v2", headers={"Host": host})
    botocore.auth.HmacV1Auth(Credentials(ROOT_ACCESS_KEY, "wrong-secret")).add_auth(req)
    wrong = target.request("GET", f"/{bucket}/v2", headers=dict(req.headers.items()))
    assert wrong.status == 403
    _plain(wrong.text, "SignatureDoesNotMatch")
    assert target.request("GET", f"/{bucket}/v2", sign=True).body == b"sigv2"


def _wire(method: str, path: str, headers: dict[str, str]) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def test_expect_continue_only_after_access_is_checked(target: RestTarget) -> None:
    bucket = _bucket(target)
    body = b"y" * 4000
    plain = {"Host": f"127.0.0.1:{target.rest_port}", "Content-Length": str(len(body)), "Expect": "100-continue"}
    with socket.create_connection(("127.0.0.1", target.rest_port), timeout=10) as sock:  # anonymous: refused first
        sock.sendall(_wire("PUT", f"/{bucket}/e", plain))
        answer = read_response(sock)
        assert status_of(answer) == 403 and b"AccessDenied: " in answer
    signed = sign_v4("PUT", f"127.0.0.1:{target.rest_port}", f"/{bucket}/e", body,
                     {"Content-Length": str(len(body)), "Expect": "100-continue"})
    with socket.create_connection(("127.0.0.1", target.rest_port), timeout=10) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/e", signed))
        assert status_of(read_response(sock)) == 100
        sock.sendall(body)
        final = read_response(sock)
        assert status_of(final) == 200, final
    assert target.request("GET", f"/{bucket}/e", sign=True).body == body


def test_no_bucket_operations_or_s3_subresources(target: RestTarget) -> None:
    bucket = _bucket(target)
    target.request("PUT", f"/{bucket}/k", body=b"v", sign=True)
    for method, path in (("GET", "/"), ("GET", f"/{bucket}"), ("GET", f"/{bucket}/"), ("PUT", f"/{bucket}"),
                         ("DELETE", f"/{bucket}")):
        reply = target.request(method, path, sign=True)
        assert reply.status == 400, (method, path, reply.text)
        _plain(reply.text, "InvalidRequest")
    for query in ("acl", "uploads", "uploadId=x&partNumber=1", "tagging", "attributes"):
        reply = target.request("GET", f"/{bucket}/k?{query}", sign=True)
        assert reply.status == 400, (query, reply.text)
        _plain(reply.text, "InvalidArgument")
    copy = target.request("PUT", f"/{bucket}/k2", sign=True, headers={"x-amz-copy-source": f"/{bucket}/k"})
    assert copy.status == 400
    for method in ("PATCH", "OPTIONS"):
        reply = target.request(method, f"/{bucket}/k", sign=True)
        assert reply.status == 405
        assert reply.headers["Allow"] == "GET, HEAD, PUT, POST, DELETE"
        _plain(reply.text, "MethodNotAllowed")
    assert target.request("GET", f"/{bucket}/k", sign=True).body == b"v"  # nothing above touched it


def test_ping_on_both_ports(target: RestTarget) -> None:
    for port in (target.rest_port, target.s3_port):
        for method in ("GET", "HEAD"):
            reply = target.request(method, "/_leofs_adm/ping", port=port)
            assert reply.status == 200, (port, method)
        assert target.request("GET", "/_leofs_adm/ping", port=port).body == b"OK"


def test_custom_headers_and_reload(target: RestTarget) -> None:
    s3 = make_client(target.system.endpoint)
    s3.create_bucket(Bucket="pub", ACL="public-read")
    for key in ("static/logo.png", "other/page.html"):
        s3.put_object(Bucket="pub", Key=key, Body=b"img", ACL="public-read")
    for port in (target.rest_port, target.s3_port):
        for method in ("GET", "HEAD"):
            reply = target.request(method, "/pub/static/logo.png", port=port)
            assert reply.status == 200
            assert reply.headers["Cache-Control"] == "public, max-age=43200", (port, method)
            assert reply.headers["X-Origin"] == "leofs v1"
        ranged = target.request("GET", "/pub/static/logo.png", port=port, headers={"Range": "bytes=0-0"})
        assert (ranged.status, ranged.headers["X-Origin"]) == (206, "leofs v1")
        other = target.request("GET", "/pub/other/page.html", port=port)
        assert other.status == 200 and "X-Origin" not in other.headers and "Cache-Control" not in other.headers
        # errors do not carry them
        assert "X-Origin" not in target.request("GET", "/pub/static/missing", port=port).headers
        # a signed request's explicit override wins over the file's header of the same name
        overridden = target.request("GET", "/pub/static/logo.png?response-cache-control=no-store", port=port,
                                    sign=True)
        assert overridden.headers["Cache-Control"] == "no-store"
        assert overridden.headers["X-Origin"] == "leofs v1"

    def every_process_shows(origin: str) -> bool:
        # new connections: the kernel spreads them over the server's processes
        return all(target.request("GET", "/pub/static/logo.png", port=port).headers.get("X-Origin") == origin
                   for port in (target.rest_port, target.s3_port) for _ in range(12))

    target.headers_file.write_text(HEADERS_V2)
    target.reload()
    wait_for(lambda: every_process_shows("v2"), what="the reloaded headers in every process")
    assert target.request("GET", "/pub/static/logo.png").headers["Cache-Control"] == "max-age=90"

    # an invalid file on reload: the rules in force stay, the error is logged, the server goes on
    mark = target.system.log_mark()
    target.headers_file.write_text("location pub/static {\n    add_header Content-Length 5;\n}\n")
    target.reload()
    wait_for(lambda: "custom headers not reloaded" in target.system.log_since(mark), what="the reload error")
    assert every_process_shows("v2")
    if isinstance(target.system, LeofsServer):
        # a worker that dies now starts again with the rules the primary serves, the file being bad
        _primary, worker = target.system.wait_workers(2)
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: worker not in target.system.pids() and len(target.system.pids()) == 2,
                 what="the worker to be started again")
        target.system.wait_workers(2)
        assert every_process_shows("v2")
        assert "Traceback" not in target.system.log_since(mark)
    target.headers_file.write_text(HEADERS_V2)


def test_reloads_under_traffic_switch_whole_rule_sets(target: RestTarget) -> None:
    """Requests racing SIGHUP reloads get the old rules or the new ones, never a mix, never an error."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.rest_helpers import HEADERS_V1

    make_client(target.system.endpoint).put_object(Bucket="pub", Key="static/race", Body=b"r", ACL="public-read")
    whole = {("leofs v1", "public, max-age=43200"), ("v2", "max-age=90")}
    stop = False

    def reader(port: int) -> list[tuple[int, str | None, str | None]]:
        seen = []
        while not stop:
            reply = target.request("GET", "/pub/static/race", port=port)
            seen.append((reply.status, reply.headers.get("X-Origin"), reply.headers.get("Cache-Control")))
        return seen

    with ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(reader, port) for port in (target.rest_port, target.s3_port) * 2]
        for text in (HEADERS_V1, HEADERS_V2) * 3:
            fresh = target.headers_file.with_suffix(".new")
            fresh.write_text(text)
            fresh.replace(target.headers_file)  # atomic: a reload never reads half a file
            target.reload()
            time.sleep(0.2)
        stop = True
        results = [r for f in readers for r in f.result(timeout=60)]
    assert results
    assert {status for status, _, _ in results} == {200}
    assert {(origin, cache) for _, origin, cache in results} <= whole


def test_rest_only_cluster_gateway(target: RestTarget) -> None:
    """A second gateway of the cluster, ``leofs gateway --protocol rest``: REST on its one port."""
    if isinstance(target.system, LeofsServer):
        pytest.skip("a cluster gateway")
    cluster = target.system
    bucket = _bucket(target, "public-read")
    make_client(cluster.endpoint).put_object(Bucket=bucket, Key="k", Body=b"via s3", ACL="public-read")
    port, admin_port = free_port(), free_port()
    gateway = Service("rest-gateway", ["gateway", "--manager", cluster.manager_address, "--address",
                                       f"127.0.0.1:{port}", "--admin-address", f"127.0.0.1:{admin_port}",
                                       "--protocol", "rest"], [port, admin_port], cluster.base / "rest-gateway.log")
    gateway.start()
    try:
        rest = RestTarget(cluster, port, target.headers_file)
        wait_for(lambda: rest.request("GET", f"/{bucket}/k").status == 200, what="the REST gateway to know the bucket")
        assert rest.request("GET", f"/{bucket}/k").body == b"via s3"
        assert rest.request("GET", "/_leofs_adm/ping").status == 200
        _plain(rest.request("GET", "/", sign=True).text, "InvalidRequest")  # no ListBuckets: not S3
        assert rest.request("PUT", f"/{bucket}/w", body=b"rest", sign=True).status == 200
        assert make_client(cluster.endpoint).get_object(Bucket=bucket, Key="w")["Body"].read() == b"rest"
    finally:
        gateway.stop()


def test_ping_503_without_storage(target: RestTarget) -> None:
    """Last in this module: it stops the cluster's storage nodes."""
    if isinstance(target.system, LeofsServer):
        pytest.skip("the embedded server's store is in the process: its ping is 200 while it runs")
    bucket = _bucket(target)
    for node in target.system.storage.values():
        node.kill()
    for port in (target.rest_port, target.s3_port):
        wait_for(lambda port=port: target.request("GET", "/_leofs_adm/ping", port=port).status == 503,
                 what="ping to answer 503")
    assert target.request("HEAD", "/_leofs_adm/ping").status == 503
    # an object request with no storage node: 503 in plain text, not a hang or a 500
    unavailable = target.request("GET", f"/{bucket}/any", sign=True)
    assert unavailable.status == 503, unavailable.text
    _plain(unavailable.text, "ServiceUnavailable")


def test_rest_only_server_over_tls(tmp_path: Path, ca: Any, ca_bundle: str) -> None:
    """``--protocol rest`` with TLS: the one port is REST over https; S3 requests there are not S3."""
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    srv = LeofsServer(tmp_path / "data", tls=(cert_path, key_path), extra_args=["--protocol", "rest", "--workers", "1"])
    srv.start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        target = RestTarget(srv, srv.port, tmp_path / "none", ssl_context=context)
        assert target.request("GET", "/_leofs_adm/ping").body == b"OK"
        listing = target.request("GET", "/", sign=True)  # ListBuckets in S3
        assert listing.status == 400
        _plain(listing.text, "InvalidRequest")
        assert target.request("PUT", "/nobucket/k", body=b"x", sign=True).status == 404
        with pytest.raises(ClientError):
            make_client(srv.endpoint, verify=ca_bundle).create_bucket(Bucket="never")
    finally:
        srv.stop()
