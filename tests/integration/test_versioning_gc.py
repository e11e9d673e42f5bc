"""The orphan collector (``leofs adm gc``) counts the chunks of every version as referenced: old
versions of a versioned bucket, which no current record names, survive it whole."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import make_client
from tests.integration.test_gc_grace import adm
from tests.support.servers import LeofsServer

MiB = 1024 * 1024


def test_gc_keeps_the_chunks_of_old_versions(tmp_path: Path) -> None:
    # a body deadline of 1 s: gc's grace floor is 2 s, so the chunks are soon old enough to collect
    server = LeofsServer(tmp_path / "data", extra_args=["--workers", "1", "--body-deadline", "1"])
    server.start()
    try:
        s3 = make_client(server.endpoint)
        s3.create_bucket(Bucket="vgc")
        s3.put_bucket_versioning(Bucket="vgc", VersioningConfiguration={"Status": "Enabled"})
        bodies = [bytes([65 + n]) * (6 * MiB) for n in range(2)]  # chunked
        ids = [s3.put_object(Bucket="vgc", Key="big", Body=body)["VersionId"] for body in bodies]
        s3.delete_object(Bucket="vgc", Key="big")  # no current record names any of them now
        report = adm(server, "gc", "--grace", "0")
        while report["kept_young"]:  # until every chunk is past the floor (bounded: 2 s)
            report = adm(server, "gc", "--grace", "0")
        assert report["scanned"] >= 4 and report["deleted"] == 0, report
        for version_id, body in zip(ids, bodies, strict=True):
            assert s3.get_object(Bucket="vgc", Key="big", VersionId=version_id)["Body"].read() == body
    finally:
        server.stop()
