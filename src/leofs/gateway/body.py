"""Request bodies: plain, HTTP-chunked, or aws-chunked (signed or not, with trailers), and the
integrity checks S3 promises on them (Content-MD5, x-amz-content-sha256, x-amz-checksum-*).

:class:`RequestBody` yields the decoded payload; :class:`Digests` hashes it (MD5 always, for the
ETag; SHA-256 and one flexible checksum when the request asks for them); ``verify`` raises the
right S3 error when something does not match. Nothing is stored before ``verify`` passed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator

from aiohttp import web

from leofs.s3.auth import (
    PAYLOAD_STREAMING_SIGNED,
    PAYLOAD_STREAMING_SIGNED_TRAILER,
    PAYLOAD_STREAMING_UNSIGNED_TRAILER,
    AuthResult,
)
from leofs.s3.checksums import ALGORITHMS, Checksum, checksum_from_headers, parse_content_md5
from leofs.s3.chunked import AwsChunkedDecoder, ChunkSigning
from leofs.s3.errors import S3Error
from leofs.s3.numeric import decimal

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: bodies hashed on the event loop below this size; larger pieces go to a thread (hashlib
#: releases the GIL), which keeps the loop responsive and uses the second core
THREAD_HASH_MIN = 256 * 1024
_STREAMING_MODES = (PAYLOAD_STREAMING_SIGNED, PAYLOAD_STREAMING_SIGNED_TRAILER, PAYLOAD_STREAMING_UNSIGNED_TRAILER)


class Digests:
    """The running digests of a body."""

    def __init__(self, *, sha256: bool, checksum_algorithm: str | None) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.checksum = Checksum(checksum_algorithm) if checksum_algorithm else None
        self.length = 0

    def update(self, data: bytes | memoryview) -> None:
        self.md5.update(data)
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        self.length += len(data)

    async def update_async(self, data: bytes | memoryview) -> None:
        """Hash ``data``, in a worker thread when it is large."""
        if len(data) >= THREAD_HASH_MIN:
            await asyncio.to_thread(self.update, data)
        else:
            self.update(data)


#: seconds a body may go without a byte, and may take in all; the gateway sets them on every
#: request from its config
BODY_IDLE_TIMEOUT = web.RequestKey("body_idle_timeout", float)
BODY_DEADLINE = web.RequestKey("body_deadline", float)
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_DEADLINE = 6 * 3600.0


class RequestBody:
    """The payload of one request, decoded as it streams in."""

    def __init__(self, request: web.Request, auth: AuthResult | None, *, object_checksum: bool = False) -> None:
        """``object_checksum``: the request's ``x-amz-checksum-*`` header is the checksum of the
        object an operation makes (CompleteMultipartUpload), not of this body."""
        headers = request.headers
        self._request = request
        self._idle_timeout = request.get(BODY_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT)
        self._deadline = asyncio.get_running_loop().time() + request.get(BODY_DEADLINE, DEFAULT_DEADLINE)
        payload = (auth.payload if auth else "") or headers.get("x-amz-content-sha256", "")
        # Only the payload mode says a body is aws-chunked: "Content-Encoding: aws-chunked" on a
        # request that is not a streaming upload is a label, and its body is stored as sent (as AWS does)
        self.aws_chunked = payload in _STREAMING_MODES
        self.expected_sha256 = payload if _HEX64.match(payload) else None
        if "Content-MD5" in headers:
            self.expected_md5: bytes | None = parse_content_md5(headers["Content-MD5"])
        else:
            self.expected_md5 = None
        self.checksum_header = None if object_checksum else checksum_from_headers(headers)
        trailer = headers.get("x-amz-trailer", "").strip().lower()
        self.trailer_algorithm: str | None = None
        if trailer:
            alg = trailer.removeprefix("x-amz-checksum-").upper()
            if not trailer.startswith("x-amz-checksum-") or alg not in ALGORITHMS:
                raise S3Error("InvalidRequest",
                              f"The value specified in the x-amz-trailer header is not supported: {trailer}")
            self.trailer_algorithm = alg
        self.checksum_algorithm = self.checksum_header[0] if self.checksum_header else self.trailer_algorithm
        self.declared_length: int | None
        if self.aws_chunked:
            decoded = headers.get("x-amz-decoded-content-length")
            self.declared_length = _parse_length(decoded) if decoded is not None else None
            signing = None
            if auth is not None and auth.payload in (PAYLOAD_STREAMING_SIGNED, PAYLOAD_STREAMING_SIGNED_TRAILER):
                signing = ChunkSigning(
                    signing_key=auth.signing_key,
                    seed_signature=auth.seed_signature,
                    amz_date=auth.amz_date,
                    scope=auth.scope,
                )
            self._decoder: AwsChunkedDecoder | None = AwsChunkedDecoder(
                signing=signing,
                expect_trailers=bool(trailer) or payload.endswith("TRAILER"),
                trailer_signed=payload == PAYLOAD_STREAMING_SIGNED_TRAILER,
            )
        else:
            self._decoder = None
            self.declared_length = request.content_length
        self.trailers: dict[str, str] = {}
        self.received = 0

    def digests(self) -> Digests:
        """Digests this body must be checked against."""
        return Digests(sha256=self.expected_sha256 is not None, checksum_algorithm=self.checksum_algorithm)

    async def pieces(self) -> AsyncIterator[bytes]:
        """The decoded payload, piece by piece; IncompleteBody if the stream ends early."""
        content = self._request.content
        decoder = self._decoder
        loop = asyncio.get_running_loop()
        try:
            while True:
                # a stalled sender would otherwise hold its connection and buffers for ever, and a
                # trickling one would outlive the chunk grace of gc (see maintenance.min_chunk_grace)
                timeout = min(self._idle_timeout, self._deadline - loop.time())
                try:
                    if timeout <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(timeout):
                        data = await content.readany()
                except TimeoutError:
                    raise S3Error("RequestTimeout") from None
                if not data:
                    break
                if decoder is None:
                    self.received += len(data)
                    yield data
                else:
                    for piece in decoder.feed(data):
                        self.received += len(piece)
                        yield piece
        except S3Error:
            raise
        except (ConnectionError, asyncio.IncompleteReadError, EOFError, ValueError) as exc:
            raise S3Error("IncompleteBody") from exc
        except Exception as exc:  # aiohttp payload errors (truncated chunked encoding, ...)
            if type(exc).__module__.startswith("aiohttp"):
                raise S3Error("IncompleteBody") from exc
            raise
        if decoder is not None:
            self.trailers = decoder.finish()
        if self.declared_length is not None and self.received != self.declared_length:
            raise S3Error("IncompleteBody")

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) body, e.g. an XML document; MaxMessageLengthExceeded above ``limit``."""
        if self.declared_length is not None and self.declared_length > limit:
            raise S3Error("MaxMessageLengthExceeded")
        chunks: list[bytes] = []
        size = 0
        digests = self.digests()
        async for piece in self.pieces():
            size += len(piece)
            if size > limit:
                raise S3Error("MaxMessageLengthExceeded")
            chunks.append(piece)
            digests.update(piece)
        self.verify(digests)
        return b"".join(chunks)

    def verify(self, digests: Digests) -> None:
        """Check every digest the request declared; raise the S3 error AWS gives on mismatch."""
        if self.expected_md5 is not None and digests.md5.digest() != self.expected_md5:
            raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
        if self.expected_sha256 is not None:
            assert digests.sha256 is not None
            if digests.sha256.hexdigest() != self.expected_sha256:
                raise S3Error("XAmzContentSHA256Mismatch")
        if digests.checksum is not None:
            alg = digests.checksum.algorithm
            expected = None
            if self.checksum_header is not None:
                expected = self.checksum_header[1]
            else:
                expected = self.trailers.get(f"x-amz-checksum-{alg.lower()}")
                if expected is None:
                    raise S3Error("InvalidRequest", f"x-amz-checksum-{alg.lower()} trailer is missing.")
                _check_b64(expected, alg)
            if digests.checksum.b64() != expected:
                raise S3Error("BadDigest", f"The {alg} you specified did not match the calculated checksum.")

    def checksum_value(self, digests: Digests) -> tuple[str, str] | None:
        """(algorithm, base64 value) of the verified flexible checksum, if the request had one."""
        if digests.checksum is None:
            return None
        return digests.checksum.algorithm, digests.checksum.b64()


def _parse_length(value: str) -> int:
    length = decimal(value)
    if length is None:
        raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number")
    return length


def _check_b64(value: str, algorithm: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{algorithm.lower()} trailer is invalid.") from None
