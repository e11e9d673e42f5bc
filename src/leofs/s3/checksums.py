"""Checksums S3 clients send and expect: CRC32, CRC32C, CRC64NVME, SHA1, SHA256, and MD5.

Values on the wire are base64 of the big-endian digest. CRCs come from zlib (CRC32) and
awscrt (CRC32C, CRC64NVME, and the combine functions used for full-object multipart checksums).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Final

from awscrt import checksums as _crt

from leofs.s3.errors import S3Error

#: the flexible-checksum algorithms S3 accepts, in the spelling of x-amz-checksum-algorithm
ALGORITHMS: Final = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

#: digest size in bytes of each algorithm
DIGEST_SIZES: Final[dict[str, int]] = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}

_CRC_FUNCS: Final[dict[str, Callable[[bytes, int], int]]] = {
    "CRC32": lambda data, prev: zlib.crc32(data, prev),
    "CRC32C": _crt.crc32c,
    "CRC64NVME": _crt.crc64nvme,
}
_COMBINE_FUNCS: Final[dict[str, Callable[[int, int, int], int]]] = {
    "CRC32": _crt.combine_crc32,
    "CRC32C": _crt.combine_crc32c,
    "CRC64NVME": _crt.combine_crc64nvme,
}
_HEADER_TO_ALGORITHM: Final[dict[str, str]] = {f"x-amz-checksum-{a.lower()}": a for a in ALGORITHMS}


def _check_algorithm(algorithm: str) -> str:
    alg = algorithm.upper()
    if alg not in DIGEST_SIZES:
        raise S3Error("InvalidRequest", f"Checksum algorithm {algorithm!r} is not supported.")
    return alg


class Checksum:
    """An incremental checksum of one of :data:`ALGORITHMS` (case-insensitive name)."""

    __slots__ = ("_crc", "_crc_func", "_hash", "algorithm")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = _check_algorithm(algorithm)
        self._crc = 0
        self._crc_func = _CRC_FUNCS.get(self.algorithm)
        self._hash = None if self._crc_func else hashlib.new(self.algorithm.lower())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the checksum."""
        if self._crc_func is not None:
            self._crc = self._crc_func(bytes(data) if not isinstance(data, bytes) else data, self._crc)
        else:
            assert self._hash is not None
            self._hash.update(data)

    def digest(self) -> bytes:
        """The big-endian digest of everything added so far."""
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(DIGEST_SIZES[self.algorithm], "big")

    def b64(self) -> str:
        """The digest as S3 puts it on the wire (base64)."""
        return base64.b64encode(self.digest()).decode("ascii")


def header_name(algorithm: str) -> str:
    """The header carrying a checksum of ``algorithm``: ``x-amz-checksum-crc32`` and so on."""
    return "x-amz-checksum-" + _check_algorithm(algorithm).lower()


def decode_b64_digest(algorithm: str, value: str) -> bytes:
    """Decode a base64 checksum value, checking it has the algorithm's digest size.

    Raises S3Error InvalidRequest when it does not.
    """
    alg = _check_algorithm(algorithm)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES[alg]:
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{alg.lower()} header is invalid.")
    return raw


def checksum_from_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The one ``x-amz-checksum-<alg>`` header of a request as (algorithm, base64 value), or None.

    ``headers`` has lower-case names. The value must be base64 of the algorithm's digest size
    (else InvalidRequest); more than one checksum header is an InvalidRequest too.
    """
    found = [(alg, headers[name]) for name, alg in _HEADER_TO_ALGORITHM.items() if name in headers]
    if not found:
        return None
    if len(found) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    alg, value = found[0]
    decode_b64_digest(alg, value)
    return alg, value.strip()


def object_checksum_from_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``x-amz-checksum-<alg>`` header of a CompleteMultipartUpload: the whole object's
    checksum, as (algorithm, value). A COMPOSITE value has the ``base64-N`` form SDKs send; a
    FULL_OBJECT one is plain base64. InvalidRequest when it is neither."""
    found = [(alg, headers[name]) for name, alg in _HEADER_TO_ALGORITHM.items() if name in headers]
    if not found:
        return None
    if len(found) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are "
                      "not allowed.")
    alg, value = found[0]
    value = value.strip()
    digest, dash, count = value.rpartition("-")
    if dash and (not count.isascii() or not count.isdigit() or not 1 <= int(count[:6]) <= 10000):
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{alg.lower()} header is invalid.")
    decode_b64_digest(alg, digest if dash else value)
    return alg, value


def combine_crc(algorithm: str, crc_a: bytes, crc_b: bytes, len_b: int) -> bytes:
    """The CRC of ``A || B`` from CRC(A), CRC(B) and len(B) (big-endian digests).

    Used for FULL_OBJECT multipart checksums; only CRC32, CRC32C and CRC64NVME combine.
    """
    alg = _check_algorithm(algorithm)
    func = _COMBINE_FUNCS.get(alg)
    if func is None:
        raise S3Error("InvalidRequest", f"The {alg} algorithm does not support full-object checksums.")
    size = DIGEST_SIZES[alg]
    if len(crc_a) != size or len(crc_b) != size:
        raise ValueError(f"{alg} digests are {size} bytes")
    combined = func(int.from_bytes(crc_a, "big"), int.from_bytes(crc_b, "big"), len_b)
    return int(combined).to_bytes(size, "big")


def composite(algorithm: str, part_digests: list[bytes]) -> str:
    """A COMPOSITE multipart checksum: ``base64(hash(concat(part digests)))-N``."""
    checksum = Checksum(algorithm)
    for digest in part_digests:
        checksum.update(digest)
    return f"{checksum.b64()}-{len(part_digests)}"


def parse_content_md5(value: str) -> bytes:
    """The 16 raw bytes of a Content-MD5 header; InvalidDigest when it is not base64 of 16 bytes."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw
