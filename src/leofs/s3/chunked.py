"""Decoding of ``aws-chunked`` request bodies (with optional chunk signatures and trailers).

Pure, incremental: feed it the bytes of the (already HTTP-de-chunked) body as they arrive and it
returns the decoded payload bytes. See the AWS S3 docs "Signature Calculations for the
Authorization Header: Transferring Payload in Multiple Chunks (Chunked Upload)".

Wire format::

    <hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ...
    0[;chunk-signature=<sig>]\\r\\n
    [<trailer-name>:<value>\\r\\n ...][x-amz-trailer-signature:<sig>\\r\\n]
    \\r\\n

Each chunk signature is HMAC-SHA256(signing key, "AWS4-HMAC-SHA256-PAYLOAD\\n<date>\\n<scope>\\n
<previous signature>\\n<sha256 of empty>\\n<sha256 of chunk data>"), chained from the seed
signature of the Authorization header; the trailer signature is HMAC-SHA256(signing key,
"AWS4-HMAC-SHA256-TRAILER\\n<date>\\n<scope>\\n<final chunk signature>\\n<sha256 of the
trailers as 'name:value\\n' lines>").
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

import msgspec

from leofs.s3.errors import S3Error

EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
#: longest chunk-header or trailer line accepted
MAX_LINE: Final = 4096
#: most trailer lines accepted
MAX_TRAILERS: Final = 64
#: largest single chunk accepted (hex digits beyond this are garbage, not a size)
MAX_CHUNK_SIZE: Final = 1 << 40

_HEADER, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)


class ChunkSigning(msgspec.Struct, frozen=True):
    """What verifying chunk signatures needs, from the request's SigV4 Authorization header."""

    signing_key: bytes
    seed_signature: str
    amz_date: str
    scope: str


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}.")


