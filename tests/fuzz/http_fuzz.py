"""An HTTP-level fuzzer for a real leofs server: mutated valid S3 requests over raw sockets.

Each request starts as a valid one (put, get, list, multipart, ACL, multi-delete, copy, bucket
calls), is signed (SigV4 header or presigned, SigV2) or sent anonymously, and is mutated before
signing (so the server sees a validly signed odd request) or after (methods, paths, queries,
headers, bodies, framing, truncation, huge numbers, CR/LF, odd encodings, bad chunk sizes, plain
garbage), sometimes sent slowly. A request fails when the answer is a 5xx (other than 501
NotImplemented), when no answer comes within the timeout, when a complete request is dropped
without an answer, when a response body is cut short, or when the server logs a traceback.
Afterwards the objects written through boto3 before the run must read back byte-for-byte.

Run by hand (starts its own server in a temporary directory)::

    python -m tests.fuzz.http_fuzz --seconds 600 [--seed N]

Every request is derived from (seed, index), so ``--seed N --replay I`` sends request I again.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import random
import re
import socket
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from leofs.s3 import sigv4
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

TIMEOUT = 15.0  # seconds for one answer; every request here is small


@dataclass
class Request:
    """One HTTP request as components; ``raw`` bytes win when set (garbage, framing damage)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes | None = None
    truncate: int | None = None  # send only this many bytes, then half-close
    slow: bool = False
    notes: list[str] = field(default_factory=list)

    def target(self) -> str:
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{n}={v}" if v != "\0" else n for n, v in self.query)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        head = f"{self.method} {self.target()} HTTP/1.1\r\n"
        head += "".join(f"{n}: {v}\r\n" for n, v in self.headers)
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + self.body


@dataclass
class Outcome:
    status: int | None  # None: no answer
    detail: str = ""


