"""Conditional writes racing each other: the compare-and-set is done where writes are serialised,
so of two conditional PUTs released at the same moment exactly one wins (embedded and cluster)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.integration.held import HeldPut, release_together


def _race(server: Any, bucket: str, key: str, headers: dict[str, str]) -> list[tuple[int, bytes, bytes]]:
    bodies = [f"writer {n} ".encode() * 200 for n in range(2)]
    held = [HeldPut(server, f"/{bucket}/{key}", body, headers=headers) for body in bodies]
    return [(status, raw, body) for (status, raw), body in zip(release_together(held), bodies, strict=True)]


def test_if_none_match_star_puts_released_together(server: Any, s3: Any, bucket: str) -> None:
    for round_ in range(4):
        key = f"new-{round_}"
        results = _race(server, bucket, key, {"If-None-Match": "*"})
        assert sorted(status for status, _, _ in results) == [200, 412], [raw[:300] for _, raw, _ in results]
        loser = next(raw for status, raw, _ in results if status == 412)
        assert b"<Code>PreconditionFailed</Code>" in loser
        winner = next(body for status, _, body in results if status == 200)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == winner


def test_if_match_puts_released_together(server: Any, s3: Any, bucket: str) -> None:
    for round_ in range(4):
        key = f"old-{round_}"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"original")["ETag"]
        results = _race(server, bucket, key, {"If-Match": etag})
        assert sorted(status for status, _, _ in results) == [200, 412], [raw[:300] for _, raw, _ in results]
        winner = next(body for status, _, body in results if status == 200)
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == winner
        assert got["ETag"] == f'"{hashlib.md5(winner).hexdigest()}"'


def test_if_none_match_completes_released_together(server: Any, s3: Any, bucket: str) -> None:
    """Two uploads of one new key, completed at the same moment with If-None-Match: *."""
    for round_ in range(3):
        key = f"mp-{round_}"
        held, contents = [], []
        for n in range(2):
            data = f"upload {n} ".encode() * 1000
            upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data)["ETag"]
            body = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
                    "</CompleteMultipartUpload>").encode()
            held.append(HeldPut(server, f"/{bucket}/{key}?uploadId={upload_id}", body, method="POST",
                                headers={"If-None-Match": "*"}))
            contents.append(data)
        results = release_together(held)
        assert sorted(status for status, _ in results) == [200, 412], [raw[:300] for _, raw in results]
        winner = contents[[status for status, _ in results].index(200)]
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == winner
