"""A lean asyncio S3 client on aiohttp: path-style requests, SigV4, no retries, no parsing beyond need.

Every method returns the number of body bytes moved and raises ``S3Failure`` on an unexpected status,
so the load generator can count errors without tracebacks.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from yarl import URL

from .sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, Signer, uri_encode

_READ_CHUNK = 1 << 20
_UPLOAD_RE = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_KEY_RE = re.compile(rb"<Key>")
_TOKEN_RE = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNC_RE = re.compile(rb"<IsTruncated>true</IsTruncated>")


class S3Failure(Exception):
    """An S3 request answered with an unexpected HTTP status."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body[:200]!r}")
        self.status = status


class S3Client:
    """Path-style S3 requests to ``endpoint`` (``http://127.0.0.1:PORT``) over a pooled session."""

    def __init__(self, endpoint: str, signer: Signer, connections: int = 64) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = URL(self.endpoint).raw_authority
        self.signer = signer
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> S3Client:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.connections,
                                         enable_cleanup_closed=False, ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the client as an async context manager"
        return self._session

    def _request(self, method: str, bucket: str, key: str = "", query: dict[str, str] | None = None,
                 payload_hash: str = EMPTY_SHA256, extra: dict[str, str] | None = None,
                 data: Any = None) -> Any:
        path = "/" + bucket + ("/" + uri_encode(key, slash=True) if key else "")
        headers = self.signer.headers(method, self.host, path, query, payload_hash)
        if extra:
            headers.update(extra)
        url = self.endpoint + path
        if query:
            url += "?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(query.items()))
        return self.session.request(method, URL(url, encoded=True), headers=headers, data=data)

    async def create_bucket(self, bucket: str) -> None:
        async with self._request("PUT", bucket) as resp:
            body = await resp.read()
            if resp.status not in (200, 409):
                raise S3Failure("PUT", bucket, resp.status, body)

    async def put(self, bucket: str, key: str, body: bytes) -> int:
        async with self._request("PUT", bucket, key, payload_hash=UNSIGNED_PAYLOAD, data=body) as resp:
            out = await resp.read()
            if resp.status != 200:
                raise S3Failure("PUT", key, resp.status, out)
        return len(body)

    async def put_stream(self, bucket: str, key: str, size: int, chunks: AsyncIterator[bytes]) -> int:
        """PUT ``size`` bytes produced by ``chunks`` without holding the whole body in memory."""
        extra = {"Content-Length": str(size)}
        async with self._request("PUT", bucket, key, payload_hash=UNSIGNED_PAYLOAD, extra=extra,
                                 data=chunks) as resp:
            out = await resp.read()
            if resp.status != 200:
                raise S3Failure("PUT", key, resp.status, out)
        return size

    async def put_multipart(self, bucket: str, key: str, size: int, part_size: int, parallel: int,
                            part: Callable[[int], AsyncIterator[bytes]]) -> int:
        """A multipart upload of ``size`` bytes in ``part_size`` parts, ``parallel`` at a time;
        ``part(n)`` streams the bytes of one part of length n."""
        async with self._request("POST", bucket, key, query={"uploads": ""}, payload_hash=UNSIGNED_PAYLOAD) as resp:
            out = await resp.read()
            if resp.status != 200:
                raise S3Failure("CreateMultipartUpload", key, resp.status, out)
        m = _UPLOAD_RE.search(out)
        if m is None:
            raise S3Failure("CreateMultipartUpload", key, resp.status, out)
        upload_id = m.group(1).decode()
        lengths = [min(part_size, size - off) for off in range(0, size, part_size)] or [0]
        etags: dict[int, str] = {}
        gate = asyncio.Semaphore(parallel)

        async def upload(number: int, length: int) -> None:
            async with gate:
                query = {"partNumber": str(number), "uploadId": upload_id}
                async with self._request("PUT", bucket, key, query=query, payload_hash=UNSIGNED_PAYLOAD,
                                         extra={"Content-Length": str(length)}, data=part(length)) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise S3Failure("UploadPart", key, r.status, body)
                    etags[number] = r.headers["ETag"]

        await asyncio.gather(*(upload(n, length) for n, length in enumerate(lengths, 1)))
        doc = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>" for n in sorted(etags))
        xml = f"<CompleteMultipartUpload>{doc}</CompleteMultipartUpload>".encode()
        async with self._request("POST", bucket, key, query={"uploadId": upload_id}, payload_hash=UNSIGNED_PAYLOAD,
                                 data=xml) as resp:
            out = await resp.read()
            if resp.status != 200 or b"<Error>" in out:
                raise S3Failure("CompleteMultipartUpload", key, resp.status, out)
        return size

    async def get(self, bucket: str, key: str) -> int:
        async with self._request("GET", bucket, key) as resp:
            if resp.status != 200:
                raise S3Failure("GET", key, resp.status, await resp.read())
            length = resp.content_length
            if length is not None and length <= _READ_CHUNK:
                return len(await resp.read())
            n = 0
            while chunk := await resp.content.read(_READ_CHUNK):
                n += len(chunk)
            return n

    async def head(self, bucket: str, key: str) -> int:
        async with self._request("HEAD", bucket, key) as resp:
            if resp.status != 200:
                raise S3Failure("HEAD", key, resp.status, b"")
        return 0

    async def delete(self, bucket: str, key: str) -> int:
        async with self._request("DELETE", bucket, key) as resp:
            out = await resp.read()
            if resp.status != 204:
                raise S3Failure("DELETE", key, resp.status, out)
        return 0

    async def list_page(self, bucket: str, token: str | None, max_keys: int = 1000,
                        prefix: str = "") -> tuple[int, str | None, int]:
        """One ListObjectsV2 page: (keys on the page, next continuation token or None, body bytes)."""
        query = {"list-type": "2", "max-keys": str(max_keys)}
        if prefix:
            query["prefix"] = prefix
        if token:
            query["continuation-token"] = token
        async with self._request("GET", bucket, query=query) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise S3Failure("LIST", bucket, resp.status, body)
        count = len(_KEY_RE.findall(body))
        m = _TOKEN_RE.search(body)
        nxt = m.group(1).decode() if (m and _TRUNC_RE.search(body)) else None
        if nxt is not None:
            nxt = nxt.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
        return count, nxt, len(body)