class AwsChunkedDecoder:
    """Incremental aws-chunked decoder; see the module docstring for the format.

    ``feed()`` takes the body in pieces split anywhere and returns decoded payload pieces;
    ``finish()`` is called at the end of the body and returns the trailers (lower-case names).
    With ``signing`` every chunk signature is verified (SignatureDoesNotMatch otherwise); with
    ``trailer_signed`` the trailer signature line is required and verified too. Without
    ``trailer_signed`` a trailer signature line is accepted and ignored. Trailers are parsed
    whenever present; ``expect_trailers`` only records that the request announced some
    (``x-amz-trailer``): the caller checks that the announced ones arrived.
    """

    def __init__(
        self,
        *,
        signing: ChunkSigning | None = None,
        expect_trailers: bool = False,
        trailer_signed: bool = False,
    ) -> None:
        self._signing = signing
        self._expect_trailers = expect_trailers
        self._trailer_signed = trailer_signed and signing is not None
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0  # data bytes left in the current chunk
        self._crlf_seen = 0  # bytes of the CRLF after chunk data consumed
        self._chunk_sig = ""
        self._chunk_hash: hashlib._Hash | None = None
        self._prev_sig = signing.seed_signature.lower() if signing else ""
        self._trailers: dict[str, str] = {}
        self._trailer_lines: list[tuple[str, str]] = []
        self._trailer_sig: str | None = None
        self._trailer_line_count = 0
        self.decoded_length = 0

    @property
    def done(self) -> bool:
        """True once the final chunk and the trailer section have been read."""
        return self._state == _DONE

    # -- parsing ---------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume the next piece of the body; return the decoded payload bytes it completed."""
        out: list[bytes] = []
        buf = data if isinstance(data, bytes) else bytes(data)
        view = memoryview(buf)
        pos, end = 0, len(buf)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                if self._chunk_hash is not None:
                    self._chunk_hash.update(piece)
                out.append(bytes(piece))
                self._remaining -= take
                self.decoded_length += take
                pos += take
                if self._remaining == 0:
                    self._state = _DATA_CRLF
                    self._crlf_seen = 0
            elif state == _DATA_CRLF:
                expected = b"\r\n"[self._crlf_seen]
                if buf[pos] != expected:
                    raise _malformed("chunk data is not followed by CRLF")
                pos += 1
                self._crlf_seen += 1
                if self._crlf_seen == 2:
                    self._finish_chunk()
                    self._state = _HEADER
            elif state == _DONE:
                # tolerate stray line ends after the end of the body; anything else is garbage
                if buf[pos] not in b"\r\n":
                    raise _malformed("data after the final chunk")
                pos += 1
            else:
                nl = buf.find(b"\n", pos)
                stop = end if nl < 0 else nl
                if len(self._line) + (stop - pos) > MAX_LINE:
                    raise _malformed("line too long")
                self._line += view[pos:stop]
                if nl < 0:
                    pos = end
                    break
                pos = nl + 1
                line = bytes(self._line)
                self._line.clear()
                if line.endswith(b"\r"):
                    line = line[:-1]
                if state == _HEADER:
                    self._chunk_header(line)
                else:
                    self._trailer_line(line)
        return out

    def _chunk_header(self, line: bytes) -> None:
        size_text, _, ext = line.partition(b";")
        size_text = size_text.strip(b" \t")
        if not size_text or len(size_text) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            raise _malformed("bad chunk size")
        size = int(size_text, 16)
        if size > MAX_CHUNK_SIZE:
            raise _malformed("chunk too large")
        sig = ""
        for item in ext.split(b";") if ext else []:
            name, _, value = item.partition(b"=")
            if name.strip(b" \t") == b"chunk-signature":
                sig = value.strip(b" \t").decode("ascii", "replace").lower()
        if self._signing is not None:
            if not sig:
                raise S3Error("SignatureDoesNotMatch", "Missing chunk-signature.")
            self._chunk_hash = hashlib.sha256()
        self._chunk_sig = sig
        if size == 0:
            self._finish_chunk()
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _DATA

    def _finish_chunk(self) -> None:
        """Verify the signature of the chunk just read (no-op when unsigned)."""
        signing = self._signing
        if signing is None:
            return
        digest = (self._chunk_hash or hashlib.sha256()).hexdigest()
        parts = ("AWS4-HMAC-SHA256-PAYLOAD", signing.amz_date, signing.scope, self._prev_sig, EMPTY_SHA256)
        sts = "\n".join((*parts, digest))
        expected = hmac.new(signing.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), self._chunk_sig.encode()):
            raise S3Error("SignatureDoesNotMatch")
        self._prev_sig = expected
        self._chunk_hash = None

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._end_trailers()
            return
        self._trailer_line_count += 1
        if self._trailer_line_count > MAX_TRAILERS:
            raise _malformed("too many trailers")
        name_b, colon, value_b = line.partition(b":")
        if not colon:
            raise _malformed("bad trailer line")
        try:
            name = name_b.decode("ascii").strip().lower()
            value = value_b.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _malformed("bad trailer line") from None
        if not name:
            raise _malformed("bad trailer line")
        if name == "x-amz-trailer-signature":
            self._trailer_sig = value.lower()
        else:
            self._trailers[name] = value
            self._trailer_lines.append((name, value))

    def _end_trailers(self) -> None:
        if self._trailer_signed:
            signing = self._signing
            assert signing is not None
            if self._trailer_sig is None:
                raise S3Error("SignatureDoesNotMatch", "Missing x-amz-trailer-signature.")
            canonical = "".join(f"{n}:{v}\n" for n, v in self._trailer_lines)
            sts = "\n".join(
                (
                    "AWS4-HMAC-SHA256-TRAILER",
                    signing.amz_date,
                    signing.scope,
                    self._prev_sig,
                    hashlib.sha256(canonical.encode()).hexdigest(),
                )
            )
            expected = hmac.new(signing.signing_key, sts.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected.encode(), self._trailer_sig.encode()):
                raise S3Error("SignatureDoesNotMatch")
        self._state = _DONE

    def finish(self) -> dict[str, str]:
        """Declare the end of the body; return the trailers (lower-case names).

        Raises S3Error IncompleteBody when the body ended before the final 0-size chunk (or
        inside the trailer section). The blank line that closes the trailer section may be
        missing when nothing else is.
        """
        if self._state == _TRAILER and not self._line:
            self._end_trailers()
        if self._state != _DONE:
            raise S3Error("IncompleteBody")
        return dict(self._trailers)
