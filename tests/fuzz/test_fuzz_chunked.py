"""Fuzz the aws-chunked decoder: garbage and damaged bodies (signed or not, with trailers) decode
to the payload or raise a clear S3 error; a signed body that decodes is the body that was signed."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import example, given
from hypothesis import strategies as st

from leofs.s3.chunked import EMPTY_SHA256, AwsChunkedDecoder, ChunkSigning
from leofs.s3.errors import S3Error
from tests.fuzz.profile import assert_client_error, fuzz

SIGNING = ChunkSigning(signing_key=hashlib.sha256(b"k").digest(), seed_signature="ab" * 32,
                       amz_date="20260102T030405Z", scope="20260102/us-east-1/s3/aws4_request")
CODES = {"InvalidRequest", "IncompleteBody", "SignatureDoesNotMatch"}


def _hmac(text: str) -> str:
    return hmac.new(SIGNING.signing_key, text.encode(), hashlib.sha256).hexdigest()


def encode(payload: bytes, sizes: list[int], trailers: dict[str, str], *, signed: bool) -> bytes:
    """An aws-chunked body as an SDK writes it (chunk signatures chained from the seed)."""
    out, prev, pos = [], SIGNING.seed_signature, 0
    chunks = []
    for size in sizes:
        if pos >= len(payload):
            break
        chunks.append(payload[pos : pos + size])
        pos += size
    if pos < len(payload):
        chunks.append(payload[pos:])
    for chunk in [*chunks, b""]:
        ext = ""
        if signed:
            prev = _hmac("\n".join(("AWS4-HMAC-SHA256-PAYLOAD", SIGNING.amz_date, SIGNING.scope, prev, EMPTY_SHA256,
                                    hashlib.sha256(chunk).hexdigest())))
            ext = f";chunk-signature={prev}"
        out.append(f"{len(chunk):x}{ext}\r\n".encode() + chunk + (b"\r\n" if chunk else b""))
    lines = "".join(f"{n}:{v}\n" for n, v in trailers.items())
    tail = "".join(f"{n}:{v}\r\n" for n, v in trailers.items())
    if signed and trailers:
        sig = _hmac("\n".join(("AWS4-HMAC-SHA256-TRAILER", SIGNING.amz_date, SIGNING.scope, prev,
                               hashlib.sha256(lines.encode()).hexdigest())))
        tail += f"x-amz-trailer-signature:{sig}\r\n"
    out.append(tail.encode() + b"\r\n")
    return b"".join(out)


def decode(body: bytes, cuts: list[int], *, signed: bool, trailer_signed: bool) -> tuple[bytes, dict[str, str]] | None:
    """Decoded payload and trailers, or None for a clear S3 error."""
    decoder = AwsChunkedDecoder(signing=SIGNING if signed else None, expect_trailers=trailer_signed,
                                trailer_signed=trailer_signed)
    out: list[bytes] = []
    pos = 0
    try:
        for cut in [*sorted({min(c, len(body)) for c in cuts}), len(body)]:
            out += decoder.feed(body[pos:cut])
            pos = cut
        trailers = decoder.finish()
    except S3Error as err:
        assert_client_error(err, CODES)
        return None
    data = b"".join(out)
    assert decoder.decoded_length == len(data)
    return data, trailers


_TRAILERS = st.dictionaries(st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-t"]),
                            st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12), max_size=2)


@st.composite
def damaged(draw: st.DrawFn) -> tuple[bytes, bytes, dict[str, str], bool, bool]:
    """(payload, damaged body, trailers, signed, trailer_signed)"""
    payload = draw(st.binary(max_size=600))
    signed = draw(st.booleans())
    trailers = draw(_TRAILERS)
    body = encode(payload, draw(st.lists(st.integers(1, 300), max_size=4)), trailers, signed=signed)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut", "size"]))
        if kind == "flip" and at < len(body):
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        elif kind == "insert":
            junk = draw(st.sampled_from([b"\r\n", b";", b"0", b"ffffffffffffffff", b"\n", b"x"]))
            body = body[:at] + junk + body[at:]
        elif kind == "delete":
            body = body[:at] + body[at + 1 :]
        elif kind == "cut":
            body = body[:at]
        else:  # replace the first chunk size with a huge or odd one
            body = draw(st.sampled_from([b"ffffffffffff", b"10000000000000000", b"-1", b"0x10", b" 1", b""])) + \
                body[body.find(b";") if b";" in body[:20] else body.find(b"\r\n") :]
    return payload, body, trailers, signed, signed and bool(trailers) and draw(st.booleans())


@fuzz()
@given(case=damaged(), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_damaged_bodies(case: tuple[bytes, bytes, dict[str, str], bool, bool], cuts: list[int]) -> None:
    payload, body, trailers, signed, trailer_signed = case
    result = decode(body, cuts, signed=signed, trailer_signed=trailer_signed)
    if result is not None and signed:
        # every chunk signature held: the data must be what was signed (only a truncation
        # inside the trailer section, or after it, can still decode, and only to the same data)
        assert result[0] == payload
        if trailer_signed:
            assert result[1] == {k: v.strip() for k, v in trailers.items()}


@fuzz()
@given(body=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=6), signed=st.booleans())
@example(body=b"ffffffffffffffff\r\n", cuts=[], signed=False)
@example(body=b"1" * 5000 + b"\r\n", cuts=[], signed=False)
@example(body=b"0\r\n" + b"a:b\r\n" * 100 + b"\r\n", cuts=[], signed=False)
def test_arbitrary_bytes(body: bytes, cuts: list[int], signed: bool) -> None:
    decode(body, cuts, signed=signed, trailer_signed=signed)


@fuzz(0.5)
@given(payload=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 700), max_size=5), trailers=_TRAILERS,
       signed=st.booleans(), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_valid_bodies_round_trip(payload: bytes, sizes: list[int], trailers: dict[str, str], signed: bool,
                                 cuts: list[int]) -> None:
    body = encode(payload, sizes, trailers, signed=signed)
    assert decode(body, cuts, signed=signed, trailer_signed=signed and bool(trailers)) == (
        payload, {k: v.strip() for k, v in trailers.items()})
