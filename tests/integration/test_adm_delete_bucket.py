"""`leofs adm delete-bucket` takes S3 DeleteBucket's fenced path: a write in flight when the
operator deletes the bucket is never acknowledged into it (embedded: the admin API calls the
gateway; cluster: the manager forwards to a gateway's admin listener)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.held import HeldPut
from tests.support.servers import CLUSTER_SECRET, ROOT_ACCESS_KEY


def adm(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("size", [200_000, 7 * 1024 * 1024], ids=["inline", "chunked"])
def test_put_in_flight_does_not_survive_adm_delete_bucket(server: Any, s3: Any, bucket: str, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    held = HeldPut(server, f"/{bucket}/alice.txt", body)  # Alice's PUT is streaming ...
    deleted = adm(server, "delete-bucket", bucket, ROOT_ACCESS_KEY)  # ... when the operator deletes the bucket
    assert deleted.returncode == 0, deleted.stderr
    s3.create_bucket(Bucket=bucket)  # and it is created again before her last byte arrives
    held.release()
    status, raw = held.response()
    assert status == 404 and b"<Code>NoSuchBucket</Code>" in raw, raw[:400]
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="alice.txt")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    s3.delete_bucket(Bucket=bucket)  # nothing of hers keeps the new bucket


def test_adm_delete_bucket_refuses_a_bucket_with_objects(server: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="kept", Body=b"data")
    refused = adm(server, "delete-bucket", bucket, ROOT_ACCESS_KEY)
    assert refused.returncode != 0 and "not empty" in refused.stderr
    s3.put_object(Bucket=bucket, Key="after", Body=b"the fence is lifted again")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["after", "kept"]