# -- building valid requests -------------------------------------------------------------------------
_HUGE = ["9" * 5000, "18446744073709551616", "-1", "99999999999999999999", "0", "1e9", "0x10", " 7", "٣"]
_ODD = ["%00", "%0D%0A", "%ZZ", "%C3%28", "%FF%FE", "..", "../..", "//", "%2F", "+", "~", "é", "\u202e", "%E2%80%AE"]
_HEADERS: list[tuple[str, list[str]]] = [
    ("Range", ["bytes=0-0", "bytes=-1", "bytes=5-1", "bytes=0-", "bytes=1-2,3-4", "bytes=99999999999-", "x=1-2",
               "bytes=" + "9" * 5000 + "-"]),
    ("If-Match", ["*", '"x"', '""', "W/\"a\"", ","]),
    ("If-None-Match", ["*", '"x"', ""]),
    ("If-Modified-Since", ["Mon, 01 Jan 0001 00:00:00 GMT", "garbage", "Fri, 31 Dec 9999 23:59:59 -2359"]),
    ("If-Unmodified-Since", ["Thu, 01 Jan 1970 00:00:00 +9999", "0"]),
    ("Content-MD5", ["AAAA", "garbage!", "", base64.b64encode(b"x" * 16).decode()]),
    ("x-amz-content-sha256", ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "0" * 64, "x",
                              "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"]),
    ("x-amz-decoded-content-length", _HUGE),
    ("x-amz-trailer", ["x-amz-checksum-crc32", "x-amz-checksum-nope", ""]),
    ("x-amz-checksum-crc32", ["AAAAAA==", "!!", ""]),
    ("x-amz-checksum-algorithm", ["CRC32", "SHA256", "MD5", "crc64nvme", ""]),
    ("x-amz-sdk-checksum-algorithm", ["CRC32C", "x"]),
    ("Content-Encoding", ["aws-chunked", "gzip", "aws-chunked,gzip", ""]),
    ("Transfer-Encoding", ["chunked", "gzip", "chunked, chunked", "identity"]),
    ("Expect", ["100-continue", "100-Continue", "200-ok", ""]),
    ("x-amz-copy-source", ["/fz-src/k", "fz-src", "/", "%ZZ", "/a/b?versionId=1", "/" + "a" * 2000]),
    ("x-amz-copy-source-range", ["bytes=0-1", "bytes=" + "9" * 30 + "-1", "x"]),
    ("x-amz-metadata-directive", ["COPY", "REPLACE", "x"]),
    ("x-amz-acl", ["private", "public-read", "bogus", ""]),
    ("x-amz-grant-read", ['id="x"', 'uri="http://acs.amazonaws.com/groups/global/AllUsers"', "garbage",
                          'emailAddress="a"']),
    ("x-amz-meta-big", ["v" * 3000]),
    ("x-amz-meta-ütf", ["é"]),
    ("x-amz-storage-class", ["STANDARD", "GLACIER", "x"]),
    ("x-amz-tagging", ["a=b", "%ZZ"]),
    ("x-amz-date", ["20000101T000000Z", "garbage", ""]),
    ("Date", ["garbage", "Mon, 01 Jan 0001 00:00:00 GMT"]),
    ("Host", ["", "bucket.127.0.0.1", "a.b.c", "[::1]:80", "x" * 300, "fz.localhost"]),
    ("Authorization", ["AWS4-HMAC-SHA256 Credential=x", "AWS x:y", "Bearer x", "AWS4-ECDSA-P256-SHA256 x", ""]),
    ("Content-Type", ["text/html", "", "a" * 500]),
    ("Connection", ["keep-alive", "upgrade", ""]),
    ("Upgrade", ["websocket", "h2c"]),
]
_QUERY: list[tuple[str, list[str]]] = [
    ("max-keys", _HUGE), ("max-parts", _HUGE), ("max-uploads", _HUGE), ("part-number-marker", _HUGE),
    ("partNumber", _HUGE), ("uploadId", ["x", "", "%00", "a" * 300]), ("list-type", ["2", "3", ""]),
    ("encoding-type", ["url", "xml", ""]), ("delimiter", ["/", "", "%00", "%FF"]), ("prefix", _ODD),
    ("marker", _ODD), ("continuation-token", ["x", "%ZZ", "AAAA"]), ("start-after", _ODD),
    ("fetch-owner", ["true", "x"]), ("versionId", ["null", "x"]), ("acl", ["\0"]), ("uploads", ["\0"]),
    ("delete", ["\0"]), ("versions", ["\0"]), ("location", ["\0"]), ("attributes", ["\0"]),
    ("response-content-type", ["text/html", "a%0D%0Ab:c", "%00"]), ("response-expires", ["x", "%0A"]),
    ("response-content-disposition", ["attachment", "a%0Db"]), ("key-marker", _ODD),
    ("version-id-marker", ["x"]), ("upload-id-marker", ["x"]), ("X-Amz-Expires", _HUGE), ("Signature", ["x"]),
]


def _xml(rng: random.Random, upload: tuple[str, str] | None) -> tuple[str, bytes]:
    """A (kind, body) XML document of one of the kinds S3 accepts."""
    kind = rng.choice(["complete", "delete", "acl", "create"])
    if kind == "complete":
        n = rng.randint(1, 3)
        parts = "".join(f"<Part><PartNumber>{i + 1}</PartNumber><ETag>\"{'0' * 32}\"</ETag></Part>" for i in range(n))
        return kind, f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    if kind == "delete":
        objs = "".join(f"<Object><Key>fz/d{rng.randint(0, 9)}</Key></Object>" for _ in range(rng.randint(1, 4)))
        return kind, f"<Delete><Quiet>{rng.choice(['true', 'false'])}</Quiet>{objs}</Delete>".encode()
    if kind == "acl":
        return kind, (
            b'<AccessControlPolicy xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Owner><ID>x</ID></Owner>'
            b'<AccessControlList><Grant><Grantee xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/'
            b"AllUsers</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList>"
            b"</AccessControlPolicy>"
        )
    location = b"<LocationConstraint>us-east-1</LocationConstraint>"
    return kind, b"<CreateBucketConfiguration>" + location + b"</CreateBucketConfiguration>"


