"""Multipart operations racing on one upload: overlapping Completes, Abort against Complete, a part
re-uploaded while Complete runs. Whatever the interleaving, a Complete that answered 200 leaves an
object that reads back whole (no blob it uses is freed), and an Abort and a Complete never both win.

The servers here free replaced chunks at once (``--free-grace 0``): the grace that protects reads
in progress must not be what keeps a completed object readable."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.integration.held import HeldPut, release_together
from tests.support.cluster import LeofsCluster
from tests.support.servers import LeofsServer

ROUNDS = 4


@pytest.fixture(scope="module", params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def nograce(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "embedded":
        srv = LeofsServer(tmp_path_factory.mktemp("mpraces") / "data", extra_args=["--free-grace", "0"])
        srv.start()
        yield srv
        srv.stop()
        return
    cluster = LeofsCluster(tmp_path_factory.mktemp("mpraces-cluster"), gateway_args=("--free-grace", "0"))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def s3(nograce: Any) -> Any:
    return make_client(nograce.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"mprace-{os.getpid()}-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=name)
    return name


def _complete_xml(parts: list[tuple[int, str]]) -> bytes:
    items = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts)
    return f"<CompleteMultipartUpload>{items}</CompleteMultipartUpload>".encode()


def _upload_one_part(s3: Any, bucket: str, key: str, data: bytes) -> tuple[str, str]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data)["ETag"]
    return upload_id, etag


def _etag_of(raw: bytes) -> str:
    found = re.search(rb"<ETag>(.*?)</ETag>", raw)
    assert found is not None, raw[:500]
    return found.group(1).decode().replace("&quot;", '"')


def _reads_back(s3: Any, bucket: str, key: str, data: bytes) -> None:
    """The object reads back whole, also after the frees of the operations just done had time to run."""
    deadline = time.monotonic() + 1.5
    while True:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)


def test_overlapping_completes_both_answer_the_same(nograce: Any, s3: Any, bucket: str) -> None:
    for round_ in range(ROUNDS):
        key, data = f"twice-{round_}", os.urandom(300_000)
        upload_id, etag = _upload_one_part(s3, bucket, key, data)
        body = _complete_xml([(1, etag)])
        held = [HeldPut(nograce, f"/{bucket}/{key}?uploadId={upload_id}", body, method="POST") for _ in range(2)]
        results = release_together(held)
        assert [status for status, _ in results] == [200, 200], [raw[-600:] for _, raw in results]
        assert _etag_of(results[0][1]) == _etag_of(results[1][1])
        _reads_back(s3, bucket, key, data)
        # and once more, long after: the same answer (S3's idempotent Complete)
        again = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        assert again["ETag"] == _etag_of(results[0][1])
        _reads_back(s3, bucket, key, data)


def test_abort_racing_complete(nograce: Any, s3: Any, bucket: str) -> None:
    for round_ in range(ROUNDS):
        key, data = f"abort-{round_}", os.urandom(300_000)
        upload_id, etag = _upload_one_part(s3, bucket, key, data)
        path = f"/{bucket}/{key}?uploadId={upload_id}"
        held = [HeldPut(nograce, path, _complete_xml([(1, etag)]), method="POST"),
                HeldPut(nograce, path, method="DELETE")]
        (completed, raw), (aborted, _) = release_together(held)
        assert not (completed == 200 and aborted == 204), "both the Complete and the Abort succeeded"
        if completed == 200:
            _reads_back(s3, bucket, key, data)
        else:
            assert aborted == 204, raw[:400]


def test_part_reuploaded_while_complete_runs(nograce: Any, s3: Any, bucket: str) -> None:
    for round_ in range(ROUNDS):
        key, data, other = f"reup-{round_}", os.urandom(300_000), os.urandom(300_000)
        upload_id, etag = _upload_one_part(s3, bucket, key, data)
        held = [HeldPut(nograce, f"/{bucket}/{key}?uploadId={upload_id}", _complete_xml([(1, etag)]), method="POST"),
                HeldPut(nograce, f"/{bucket}/{key}?partNumber=1&uploadId={upload_id}", other)]
        (completed, raw), (reuploaded, raw_part) = release_together(held)
        assert not (completed == 200 and reuploaded == 200), (raw[:400], raw_part[:400])
        if completed == 200:
            _reads_back(s3, bucket, key, data)
        else:
            assert reuploaded == 200 and b"InvalidPart" in raw, raw[:400]
