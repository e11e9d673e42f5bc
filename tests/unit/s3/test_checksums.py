"""Checksums: standard check values, botocore's checksum classes, combine and composite."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.httpchecksum import (
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.s3.checksums import (
    ALGORITHMS,
    Checksum,
    checksum_from_headers,
    combine_crc,
    composite,
    header_name,
    parse_content_md5,
)
from leofs.s3.errors import S3Error

CHECK_VALUES = {  # of b"123456789" (CRC catalogue "check" values)
    "CRC32": "cbf43926",
    "CRC32C": "e3069283",
    "CRC64NVME": "ae8b14860a799888",
    "SHA1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "SHA256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}
BOTOCORE = {
    "CRC32": CrtCrc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_check_values(algorithm: str) -> None:
    c = Checksum(algorithm.lower())
    c.update(b"1234")
    c.update(memoryview(b"56789"))
    assert c.digest().hex() == CHECK_VALUES[algorithm]
    assert c.b64() == base64.b64encode(bytes.fromhex(CHECK_VALUES[algorithm])).decode()
    assert header_name(algorithm) == "x-amz-checksum-" + algorithm.lower()


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.binary(max_size=3000), max_size=5), algorithm=st.sampled_from(ALGORITHMS))
def test_matches_botocore(data: list[bytes], algorithm: str) -> None:
    ours, theirs = Checksum(algorithm), BOTOCORE[algorithm]()
    for piece in data:
        ours.update(piece)
        theirs.update(piece)
    assert ours.b64() == theirs.b64digest()


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.binary(max_size=2000), min_size=1, max_size=6),
    algorithm=st.sampled_from(["CRC32", "CRC32C", "CRC64NVME"]),
)
def test_combine_equals_whole(parts: list[bytes], algorithm: str) -> None:
    def digest(data: bytes) -> bytes:
        c = Checksum(algorithm)
        c.update(data)
        return c.digest()

    acc = digest(parts[0])
    for part in parts[1:]:
        acc = combine_crc(algorithm, acc, digest(part), len(part))
    assert acc == digest(b"".join(parts))


def test_combine_rejects_sha() -> None:
    with pytest.raises(S3Error):
        combine_crc("SHA256", b"", b"", 0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_composite(algorithm: str) -> None:
    parts = [b"a" * 100, b"b" * 7, b""]
    digests = []
    for part in parts:
        c = Checksum(algorithm)
        c.update(part)
        digests.append(c.digest())
    whole = Checksum(algorithm)
    whole.update(b"".join(digests))
    assert composite(algorithm, digests) == f"{whole.b64()}-3"
    if algorithm == "SHA256":
        expected = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest())
        assert composite(algorithm, digests) == expected.decode() + "-3"


def test_checksum_from_headers() -> None:
    assert checksum_from_headers({"content-type": "x"}) is None
    assert checksum_from_headers({"x-amz-checksum-crc32": "NhCmhg=="}) == ("CRC32", "NhCmhg==")
    assert checksum_from_headers({"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "COMPOSITE"}) is None
    sha = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert checksum_from_headers({"x-amz-checksum-sha256": sha}) == ("SHA256", sha)
    for bad in ("NhCmhg", "NhCmhgAA", "!!!!", "", "AAAAAAAAAAA="):
        with pytest.raises(S3Error) as exc:
            checksum_from_headers({"x-amz-checksum-crc32": bad})
        assert exc.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as exc:
        checksum_from_headers({"x-amz-checksum-crc32": "NhCmhg==", "x-amz-checksum-crc32c": "NhCmhg=="})
    assert exc.value.code == "InvalidRequest"


def test_parse_content_md5() -> None:
    value = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    assert parse_content_md5(value) == hashlib.md5(b"x").digest()
    for bad in ("", "abc", "not base64!", base64.b64encode(b"x" * 15).decode()):
        with pytest.raises(S3Error) as exc:
            parse_content_md5(bad)
        assert exc.value.code == "InvalidDigest"


def test_unknown_algorithm() -> None:
    with pytest.raises(S3Error):
        Checksum("MD4")