def _aws_chunked(rng: random.Random, payload: bytes) -> bytes:
    """An unsigned aws-chunked body with a CRC32 trailer (the trailer value is not checked here)."""
    out, pos = [], 0
    while pos < len(payload):
        n = rng.randint(1, 4096)
        out.append(f"{len(payload[pos:pos + n]):x}\r\n".encode() + payload[pos : pos + n] + b"\r\n")
        pos += n
    return b"".join(out) + b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"


class Generator:
    """Valid requests against the fuzz bucket, then their mutations."""

    def __init__(self, host: str, bucket: str, uploads: list[tuple[str, str]]) -> None:
        self.host = host
        self.bucket = bucket
        self.uploads = uploads  # (key, upload id) of real multipart uploads in the fuzz bucket

    def valid(self, rng: random.Random) -> Request:
        b = f"/{self.bucket}"
        key = f"{b}/fz/{rng.choice(['a', 'b', 'dir/c', 'd' + str(rng.randint(0, 9)), 'é %2B', 'x' * 200])}"
        if rng.random() < 0.3:
            key = f"{b}/fz/{quote(rng.choice(['k', 'a/b', 'ü', 'a b', '~!*()']), safe='/')}"
        body = rng.randbytes(rng.choice([0, 1, 100, 5000, 70000]))
        upload = rng.choice(self.uploads) if self.uploads else None
        choice = rng.randrange(17)
        if choice == 0:
            return Request("PUT", key, [], [("Content-Type", "application/octet-stream")], body)
        if choice == 1:
            return Request("GET", key, [], [])
        if choice == 2:
            return Request("HEAD", key, [], [])
        if choice == 3:
            return Request("DELETE", key, [], [])
        if choice == 4:
            return Request("GET", b, [("list-type", "2"), ("prefix", "fz/"), ("delimiter", "/")], [])
        if choice == 5:
            return Request("GET", b, [(rng.choice(["versions", "uploads", "location", "acl", "versioning"]), "\0")],
                           [])
        if choice == 6:
            return Request("POST", key, [("uploads", "\0")], [])
        if choice == 7 and upload:
            q = [("partNumber", str(rng.randint(1, 3))), ("uploadId", upload[1])]
            return Request("PUT", f"{b}/{upload[0]}", q, [], body)
        if choice == 8 and upload:
            _, xml = _xml(rng, upload)
            return Request("POST", f"{b}/{upload[0]}", [("uploadId", upload[1])], [], xml)
        if choice == 9 and upload:
            return Request("GET", f"{b}/{upload[0]}", [("uploadId", upload[1])], [])
        if choice == 10:
            return Request("PUT", key, [("acl", "\0")], [("x-amz-acl", rng.choice(["private", "public-read"]))])
        if choice == 11:
            _, xml = _xml(rng, None)
            md5 = base64.b64encode(hashlib.md5(xml).digest()).decode()
            return Request("POST", b, [("delete", "\0")], [("Content-MD5", md5)], xml)
        if choice == 12:
            return Request("PUT", key, [], [("x-amz-copy-source", f"{b}/fz/a")])
        if choice == 13:
            name = f"/fz-new-{rng.randint(0, 5)}"
            return Request(rng.choice(["PUT", "DELETE", "HEAD"]), name, [], [])
        if choice == 14:
            headers = [("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", str(len(body))),
                       ("x-amz-trailer", "x-amz-checksum-crc32")]
            req = Request("PUT", key, [], headers, _aws_chunked(rng, body))
            req.notes.append("aws-chunked")
            return req
        if choice == 15:
            req = Request("PUT", key, [], [("Content-Encoding", "aws-chunked")], body)
            req.notes.append("streaming-signed")  # signed with chunk signatures in make_request
            return req
        return Request("GET", key, [("response-content-type", "text/plain")], [("Range", "bytes=0-10")])


