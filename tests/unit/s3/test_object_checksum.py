"""The x-amz-checksum-* header of CompleteMultipartUpload: the object's checksum, ``base64-N`` for
a COMPOSITE one (as SDKs send it), plain base64 for a FULL_OBJECT one."""

from __future__ import annotations

import base64

import pytest

from leofs.s3.checksums import object_checksum_from_headers
from leofs.s3.errors import S3Error

CRC32 = base64.b64encode(b"\x01\x02\x03\x04").decode()


def test_forms() -> None:
    assert object_checksum_from_headers({}) is None
    assert object_checksum_from_headers({"x-amz-checksum-crc32": f"{CRC32}-3"}) == ("CRC32", f"{CRC32}-3")
    assert object_checksum_from_headers({"x-amz-checksum-crc32": f" {CRC32} "}) == ("CRC32", CRC32)
    sha = base64.b64encode(b"s" * 32).decode()
    assert object_checksum_from_headers({"x-amz-checksum-sha256": f"{sha}-10000"}) == ("SHA256", f"{sha}-10000")


@pytest.mark.parametrize("value", [f"{CRC32}-0", f"{CRC32}-10001", f"{CRC32}-x", f"{CRC32}-", "!!!!-2",
                                   base64.b64encode(b"12345").decode() + "-2", f"{CRC32}-\u0663"])
def test_malformed(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        object_checksum_from_headers({"x-amz-checksum-crc32": value})
    assert exc.value.code == "InvalidRequest"


def test_more_than_one() -> None:
    with pytest.raises(S3Error):
        object_checksum_from_headers({"x-amz-checksum-crc32": CRC32, "x-amz-checksum-crc32c": CRC32})
