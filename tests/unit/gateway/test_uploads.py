"""Upload records: the chosen parts of a completing upload never go into the needle's metadata."""

from __future__ import annotations

from leofs.gateway.records import Blob, ObjectMeta, UploadMeta, upload_decoder
from leofs.gateway.uploads import encode_record
from leofs.storage.needle import MAX_META


def test_an_open_upload_is_all_metadata() -> None:
    upload = UploadMeta("u" * 32, 1, ObjectMeta(size=0, etag="", owner="AKIA1"))
    data, meta = encode_record(upload)
    assert data == b"" and upload_decoder.decode(meta) == upload


def test_ten_thousand_chosen_parts_stay_out_of_the_metadata() -> None:
    part = 5 * 1024 * 1024
    blobs = [Blob(f"{i:016x}", part, part, 1, f"{i:032x}", last_modified=i) for i in range(10_000)]
    upload = UploadMeta("u" * 32, 1, ObjectMeta(size=0, etag="", owner="AKIA1"), state="completing",
                        numbers=list(range(1, 10_001)), blobs=blobs, base=7)
    data, meta = encode_record(upload)
    assert len(meta) < MAX_META  # a needle refuses more: Complete of a 1 GiB upload in 8 MiB parts failed
    assert upload_decoder.decode(data) == upload
    summary = upload_decoder.decode(meta)
    assert summary.blobs is None and summary.numbers is None and summary.state == "completing" and summary.base == 7