def _mutate_components(rng: random.Random, req: Request) -> None:
    """Changes that keep the request parseable as HTTP (so they can be signed afterwards)."""
    what = rng.randrange(9)
    if what == 0:
        req.method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "get", "FOO", "TRACE"])
    elif what == 1:
        pos = rng.randint(1, len(req.path))
        req.path = req.path[:pos] + rng.choice(_ODD) + req.path[pos:]
    elif what == 2 and req.query:
        req.query.pop(rng.randrange(len(req.query)))
    elif what in (2, 3):
        name, values = rng.choice(_QUERY)
        req.query.append((name, quote(rng.choice(values), safe="%")))
    elif what == 4:
        name, values = rng.choice(_HEADERS)
        req.headers.append((name, rng.choice(values)))
    elif what == 5 and req.headers:
        req.headers.pop(rng.randrange(len(req.headers)))
    elif what == 6 and req.body:
        pos = rng.randrange(len(req.body))
        req.body = req.body[:pos] + bytes([rng.randrange(256)]) + req.body[pos + 1 :]
    elif what == 7:
        req.body = rng.choice([b"", b"<", b"<Delete/>", rng.randbytes(50), b"<a>" * 300])
    else:
        req.headers.append((f"x-amz-meta-{rng.randint(0, 99)}", rng.choice(["", "v", "é", "a" * 2100])))
    req.notes.append(f"component-mutation-{what}")


