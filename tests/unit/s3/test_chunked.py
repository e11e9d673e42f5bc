"""AwsChunkedDecoder against botocore's encoder and the AWS docs' signed chunked-upload example."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc64NvmeChecksum, Sha256Checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leofs.s3.auth import RequestParts, authenticate
from leofs.s3.chunked import EMPTY_SHA256, AwsChunkedDecoder, ChunkSigning
from leofs.s3.errors import S3Error

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(body: bytes, cuts: list[int], **kwargs: object) -> tuple[bytes, dict[str, str], AwsChunkedDecoder]:
    decoder = AwsChunkedDecoder(**kwargs)  # type: ignore[arg-type]
    out: list[bytes] = []
    pos = 0
    for cut in [*sorted({min(c, len(body)) for c in cuts}), len(body)]:
        out += decoder.feed(body[pos:cut])
        pos = cut
    trailers = decoder.finish()
    return b"".join(out), trailers, decoder


@SETTINGS
@given(
    payload=st.binary(max_size=5000),
    chunk_size=st.integers(1, 2048),
    checksum=st.sampled_from([None, Crc32Checksum, Sha256Checksum, CrtCrc64NvmeChecksum]),
    cuts=st.lists(st.integers(0, 6000), max_size=12),
)
def test_botocore_aws_chunked_roundtrip(payload: bytes, chunk_size: int, checksum: type, cuts: list[int]) -> None:
    name = "x-amz-checksum-test"
    body = AwsChunkedWrapper(
        io.BytesIO(payload), checksum_cls=checksum, checksum_name=name, chunk_size=chunk_size
    ).read()
    data, trailers, decoder = decode(body, cuts, expect_trailers=checksum is not None)
    assert data == payload
    assert decoder.decoded_length == len(payload)
    assert decoder.done
    if checksum is None:
        assert trailers == {}
    else:
        expected = checksum()
        expected.update(payload)
        assert trailers == {name: expected.b64digest()}


def test_byte_by_byte_and_large_chunk() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB in one chunk
    body = AwsChunkedWrapper(io.BytesIO(payload), Crc32Checksum, "x-amz-checksum-crc32", 3 * 1024 * 1024).read()
    data, trailers, _ = decode(body, list(range(0, len(body), 65536)))
    assert data == payload and "x-amz-checksum-crc32" in trailers
    small = AwsChunkedWrapper(io.BytesIO(b"hello world"), Crc32Checksum, "x-amz-checksum-crc32", 4).read()
    data, trailers, _ = decode(small, list(range(len(small))))
    assert data == b"hello world"


def test_unsigned_trailer_leniency() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n"
    # final CRLF missing; an unexpected trailer signature on the unsigned variant is ignored
    assert decode(body, [], expect_trailers=True)[1] == {"x-amz-checksum-crc32": "NhCmhg=="}
    body2 = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\nx-amz-trailer-signature:abc\r\n\r\n\r\n"
    assert decode(body2, [], expect_trailers=True)[1] == {"x-amz-checksum-crc32": "NhCmhg=="}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"5\r\nhel",
        b"5\r\nhello\r\n",
        b"5\r\nhello\r\n0",
        b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:Nh",
        b"5;chunk-signature=ab",
    ],
)
def test_truncated_body_is_incomplete(body: bytes) -> None:
    decoder = AwsChunkedDecoder(expect_trailers=True)
    decoder.feed(body)
    with pytest.raises(S3Error) as exc:
        decoder.finish()
    assert exc.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"\r\n\r\n",
        b"-5\r\nhello\r\n",
        b"ffffffffffffffffffff\r\n",
        b"5\r\nhello\r\n0\r\n\r\ngarbage",
        b"5\r\nhello\r\n0\r\nno-colon-here\r\n\r\n",
        b"1" * 10000,
    ],
)
def test_garbage_is_an_s3_error(body: bytes) -> None:
    decoder = AwsChunkedDecoder()
    with pytest.raises(S3Error) as exc:
        decoder.feed(body)
        decoder.finish()
    assert exc.value.status == 400


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=5))
def test_fuzz_never_raises_other_errors(body: bytes, cuts: list[int]) -> None:
    try:
        decode(body, cuts, expect_trailers=True)
    except S3Error as e:
        assert e.status in (400, 403)


# -- signed chunks: the AWS docs example "PUT Object" (chunked upload, 64 KiB chunks of 'a') ----

EXAMPLE_SECRETS = {"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
EXAMPLE_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
    "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
}
DOC_CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]


def example_signing() -> ChunkSigning:
    result = authenticate(
        RequestParts("PUT", "/examplebucket/chunkObject.txt", "", EXAMPLE_HEADERS),
        EXAMPLE_SECRETS.get,
        dt.datetime(2013, 5, 24, 0, 5, tzinfo=dt.UTC),
    )
    return ChunkSigning(result.signing_key, result.seed_signature, result.amz_date, result.scope)


def sign_chunks(signing: ChunkSigning, chunks: list[bytes], trailers: dict[str, str] | None = None) -> bytes:
    """Encode ``chunks`` (the last one should be b"") with chained signatures, as the docs describe."""
    prev = signing.seed_signature
    wire = bytearray()
    for chunk in chunks:
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                signing.amz_date,
                signing.scope,
                prev,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        prev = hmac.new(signing.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        wire += f"{len(chunk):x};chunk-signature={prev}\r\n".encode() + chunk + b"\r\n"
    wire = wire[:-2]  # the final chunk has no data and no CRLF of its own
    if trailers is None:
        return bytes(wire) + b"\r\n"
    canonical = "".join(f"{k}:{v}\n" for k, v in trailers.items())
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            signing.amz_date,
            signing.scope,
            prev,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    trailer_sig = hmac.new(signing.signing_key, sts.encode(), hashlib.sha256).hexdigest()
    return (
        bytes(wire)
        + canonical.replace("\n", "\r\n").encode()
        + (f"x-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode())
    )


def test_aws_docs_example_signatures() -> None:
    signing = example_signing()
    body = sign_chunks(signing, [b"a" * 65536, b"a" * 1024, b""])
    assert len(body) == 66824  # the docs' Content-Length
    for sig in DOC_CHUNK_SIGNATURES:
        assert f"chunk-signature={sig}".encode() in body
    data, trailers, decoder = decode(body, [100, 70000, 66700], signing=signing)
    assert data == b"a" * 66560 and trailers == {} and decoder.done


@SETTINGS
@given(cuts=st.lists(st.integers(0, 67000), max_size=8), index=st.integers(0, 66823))
def test_signed_chunks_reject_any_single_byte_tamper(cuts: list[int], index: int) -> None:
    signing = example_signing()
    body = bytearray(sign_chunks(signing, [b"a" * 65536, b"a" * 1024, b""]))
    body[index] ^= 0x01
    with pytest.raises(S3Error):
        decode(bytes(body), cuts, signing=signing)


@pytest.mark.parametrize("index", [*range(0, 90), *range(65600, 65700), *range(66700, 66824)])
def test_signed_chunks_tamper_framing_bytes(index: int) -> None:
    signing = example_signing()
    body = bytearray(sign_chunks(signing, [b"a" * 65536, b"a" * 1024, b""]))
    body[index] ^= 0x01
    with pytest.raises(S3Error):
        decode(bytes(body), [], signing=signing)


def test_signed_trailer() -> None:
    signing = example_signing()
    trailers = {"x-amz-checksum-crc32c": "sOO8/Q=="}
    body = sign_chunks(signing, [b"a" * 9000, b""], trailers)
    data, got, _ = decode(body, [5, 9100], signing=signing, expect_trailers=True, trailer_signed=True)
    assert data == b"a" * 9000 and got == trailers
    tampered = body.replace(b"sOO8/Q==", b"sOO8/R==")
    with pytest.raises(S3Error) as exc:
        decode(tampered, [], signing=signing, expect_trailers=True, trailer_signed=True)
    assert exc.value.code == "SignatureDoesNotMatch"
    missing = body[: body.index(b"x-amz-trailer-signature")] + b"\r\n"
    with pytest.raises(S3Error) as exc:
        decode(missing, [], signing=signing, expect_trailers=True, trailer_signed=True)
    assert exc.value.code == "SignatureDoesNotMatch"


def test_signed_mode_requires_chunk_signatures() -> None:
    with pytest.raises(S3Error) as exc:
        decode(b"5\r\nhello\r\n0\r\n\r\n", [], signing=example_signing())
    assert exc.value.code == "SignatureDoesNotMatch"


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=200) | st.text(max_size=120).map(lambda t: t.encode("utf-8", "surrogateescape")),
    trailer_signed=st.booleans(),
)
def test_fuzz_signed_never_raises_other_errors(body: bytes, trailer_signed: bool) -> None:
    signing = ChunkSigning(b"k" * 32, "0" * 64, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request")
    for prefix in (b"", b"5;chunk-signature=", b"0;chunk-signature=" + b"a" * 64 + b"\r\n"):
        try:
            decode(prefix + body, [7], signing=signing, expect_trailers=True, trailer_signed=trailer_signed)
        except S3Error as e:
            assert e.status in (400, 403)
