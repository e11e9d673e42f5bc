"""A write in flight when its bucket is deleted: it is never acknowledged into the deleted bucket,
and a bucket created again under the same name never sees it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.held import HeldPut


def _error(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


@pytest.mark.parametrize("size", [200_000, 7 * 1024 * 1024], ids=["inline", "chunked"])
def test_put_in_flight_does_not_survive_delete_bucket(server: Any, s3: Any, bucket: str, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    held = HeldPut(server, f"/{bucket}/alice.txt", body)  # Alice's PUT is streaming ...
    s3.delete_bucket(Bucket=bucket)  # ... when she deletes the (still empty) bucket
    held.release()
    status, raw = held.response()
    assert status == 404 and b"<Code>NoSuchBucket</Code>" in raw, raw[:400]
    # Bob creates a bucket of the same name: Alice's object is not in it, and he can delete it
    s3.create_bucket(Bucket=bucket)
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="alice.txt")) == "NoSuchKey"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    s3.delete_bucket(Bucket=bucket)


def test_create_multipart_upload_and_complete_after_delete_bucket(server: Any, s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"part")["ETag"]
    # an object keeps the bucket: DeleteBucket refuses, lifts its fence again and leaves the upload
    s3.put_object(Bucket=bucket, Key="keeper", Body=b"k")
    assert _error(lambda: s3.delete_bucket(Bucket=bucket)) == "BucketNotEmpty"
    s3.put_object(Bucket=bucket, Key="after", Body=b"still writable")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="mp")["ETag"] == done["ETag"]
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"still writable"
