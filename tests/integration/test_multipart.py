"""Multipart uploads through boto3 against a real server: checksums, validation, ETags, part reads,
uneven ranges, abort safety, pagination, copy and chunk cleanup (issue 4)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from awscrt import checksums as crt
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer

MiB = 1024 * 1024


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def _raw_digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return crt.crc32c(data).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crt.crc64nvme(data).to_bytes(8, "big")
    if algorithm == "SHA256":
        return hashlib.sha256(data).digest()
    if algorithm == "SHA1":
        return hashlib.sha1(data).digest()
    raise AssertionError(algorithm)


def b64_digest(algorithm: str, data: bytes) -> str:
    return base64.b64encode(_raw_digest(algorithm, data)).decode()


def composite_checksum(algorithm: str, parts: list[bytes]) -> str:
    inner = b"".join(_raw_digest(algorithm, p) for p in parts)
    return f"{b64_digest(algorithm, inner)}-{len(parts)}"


def error_code(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def upload_parts(s3: Any, bucket: str, key: str, parts: list[bytes], **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        assert resp["ETag"] == f'"{md5_hex(data)}"'
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    return upload_id, done


def complete(s3: Any, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], **kw: Any) -> Any:
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kw)


def active_bytes(server: Any) -> int:
    total = 0
    for node in server.node_names:
        out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret",
                              CLUSTER_SECRET, "--json", "du", node], capture_output=True, check=True, timeout=60).stdout
        total += sum(int(c["active_bytes"]) for c in json.loads(out))
    return total


def wait_active_below(server: LeofsServer, limit: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        now = active_bytes(server)
        if now < limit or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


# -- checksums ------------------------------------------------------------------------------------

CHECKSUM_CASES = [
    ("CRC32", "COMPOSITE"),
    ("CRC32", "FULL_OBJECT"),
    ("CRC32C", "COMPOSITE"),
    ("CRC32C", "FULL_OBJECT"),
    ("SHA256", "COMPOSITE"),
    ("SHA1", "COMPOSITE"),
    ("CRC64NVME", "FULL_OBJECT"),
]


@pytest.mark.parametrize(("algorithm", "ctype"), CHECKSUM_CASES)
def test_checksum_algorithms_and_types(s3: Any, bucket: str, algorithm: str, ctype: str) -> None:
    parts = [blob(5 * MiB, 1), blob(5 * MiB + 3, 2), blob(4097, 3)]
    key = f"ck-{algorithm}-{ctype}"
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType=ctype)
    assert created.get("ChecksumAlgorithm") == algorithm
    assert created.get("ChecksumType") == ctype
    upload_id = created["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
                              ChecksumAlgorithm=algorithm)
        assert resp[f"Checksum{algorithm}"] == b64_digest(algorithm, data)
        done.append({"PartNumber": number, "ETag": resp["ETag"], f"Checksum{algorithm}": resp[f"Checksum{algorithm}"]})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [p[f"Checksum{algorithm}"] for p in listed["Parts"]] == [b64_digest(algorithm, p) for p in parts]
    whole = b"".join(parts)
    expected = b64_digest(algorithm, whole) if ctype == "FULL_OBJECT" else composite_checksum(algorithm, parts)
    result = complete(s3, bucket, key, upload_id, done)
    assert result[f"Checksum{algorithm}"] == expected
    assert result["ETag"] == f'"{multipart_etag(parts)}"'
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ChecksumType"] == ctype
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == whole
    # no checksum on a ranged read
    ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-20", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == whole[10:21]
    assert f"Checksum{algorithm}" not in ranged


def test_wrong_part_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="bad", ChecksumAlgorithm="CRC32")["UploadId"]
    data = blob(100_000, 4)
    wrong = b64_digest("CRC32", data + b"x")
    code, status = error_code(lambda: s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=1,
                                                     Body=data, ChecksumCRC32=wrong))
    assert (code, status) == ("BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key="bad", UploadId=upload_id).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key="bad", UploadId=upload_id)


def test_part_content_md5(bucket: str, server: LeofsServer) -> None:
    s3 = make_client(server.endpoint, request_checksum_calculation="when_required")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="md5")["UploadId"]
    data = blob(6 * MiB, 5)
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    bad = base64.b64encode(hashlib.md5(data[:-1]).digest()).decode()
    code, status = error_code(lambda: s3.upload_part(Bucket=bucket, Key="md5", UploadId=upload_id, PartNumber=1,
                                                     Body=data, ContentMD5=bad))
    assert (code, status) == ("BadDigest", 400)
    resp = s3.upload_part(Bucket=bucket, Key="md5", UploadId=upload_id, PartNumber=1, Body=data, ContentMD5=good)
    assert resp["ETag"] == f'"{md5_hex(data)}"'
    complete(s3, bucket, "md5", upload_id, [{"PartNumber": 1, "ETag": resp["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == data


# -- Complete validation --------------------------------------------------------------------------

def test_complete_validation(s3: Any, bucket: str) -> None:
    parts = [blob(5 * MiB, 10), blob(1000, 11), blob(2000, 12)]
    upload_id, done = upload_parts(s3, bucket, "v", parts)

    def attempt(ps: list[dict[str, Any]]) -> tuple[str, int]:
        return error_code(lambda: complete(s3, bucket, "v", upload_id, ps))

    assert attempt([done[1], done[0]]) == ("InvalidPartOrder", 400)
    assert attempt([done[0], done[0]]) == ("InvalidPartOrder", 400)
    assert attempt([done[0], {"PartNumber": 2, "ETag": f'"{md5_hex(b"other")}"'}]) == ("InvalidPart", 400)
    assert attempt([done[0], {"PartNumber": 4, "ETag": done[1]["ETag"]}]) == ("InvalidPart", 400)
    # part 2 (1000 bytes) is not the last one
    assert attempt(done) == ("EntityTooSmall", 400)
    # nothing was created by the failed attempts, and the upload is still open
    assert error_code(lambda: s3.head_object(Bucket=bucket, Key="v"))[1] == 404
    assert len(s3.list_parts(Bucket=bucket, Key="v", UploadId=upload_id)["Parts"]) == 3
    # a subset is fine: parts 1 and 3; the unused part is dropped
    result = complete(s3, bucket, "v", upload_id, [done[0], done[2]])
    assert result["ETag"] == f'"{multipart_etag([parts[0], parts[2]])}"'
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == parts[0] + parts[2]


def test_complete_if_none_match(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="exists", Body=b"old")
    data = blob(1234, 13)
    upload_id, done = upload_parts(s3, bucket, "exists", [data])
    assert error_code(lambda: complete(s3, bucket, "exists", upload_id, done, IfNoneMatch="*")) == (
        "PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == b"old"
    # If-Match on the current ETag succeeds
    old_etag = s3.head_object(Bucket=bucket, Key="exists")["ETag"]
    assert error_code(lambda: complete(s3, bucket, "exists", upload_id, done, IfMatch='"0123"')) == (
        "PreconditionFailed", 412)
    complete(s3, bucket, "exists", upload_id, done, IfMatch=old_etag)
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == data
    # If-None-Match on a new key succeeds
    upload_id, done = upload_parts(s3, bucket, "fresh", [data])
    complete(s3, bucket, "fresh", upload_id, done, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == data


# -- ETags, part reads, uneven ranges -------------------------------------------------------------

UNEVEN = [5 * MiB + 7, 6 * MiB, 5 * MiB + 1, 3]


@pytest.fixture(scope="module")
def uneven(server: LeofsServer) -> tuple[str, str, list[bytes], str]:
    """An object of four uneven parts (5 MiB+7, 6 MiB, 5 MiB+1, 3 bytes): bucket, key, parts, ETag."""
    s3 = make_client(server.endpoint)
    bucket = "mp-uneven"
    s3.create_bucket(Bucket=bucket)
    parts = [blob(size, 100 + i) for i, size in enumerate(UNEVEN)]
    upload_id, done = upload_parts(s3, bucket, "dir/uneven.bin", parts)
    result = complete(s3, bucket, "dir/uneven.bin", upload_id, done)
    return bucket, "dir/uneven.bin", parts, result["ETag"]


def test_etag_same_everywhere(s3: Any, uneven: tuple[str, str, list[bytes], str]) -> None:
    bucket, key, parts, etag = uneven
    assert etag == f'"{multipart_etag(parts)}"'
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ETag"] == etag
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"][0]["ETag"] == etag
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["ETag"] == etag
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == sum(UNEVEN)
    attrs = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ETag", "ObjectParts", "ObjectSize"])
    assert attrs["ETag"] == etag.strip('"')
    assert attrs["ObjectSize"] == sum(UNEVEN)
    assert attrs["ObjectParts"]["TotalPartsCount"] == 4


def test_get_part_number(s3: Any, uneven: tuple[str, str, list[bytes], str]) -> None:
    bucket, key, parts, etag = uneven
    total = sum(UNEVEN)
    start = 0
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
        assert got["PartsCount"] == 4
        assert got["ContentLength"] == len(data)
        assert got["ETag"] == etag
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
        assert head["ContentLength"] == len(data)
        assert head["PartsCount"] == 4
        start += len(data)
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key=key, PartNumber=5))[1] == 416


def test_ranges_across_uneven_parts(s3: Any, uneven: tuple[str, str, list[bytes], str]) -> None:
    bucket, key, parts, _ = uneven
    whole = b"".join(parts)
    total = len(whole)
    bounds = [0]
    for size in UNEVEN:
        bounds.append(bounds[-1] + size)
    ranges = [(0, 0), (total - 1, total - 1), (total - 4, total - 1), (5 * MiB - 1, 5 * MiB + 8),
              (3 * MiB, 13 * MiB), (0, total - 1)]
    for b in bounds[1:-1]:
        ranges += [(b - 1, b), (b - 1, b + 1), (b, b), (b - 5, b + 5 * MiB)]
    rng = random.Random(7)
    for _ in range(15):
        lo = rng.randrange(total)
        ranges.append((lo, rng.randrange(lo, total)))
    for lo, hi in ranges:
        hi = min(hi, total - 1)
        got = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi}")
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{total}"
        assert got["Body"].read() == whole[lo : hi + 1], (lo, hi)
    # suffix and open-ended ranges
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")["Body"].read() == whole[-5:]
    lo = bounds[2] - 2
    assert s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-")["Body"].read() == whole[lo:]
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={total}-"))[1] == 416


def test_copy_object_of_multipart(s3: Any, uneven: tuple[str, str, list[bytes], str], bucket: str) -> None:
    src_bucket, key, parts, _ = uneven
    res = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": src_bucket, "Key": key})
    copied_etag = res["CopyObjectResult"]["ETag"]
    got = s3.get_object(Bucket=bucket, Key="copy")
    assert got["ETag"] == copied_etag
    assert got["Body"].read() == b"".join(parts)
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == copied_etag


def test_upload_part_copy(s3: Any, uneven: tuple[str, str, list[bytes], str], bucket: str) -> None:
    src_bucket, key, parts, etag = uneven
    whole = b"".join(parts)
    source = {"Bucket": src_bucket, "Key": key}
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pc")["UploadId"]
    # copy-source conditions
    assert error_code(lambda: s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=1,
                                                  CopySource=source, CopySourceIfMatch='"nope"'))[1] == 412
    assert error_code(lambda: s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=1,
                                                  CopySource=source, CopySourceIfNoneMatch=etag))[1] == 412
    # an invalid range
    assert error_code(lambda: s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=1,
                                                  CopySource=source,
                                                  CopySourceRange=f"bytes=0-{len(whole)}"))[1] == 400
    lo1, hi1 = 5 * MiB - 3, 10 * MiB + 10  # crosses the first part boundary
    r1 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=1, CopySource=source,
                             CopySourceRange=f"bytes={lo1}-{hi1}", CopySourceIfMatch=etag)
    assert r1["CopyPartResult"]["ETag"] == f'"{md5_hex(whole[lo1 : hi1 + 1])}"'
    r2 = s3.upload_part_copy(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=2, CopySource=source,
                             CopySourceRange=f"bytes={len(whole) - 10}-{len(whole) - 1}")
    r3 = s3.upload_part(Bucket=bucket, Key="pc", UploadId=upload_id, PartNumber=3, Body=b"tail")
    done = [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]
    # part 2 (10 bytes) is too small unless it is the last
    with_tail = [*done, {"PartNumber": 3, "ETag": r3["ETag"]}]
    assert error_code(lambda: complete(s3, bucket, "pc", upload_id, with_tail))[0] == "EntityTooSmall"
    complete(s3, bucket, "pc", upload_id, done)
    assert s3.get_object(Bucket=bucket, Key="pc")["Body"].read() == whole[lo1 : hi1 + 1] + whole[-10:]
    # a whole-object part copy of a multipart source
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pc-all")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="pc-all", UploadId=upload_id, PartNumber=1, CopySource=source)
    complete(s3, bucket, "pc-all", upload_id, [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="pc-all")["Body"].read() == whole


# -- abort, replace, NoSuchUpload -----------------------------------------------------------------

def test_abort_never_touches_existing_object(s3: Any, bucket: str, server: Any) -> None:
    small, large = b"small existing", blob(12 * MiB, 20)
    s3.put_object(Bucket=bucket, Key="keep-small", Body=small)
    s3.put_object(Bucket=bucket, Key="keep-large", Body=large)
    for key in ("keep-small", "keep-large"):
        upload_id, _ = upload_parts(s3, bucket, key, [blob(5 * MiB, 21), blob(100, 22)])
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    # a second upload completed over a multipart object, then an abort of a third one
    parts = [blob(5 * MiB, 23), blob(10, 24)]
    upload_id, done = upload_parts(s3, bucket, "keep-mp", parts)
    complete(s3, bucket, "keep-mp", upload_id, done)
    other, _ = upload_parts(s3, bucket, "keep-mp", [blob(6 * MiB, 25)])
    before = active_bytes(server)
    s3.abort_multipart_upload(Bucket=bucket, Key="keep-mp", UploadId=other)
    # the aborted part's chunks are freed before the objects are checked
    assert wait_active_below(server, before - 6 * MiB + 1) <= before - 6 * MiB
    assert s3.get_object(Bucket=bucket, Key="keep-small")["Body"].read() == small
    assert s3.get_object(Bucket=bucket, Key="keep-large")["Body"].read() == large
    assert s3.get_object(Bucket=bucket, Key="keep-mp")["Body"].read() == b"".join(parts)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_reupload_part_replaces_it(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="re")["UploadId"]
    first, second = blob(5 * MiB, 30), blob(5 * MiB + 11, 31)
    r1 = s3.upload_part(Bucket=bucket, Key="re", UploadId=upload_id, PartNumber=1, Body=first)
    r2 = s3.upload_part(Bucket=bucket, Key="re", UploadId=upload_id, PartNumber=1, Body=second)
    r3 = s3.upload_part(Bucket=bucket, Key="re", UploadId=upload_id, PartNumber=2, Body=b"end")
    listed = s3.list_parts(Bucket=bucket, Key="re", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, r2["ETag"], len(second)),
                                                                      (2, r3["ETag"], 3)]
    assert error_code(lambda: complete(s3, bucket, "re", upload_id, [{"PartNumber": 1, "ETag": r1["ETag"]}]))[0] \
        == "InvalidPart"
    complete(s3, bucket, "re", upload_id,
             [{"PartNumber": 1, "ETag": r2["ETag"]}, {"PartNumber": 2, "ETag": r3["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="re")["Body"].read() == second + b"end"


def test_no_such_upload_after_complete_and_abort(s3: Any, bucket: str) -> None:
    upload_id, done = upload_parts(s3, bucket, "gone", [b"abc"])
    etag = complete(s3, bucket, "gone", upload_id, done)["ETag"]
    # a repeated Complete with the same parts answers as the first did (S3 is idempotent here)
    assert complete(s3, bucket, "gone", upload_id, done)["ETag"] == etag
    aborted, _ = upload_parts(s3, bucket, "gone2", [b"abc"])
    s3.abort_multipart_upload(Bucket=bucket, Key="gone2", UploadId=aborted)
    for key, uid in (("gone", upload_id), ("gone2", aborted), ("gone", "0" * 32)):
        calls: list[Callable[[], Any]] = [
            lambda k=key, u=uid: s3.upload_part(Bucket=bucket, Key=k, UploadId=u, PartNumber=1, Body=b"x"),
            lambda k=key, u=uid: s3.list_parts(Bucket=bucket, Key=k, UploadId=u),
            *([] if uid == upload_id else [lambda k=key, u=uid: complete(s3, bucket, k, u, done)]),
            lambda k=key, u=uid: s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=u),
        ]
        for call in calls:
            assert error_code(call) == ("NoSuchUpload", 404)
    assert s3.get_object(Bucket=bucket, Key="gone")["Body"].read() == b"abc"


def test_upload_part_number_bounds(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pn")["UploadId"]
    for number in (0, 10001):
        assert error_code(lambda n=number: s3.upload_part(Bucket=bucket, Key="pn", UploadId=upload_id, PartNumber=n,
                                                          Body=b"x"))[1] == 400
    s3.upload_part(Bucket=bucket, Key="pn", UploadId=upload_id, PartNumber=10000, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="pn", UploadId=upload_id)


# -- listing --------------------------------------------------------------------------------------

def test_list_parts_pagination(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="lp")["UploadId"]
    etags = {}
    for number in (1, 2, 3, 5, 8, 13, 21):
        etags[number] = s3.upload_part(Bucket=bucket, Key="lp", UploadId=upload_id, PartNumber=number,
                                       Body=str(number).encode())["ETag"]
    seen: list[int] = []
    marker = 0
    pages = 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="lp", UploadId=upload_id, MaxParts=3, PartNumberMarker=marker)
        pages += 1
        assert page["MaxParts"] == 3
        numbers = [p["PartNumber"] for p in page["Parts"]]
        assert all(p["ETag"] == etags[p["PartNumber"]] for p in page["Parts"])
        seen += numbers
        if not page["IsTruncated"]:
            break
        assert len(numbers) == 3
        marker = page["NextPartNumberMarker"]
        assert marker == numbers[-1]
    assert seen == [1, 2, 3, 5, 8, 13, 21]
    assert pages == 3
    paginated = [p["PartNumber"] for page in s3.get_paginator("list_parts").paginate(
        Bucket=bucket, Key="lp", UploadId=upload_id, PaginationConfig={"PageSize": 2}) for p in page["Parts"]]
    assert paginated == seen
    s3.abort_multipart_upload(Bucket=bucket, Key="lp", UploadId=upload_id)


def test_list_multipart_uploads(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "a/x/3", "b/1", "b/1", "b/1", "c", "d/1"]
    uploads = [(key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]) for key in keys]
    expected = sorted(uploads)  # by key, then by upload id within a key (ids are random hex)

    def all_uploads(**kw: Any) -> list[tuple[str, str]]:
        resp = s3.list_multipart_uploads(Bucket=bucket, **kw)
        return [(u["Key"], u["UploadId"]) for u in resp.get("Uploads", [])]

    listed = all_uploads()
    assert sorted(listed) == expected
    assert [k for k, _ in listed] == sorted(k for k, _ in listed)
    # manual pagination with key-marker / upload-id-marker, two at a time
    seen: list[tuple[str, str]] = []
    kw: dict[str, Any] = {}
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **kw)
        assert page["MaxUploads"] == 2
        items = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        seen += items
        if not page["IsTruncated"]:
            break
        assert len(items) == 2
        assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == items[-1]
        kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert sorted(seen) == expected and len(seen) == len(expected)
    # key-marker alone skips every upload of that key
    assert sorted(all_uploads(KeyMarker="b/1")) == [u for u in expected if u[0] > "b/1"]
    # prefix
    assert sorted(all_uploads(Prefix="a/")) == [u for u in expected if u[0].startswith("a/")]
    # delimiter: common prefixes a/, b/, d/ and the key "c"
    resp = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["a/", "b/", "d/"]
    assert [u["Key"] for u in resp.get("Uploads", [])] == ["c"]
    resp = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", Prefix="a/")
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["a/x/"]
    assert [u["Key"] for u in resp.get("Uploads", [])] == ["a/1", "a/2"]
    paginated = [(u["Key"], u["UploadId"]) for page in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 3}) for u in page.get("Uploads", [])]
    assert sorted(paginated) == expected and len(paginated) == len(expected)
    # open uploads alone do not keep a bucket: DeleteBucket aborts them (as AWS does, issue 14)
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert all_uploads() == []
    s3.delete_bucket(Bucket=bucket)


# -- storage: chunks go away, failed uploads leave nothing ------------------------------------------

@pytest.fixture
def own_server(tmp_path: Any) -> Any:
    """A private server, so data-directory accounting is not disturbed by other tests (replaced
    chunks freed at once: no grace for reads in progress)."""
    srv = LeofsServer(tmp_path / "data", extra_args=["--free-grace", "0"])
    srv.start()
    yield srv
    srv.stop()


def test_a_copy_shares_no_chunks_with_its_source(own_server: LeofsServer) -> None:
    s3 = make_client(own_server.endpoint)
    s3.create_bucket(Bucket="copies")
    parts = [blob(size, 100 + i) for i, size in enumerate(UNEVEN)]
    upload_id, done = upload_parts(s3, "copies", "src", parts)
    complete(s3, "copies", "src", upload_id, done)
    s3.copy_object(Bucket="copies", Key="copy", CopySource={"Bucket": "copies", "Key": "src"})
    size = len(b"".join(parts))
    before = active_bytes(own_server)
    s3.delete_object(Bucket="copies", Key="src")
    # the deleted source's chunks go in the background (no grace here): once they are gone, the copy
    # must still read whole
    assert wait_active_below(own_server, before - size + 1) <= before - size
    assert s3.get_object(Bucket="copies", Key="copy")["Body"].read() == b"".join(parts)


def test_delete_removes_chunks(own_server: LeofsServer) -> None:
    s3 = make_client(own_server.endpoint)
    s3.create_bucket(Bucket="chunks")
    base = active_bytes(own_server)
    big = blob(23 * MiB, 40)
    s3.put_object(Bucket="chunks", Key="big", Body=big)
    parts = [blob(5 * MiB, 41), blob(7 * MiB, 42)]
    upload_id, done = upload_parts(s3, "chunks", "mp", parts)
    complete(s3, "chunks", "mp", upload_id, done)
    # an overwrite frees the replaced version's chunks
    s3.put_object(Bucket="chunks", Key="big", Body=big[: 8 * MiB])
    with_data = active_bytes(own_server)
    assert with_data >= base + 20 * MiB
    assert wait_active_below(own_server, base + 21 * MiB) < base + 21 * MiB
    s3.delete_object(Bucket="chunks", Key="big")
    s3.delete_objects(Bucket="chunks", Delete={"Objects": [{"Key": "mp"}]})
    assert wait_active_below(own_server, base + MiB) < base + MiB
    # an aborted upload frees its parts
    upload_id, _ = upload_parts(s3, "chunks", "ab", [blob(6 * MiB, 43)])
    assert active_bytes(own_server) >= base + 6 * MiB
    s3.abort_multipart_upload(Bucket="chunks", Key="ab", UploadId=upload_id)
    assert wait_active_below(own_server, base + MiB) < base + MiB


def _raw_put(server: LeofsServer, path: str, headers: dict[str, str], body_parts: list[bytes]) -> bytes:
    """Send a PUT with botocore's SigV4 headers, then exactly ``body_parts`` and close; the response if any."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    lines = [f"PUT {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    try:
        for part in body_parts:
            sock.sendall(part)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    except OSError:
        out = b""
    finally:
        sock.close()
    return out


