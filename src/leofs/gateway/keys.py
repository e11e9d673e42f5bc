"""The S3 key layout: which namespace of the storage engine holds which record, under which key.

The engine gives namespaces (``ns``) no meaning; this module is the one place that does. All keys
of a bucket's objects start with :func:`bucket_prefix`:

- NS_OBJECT ``bucket/key``: the object. Data = the body (small objects) or an encoded
  ``Manifest`` (large and multipart objects, ``cnumber`` > 0). Meta = ``ObjectMeta``
  (``leofs.gateway.records``).
- NS_CHUNK ``bucket/key\\n<blob id>\\n<i>``: chunk ``i`` (1-based) of a blob. A blob id is unique
  per write, so a new write never overwrites chunks an older version still points at.
- NS_UPLOAD ``bucket/key\\n<upload id>``: an open (or completing) multipart upload. Meta =
  ``UploadMeta``. Every change of the upload (a part stored, Complete, Abort) rewrites or
  deletes it with a compare-and-set on its clock: that serialises the operations on one upload.
- NS_PART ``bucket/key\\n<upload id>\\n<part number, 5 digits>``: an uploaded part. Meta = ``Blob``.
- NS_DONE ``bucket/key\\n<upload id>``: a completed upload's result (UploadMeta, state
  ``completed``), so that a repeated Complete answers the same; removed by the upload expiry.
- NS_FENCE ``bucket``: the bucket generations deleted or being deleted (``Fence``), which
  writes in flight check after their record landed (``leofs.gateway.fence``).
- NS_VERSION ``bucket/key\n<version sort id>``: one version (or delete marker) of an object in a
  versioned bucket, with the same data and meta as its NS_OBJECT record. Sort ids invert time, so
  a key's versions sort newest first (``leofs.gateway.versions``).
"""

from __future__ import annotations

from typing import Final

NS_OBJECT: Final = 0
NS_CHUNK: Final = 1
NS_UPLOAD: Final = 2
NS_PART: Final = 3
NS_DONE: Final = 4
NS_FENCE: Final = 5
NS_VERSION: Final = 6


def bucket_prefix(bucket: str) -> bytes:
    """The prefix of every object, chunk, upload and part key of ``bucket``."""
    return f"{bucket}/".encode()


def object_key(bucket: str, key: str) -> bytes:
    """The engine key of an S3 object."""
    return f"{bucket}/{key}".encode()


def chunk_key(bucket: str, key: str, blob_id: str, index: int) -> bytes:
    """The engine key of chunk ``index`` (1-based) of a blob of an object."""
    return f"{bucket}/{key}\n{blob_id}\n{index}".encode()


def upload_key(bucket: str, key: str, upload_id: str) -> bytes:
    return f"{bucket}/{key}\n{upload_id}".encode()


def fence_key(bucket: str) -> bytes:
    return bucket.encode()


def done_key(bucket: str, key: str, upload_id: str) -> bytes:
    return f"{bucket}/{key}\n{upload_id}".encode()


def part_key(bucket: str, key: str, upload_id: str, part_number: int) -> bytes:
    return f"{bucket}/{key}\n{upload_id}\n{part_number:05d}".encode()


def version_key(bucket: str, key: str, sort_id: str) -> bytes:
    """The engine key of one version of an object (NS_VERSION)."""
    return f"{bucket}/{key}\n{sort_id}".encode()