def _mutate_bytes(rng: random.Random, req: Request) -> None:
    """Changes below HTTP: framing, truncation, raw bytes, slow sending, plain garbage."""
    raw = req.encode()
    what = rng.randrange(9)
    if what == 0:  # flip, insert or delete bytes anywhere
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            op = rng.randrange(3)
            if op == 0:
                data[pos] = rng.randrange(256)
            elif op == 1:
                data[pos:pos] = rng.choice([b"\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"\xff", b"%"])
            else:
                del data[pos]
        req.raw = bytes(data)
    elif what == 1 and req.body:  # the body stops early; the write side is then closed
        req.raw = raw
        req.truncate = len(raw) - rng.randint(1, len(req.body))
    elif what == 2:  # Content-Length lies or is garbage
        value = rng.choice(["-1", "abc", "99999999999999999999", str(len(req.body) + 10), "1, 2", "0x10",
                            "9" * 5000])
        req.headers = [(n, v) for n, v in req.headers if n.lower() != "content-length"]
        req.headers.append(("Content-Length", value))
        req.raw = req.encode()
        if value == str(len(req.body) + 10):
            req.truncate = len(req.raw)  # the promised rest never comes
    elif what == 3:  # HTTP/1.1 chunked framing, sometimes damaged
        chunks = b"".join(f"{len(req.body[i:i + 1000]):x}\r\n".encode() + req.body[i : i + 1000] + b"\r\n"
                          for i in range(0, len(req.body), 1000))
        end = rng.choice([b"0\r\n\r\n", b"0\r\n", b"", b"fffffffffffffffff\r\n", b"-1\r\n\r\n", b"zz\r\n\r\n"])
        req.headers = [(n, v) for n, v in req.headers if n.lower() not in ("content-length", "transfer-encoding")]
        req.headers.append(("Transfer-Encoding", "chunked"))
        head = f"{req.method} {req.target()} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in req.headers)
        req.raw = head.encode("utf-8", "surrogateescape") + b"\r\n" + chunks + end
        if end in (b"0\r\n", b""):
            req.truncate = len(req.raw)
    elif what == 4:  # a header value or name with raw CR, LF, NUL or high bytes
        bad = rng.choice([b"a\rb", b"a\nb", b"a\x00b", b"\xff\xfe", b"a\r\n b", b" "])
        name = rng.choice([b"x-amz-meta-a", b"Range", b"Host", b"Content-Type", b"x\x01y", b"", b"x-amz-acl"])
        head, _, rest = raw.partition(b"\r\n")
        req.raw = head + b"\r\n" + name + b": " + bad + b"\r\n" + rest
    elif what == 5:  # huge request line or header
        size = rng.choice([8190, 8191, 70000])
        req.headers.append(("x-amz-meta-huge", "a" * size) if rng.random() < 0.5 else ("X" * size, "v"))
        req.raw = req.encode()
    elif what == 6:  # a different request line
        line = rng.choice([b"GET / HTTP/1.0", b"GET / HTTP/2.0", b"PRI * HTTP/2.0", b"GET http://x/fz-a/k HTTP/1.1",
                           b"GET * HTTP/1.1", b"CONNECT 127.0.0.1:1 HTTP/1.1", b"GET", b"GET /a b c HTTP/1.1",
                           b" GET / HTTP/1.1", b"GET /\x00 HTTP/1.1"])
        req.raw = line + b"\r\n" + raw.partition(b"\r\n")[2]
    elif what == 7:  # plain garbage
        req.raw = rng.choice([rng.randbytes(rng.randint(1, 300)), b"\r\n" * 50, b"\x16\x03\x01\x02\x00\x01\x00\x01",
                              b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"])
    else:
        req.raw = raw
    if rng.random() < 0.1:
        req.slow = True
    req.notes.append(f"byte-mutation-{what}")


# -- signing ------------------------------------------------------------------------------------------
def sign(rng: random.Random, req: Request, host: str, creds: Credentials) -> None:
    """Sign the request in place with one of the schemes S3 accepts (or leave it anonymous)."""
    scheme = rng.choice(["v4", "v4", "v4-query", "v2", "anonymous"])
    req.notes.append(scheme)
    if scheme == "anonymous":
        _ensure_host(req, host)
        return
    url = f"http://{host}{req.target()}"
    headers = {n: v for n, v in req.headers if n.lower() != "host"}
    aws = AWSRequest(method=req.method, url=url, headers=headers, data=req.body)
    try:
        if scheme == "v4":
            S3SigV4Auth(creds, "s3", "us-east-1").add_auth(aws)
        elif scheme == "v4-query":
            S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=600).add_auth(aws)
        else:
            aws.headers["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            HmacV1Auth(creds).add_auth(aws)
    except Exception as exc:  # botocore cannot sign some odd inputs: send them unsigned
        req.notes.append(f"unsignable: {type(exc).__name__}")
        _ensure_host(req, host)
        return
    target = aws.url.split(host, 1)[1] if host in aws.url else req.target()
    path, _, query = target.partition("?")
    req.path = path
    req.query = [tuple(p.split("=", 1)) if "=" in p else (p, "\0") for p in query.split("&") if p]  # type: ignore[misc]
    req.headers = [(n, str(v)) for n, v in aws.headers.items()]
    _ensure_host(req, host)


def sign_streaming(rng: random.Random, req: Request, host: str, creds: Credentials) -> None:
    """SigV4 with STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: the body becomes signed aws-chunked."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    trailer = rng.random() < 0.5
    mode = sigv4.STREAMING_SIGNED_TRAILER if trailer else sigv4.STREAMING_SIGNED
    payload = req.body
    req.headers += [("Host", host), ("x-amz-date", amz_date), ("x-amz-content-sha256", mode),
                    ("x-amz-decoded-content-length", str(len(payload)))]
    if trailer:
        req.headers.append(("x-amz-trailer", "x-amz-checksum-crc32"))
    headers = {n.lower(): v for n, v in req.headers}
    signed = sorted(headers)
    query = "&".join(f"{n}={v}" if v != "\0" else n for n, v in req.query)
    creq = "\n".join((req.method, sigv4.canonical_uris(req.path)[0], sigv4.canonical_query(query),
                      sigv4.canonical_headers(headers, signed), ";".join(signed), mode))
    key = sigv4.signing_key(creds.secret_key, amz_date[:8], "us-east-1", "s3")

    def hmac_hex(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    prev = hmac_hex(f"{sigv4.ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}")
    req.headers.append(("Authorization", f"{sigv4.ALGORITHM} Credential={creds.access_key}/{scope}, "
                                         f"SignedHeaders={';'.join(signed)}, Signature={prev}"))
    size = rng.choice([8192, 65536, 1 << 20])
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] + [b""]
    out = []
    for chunk in chunks:
        prev = hmac_hex("\n".join(("AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, sigv4.EMPTY_SHA256,
                                   hashlib.sha256(chunk).hexdigest())))
        out.append(f"{len(chunk):x};chunk-signature={prev}\r\n".encode() + chunk + (b"\r\n" if chunk else b""))
    if trailer:
        crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
        line = f"x-amz-checksum-crc32:{crc}"
        sig = hmac_hex("\n".join(("AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                                  hashlib.sha256(f"{line}\n".encode()).hexdigest())))
        out.append(f"{line}\r\nx-amz-trailer-signature:{sig}\r\n".encode())
    req.body = b"".join(out) + b"\r\n"
    _ensure_host(req, host)


def _ensure_host(req: Request, host: str) -> None:
    if not any(n.lower() == "host" for n, _ in req.headers):
        req.headers.insert(0, ("Host", host))
    if not any(n.lower() == "content-length" for n, _ in req.headers) and (req.body or req.method in ("PUT", "POST")):
        req.headers.append(("Content-Length", str(len(req.body))))
    req.headers.append(("Connection", "close"))


def make_request(seed: int, index: int, gen: Generator, creds: Credentials) -> Request:
    """Request ``index`` of the run with ``seed``: the same pair always gives the same request."""
    rng = random.Random(f"{seed}:{index}")
    req = gen.valid(rng)
    mode = rng.choice(["plain", "before-signing", "after-signing", "after-signing", "bytes"])
    req.notes.append(mode)
    if mode == "before-signing":
        for _ in range(rng.randint(1, 3)):
            _mutate_components(rng, req)
    if "streaming-signed" in req.notes:
        sign_streaming(rng, req, gen.host, creds)
    else:
        sign(rng, req, gen.host, creds)
    if mode == "after-signing":
        for _ in range(rng.randint(1, 2)):
            _mutate_components(rng, req)
        # keep the framing true (a body that never comes is the truncation mutation's business)
        req.headers = [(n, str(len(req.body)) if n.lower() == "content-length" else v) for n, v in req.headers]
    elif mode == "bytes":
        _mutate_bytes(rng, req)
    return req


# -- sending --------------------------------------------------------------------------------------------
_STATUS_RE = re.compile(rb"HTTP/\d\.\d (\d{3})")  # aiohttp echoes the version asked for


def send(host: str, port: int, req: Request, timeout: float = TIMEOUT) -> Outcome:
    """Send one request on a new connection and read the whole answer."""
    data = req.encode()
    if req.truncate is not None:
        data = data[: req.truncate]
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return Outcome(None, f"connect failed: {exc}")
    with sock:
        try:
            if req.slow:
                for i in range(0, len(data), max(1, len(data) // 20)):
                    sock.sendall(data[i : i + max(1, len(data) // 20)])
                    time.sleep(0.02)
            else:
                sock.sendall(data)
        except OSError:
            pass  # the server may answer (and close) before taking the whole body
        # A damaged request may still look unfinished to the server: after a grace period (or at
        # once when truncated on purpose) the write side closes, and the server must not wait on.
        half_close_at = time.monotonic() + (0.0 if req.truncate is not None else 0.5)
        half_closed = req.raw is None and req.truncate is None
        received = bytearray()
        while not _complete(received, req.method):
            if not half_closed and time.monotonic() >= half_close_at:
                half_closed = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            left = min(deadline, half_close_at if not half_closed else deadline) - time.monotonic()
            if time.monotonic() >= deadline:
                return Outcome(None, f"hang: no complete answer in {timeout:.0f} s ({len(received)} bytes)")
            sock.settimeout(max(left, 0.01))
            try:
                more = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if not received:
                    return Outcome(None, f"connection error: {exc}")
                break
            if not more:
                break
            received += more
    return _parse_answer(bytes(received), req.method)


def _complete(data: bytes | bytearray, method: str) -> bool:
    """Whether ``data`` holds a whole answer (a mutation may have dropped ``Connection: close``)."""
    while True:
        head, sep, body = bytes(data).partition(b"\r\n\r\n")
        if not sep:
            return False
        m = _STATUS_RE.match(head)
        if m is None:
            return False
        status = int(m[1])
        if status == 100:
            data = body
            continue
        if method == "HEAD" or status in (204, 304):
            return True
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if length is not None:
            return len(body) >= int(length[1])
        if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            return body.endswith(b"0\r\n\r\n")
        return False


def _parse_answer(data: bytes, method: str) -> Outcome:
    while True:
        m = _STATUS_RE.match(data)
        if m is None:
            return Outcome(None, "closed without an answer" if not data else f"not HTTP: {data[:60]!r}")
        status = int(m[1])
        head, sep, body = data.partition(b"\r\n\r\n")
        if status == 100 and sep:
            data = body
            continue
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if sep and length and method != "HEAD" and status not in (204, 304) and len(body) < int(length[1]):
            return Outcome(status, f"body cut short: {len(body)} of {int(length[1])} bytes")
        code = re.search(rb"<Code>([^<]*)</Code>", body)
        return Outcome(status, code[1].decode(errors="replace") if code else "")


def classify(req: Request, outcome: Outcome) -> str | None:
    """None when the answer is acceptable; else "failure"."""
    if outcome.status is not None and outcome.status < 500 and "cut short" not in outcome.detail:
        return None
    if outcome.status == 501 and (outcome.detail == "NotImplemented" or req.method == "HEAD"):
        return None  # a clear answer for what is not built (a HEAD answer has no body to name it)
    dropped = outcome.status is None and outcome.detail.startswith(("closed without", "connection error"))
    if dropped and (req.raw is not None or req.truncate is not None):
        return None  # dropping garbage, a damaged frame or a half-sent body without an answer is fine
    return "failure"


# -- a run ------------------------------------------------------------------------------------------------
@dataclass
class Report:
    seed: int
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)

    def summary(self) -> str:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"seed {self.seed}: {self.sent} requests ({top}); {len(self.failures)} failures, "
                f"{len(self.tracebacks)} tracebacks in the log")


def setup(endpoint: str, seed: int) -> tuple[Any, dict[tuple[str, str], bytes], Generator]:
    """Objects written through boto3 that must survive the run, and a generator for the fuzz bucket."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ROOT_ACCESS_KEY,
                      aws_secret_access_key=ROOT_SECRET_KEY, region_name="us-east-1",
                      config=Config(retries={"max_attempts": 1}))
    rng = random.Random(seed)
    keep, fuzz_bucket = f"keep-{seed % 10**9}", f"fz-{seed % 10**9}"
    for b in (keep, fuzz_bucket, "fz-src"):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    kept: dict[tuple[str, str], bytes] = {}
    for i, size in enumerate([0, 1, 1000, 70000, 6 * 1024 * 1024 + 7]):
        for bucket in (keep, fuzz_bucket):  # also in the fuzz bucket, where fuzz requests go
            key = f"kept/{i}-é ~!/{size}"
            data = rng.randbytes(size)
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            kept[bucket, key] = data
    s3.put_object(Bucket=fuzz_bucket, Key="fz/a", Body=b"copy source")
    s3.put_object(Bucket="fz-src", Key="k", Body=b"copy source")
    uploads = []
    for i in range(3):
        key = f"fz/mp{i}"
        uid = s3.create_multipart_upload(Bucket=fuzz_bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=fuzz_bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"p" * 100)
        uploads.append((key, uid))
    host = endpoint.split("://", 1)[1]
    return s3, kept, Generator(host, fuzz_bucket, uploads)


def verify_kept(s3: Any, kept: dict[tuple[str, str], bytes]) -> list[str]:
    """Objects written through boto3 before the run that no longer read back byte-for-byte."""
    bad = []
    for (bucket, key), data in kept.items():
        try:
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            bad.append(f"{bucket}/{key}: {exc}")
            continue
        if got != data:
            bad.append(f"{bucket}/{key}: {len(got)} bytes differ from the {len(data)} written")
    return bad


def run(server: LeofsServer, seconds: float, seed: int, *, log: Any = print, max_requests: int | None = None) -> Report:
    """Fuzz ``server`` for ``seconds``; the report lists failures with their (seed, index)."""
    s3, kept, gen = setup(server.endpoint, seed)
    creds = Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    report = Report(seed)
    log(f"http fuzz: seed {seed} against {server.endpoint} for {seconds:.0f} s (log {server.service.log_path})")
    log_pos = _log_size(server)
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline and (max_requests is None or index < max_requests):
        req = make_request(seed, index, gen, creds)
        outcome = send(server.host, server.port, req)
        report.sent += 1
        key = str(outcome.status) if outcome.status is not None else "none"
        report.statuses[key] = report.statuses.get(key, 0) + 1
        kind = classify(req, outcome)
        if kind is not None:
            report.failures.append(_describe(seed, index, req, outcome))
            log(report.failures[-1])
        new_pos = _log_size(server)
        if new_pos != log_pos:
            text = _log_text(server, log_pos)
            log_pos = new_pos
            if "Traceback" in text:
                report.tracebacks.append(f"after request {index}:\n{text[-3000:]}")
                log(f"traceback in the server log after {_describe(seed, index, req, outcome)}\n{text[-3000:]}")
        if index % 200 == 199 and not server.ping():
            report.failures.append(f"seed {seed} request {index}: the server stopped answering ping")
            break
        index += 1
    if not server.ping():
        report.failures.append("the server does not answer ping after the run")
    for problem in verify_kept(s3, kept):
        report.failures.append(f"kept object lost or changed: {problem}")
    log(report.summary())
    return report


def _describe(seed: int, index: int, req: Request, outcome: Outcome) -> str:
    raw = req.encode()
    shown = raw if len(raw) <= 600 else raw[:500] + b"..." + raw[-100:]
    return (f"seed {seed} request {index} ({', '.join(req.notes)}): status {outcome.status} {outcome.detail}\n"
            f"  replay: python -m tests.fuzz.http_fuzz --seed {seed} --replay {index}\n  request: {shown!r}")


def _log_size(server: LeofsServer) -> int:
    try:
        return server.service.log_path.stat().st_size
    except OSError:
        return 0


def _log_text(server: LeofsServer, pos: int) -> str:
    with open(server.service.log_path, "rb") as f:
        f.seek(pos)
        return f.read().decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--replay", type=int, default=None, help="send only request I of the seed, and show it")
    parser.add_argument("--workers", type=int, default=2, help="server processes answering S3 (default 2)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="leofs-http-fuzz-") as tmp:
        server = LeofsServer(Path(tmp) / "data", extra_args=["--workers", str(args.workers)])
        server.start()
        try:
            if args.replay is not None:
                _, _, gen = setup(server.endpoint, seed)
                req = make_request(seed, args.replay, gen, Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY))
                outcome = send(server.host, server.port, req)
                print(_describe(seed, args.replay, req, outcome))
                print("verdict:", classify(req, outcome) or "ok")
                print(_log_text(server, 0)[-5000:])
                return 0
            report = run(server, args.seconds, seed)
        finally:
            server.stop()
    return 1 if report.failures or report.tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