def _signed_headers(server: LeofsServer, bucket: str, key: str, length: int) -> dict[str, str]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY

    req = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/{key}",
                     headers={"Content-Length": str(length), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY), "s3", "us-east-1").add_auth(req)
    headers = {k: v for k, v in req.headers.items()}
    headers["Host"] = f"{server.host}:{server.port}"
    return headers


def test_failed_large_put_leaves_nothing(own_server: LeofsServer) -> None:
    s3 = make_client(own_server.endpoint, request_checksum_calculation="when_required")
    s3.create_bucket(Bucket="fail")
    old = blob(7 * MiB, 50)
    s3.put_object(Bucket="fail", Key="old", Body=old)
    base = active_bytes(own_server)
    data = blob(17 * MiB, 51)
    wrong_md5 = base64.b64encode(hashlib.md5(data[1:]).digest()).decode()
    for key in ("new", "old"):
        assert error_code(lambda k=key: s3.put_object(Bucket="fail", Key=k, Body=data, ContentMD5=wrong_md5)) == (
            "BadDigest", 400)
        assert error_code(lambda k=key: s3.put_object(Bucket="fail", Key=k, Body=data,
                                                      ChecksumCRC32=b64_digest("CRC32", b"x"))) == ("BadDigest", 400)
    # truncated: the connection closes after 12 of 17 MiB
    headers = _signed_headers(own_server, "fail", "trunc", len(data))
    _raw_put(own_server, "/fail/trunc", headers, [data[: 12 * MiB]])
    headers = _signed_headers(own_server, "fail", "old", len(data))
    _raw_put(own_server, "/fail/old", headers, [data[: 12 * MiB]])
    assert own_server.ping()
    for key in ("new", "trunc"):
        assert error_code(lambda k=key: s3.head_object(Bucket="fail", Key=k))[1] == 404
    assert s3.get_object(Bucket="fail", Key="old")["Body"].read() == old
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="fail")["Contents"]] == ["old"]
    assert wait_active_below(own_server, base + MiB) < base + MiB
