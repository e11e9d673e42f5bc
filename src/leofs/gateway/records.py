"""What the gateway stores about S3 objects, in the storage engine's opaque ``meta`` and data.

Which record lives under which key (the namespaces and key layout) is ``leofs.gateway.keys``.
"""

from __future__ import annotations

import msgspec


class Blob(msgspec.Struct, array_like=True, frozen=True):
    """A body stored as chunks: ``count`` chunks of ``chunk_size`` bytes (the last may be shorter)."""

    blob_id: str
    size: int
    chunk_size: int
    count: int
    md5: str  # hex MD5 of the whole blob
    checksum: str | None = None  # base64 of the part's flexible checksum (multipart)
    checksum_algorithm: str | None = None
    last_modified: int = 0  # microseconds


class Manifest(msgspec.Struct, array_like=True, frozen=True):
    """The data of a large or multipart object: its blobs in order (one per part)."""

    blobs: list[Blob]


class ObjectMeta(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything S3 returns about an object besides its bytes."""

    size: int
    etag: str  # without quotes; "<md5>-<N>" for multipart objects
    owner: str
    content_type: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    user_meta: dict[str, str] = msgspec.field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_value: str | None = None
    checksum_type: str | None = None  # FULL_OBJECT | COMPOSITE
    acl: str = "private"
    grants: list[tuple[str, str, str]] | None = None  # (grantee_type, grantee, permission)
    parts_count: int = 0
    storage_class: str = "STANDARD"
    generation: float = 0.0  # the bucket's creation time when written (0: written before it was recorded)
    tags: list[tuple[str, str]] | None = None  # the object's tag set (object tagging), in the order given
    # versioning (leofs.gateway.versions): the version's sort id, the suffix of its NS_VERSION key
    # (None: written while the bucket was never versioned: the "null" version, kept only in NS_OBJECT)
    version_id: str | None = None
    null_version: bool = False  # written while versioning was suspended: its id is "null"
    delete_marker: bool = False


class UploadMeta(msgspec.Struct, array_like=True, omit_defaults=True):
    """A multipart upload: the metadata the completed object will get.

    ``state`` is "open", then "completing" once a Complete chose its parts (``numbers``, ``blobs``;
    ``meta`` is then the object's final metadata and ``base`` the clock of the object version it
    replaces, 0 for none), and "completed" in its NS_DONE record."""

    upload_id: str
    initiated: int  # microseconds
    meta: ObjectMeta
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    state: str = "open"
    numbers: list[int] | None = None
    blobs: list[Blob] | None = None
    base: int = 0


class Fence(msgspec.Struct, array_like=True, omit_defaults=True):
    """Deleted bucket generations (a generation is the bucket's ``created`` time): the last few
    deleted (compared for equality, so a manager clock that stepped back cannot fence a new
    bucket), and the one being deleted by a DeleteBucket in progress since ``started`` (µs)."""

    deleted: list[float] = msgspec.field(default_factory=list)
    deleting: float = 0.0
    started: int = 0


meta_encoder = msgspec.msgpack.Encoder()
object_meta_decoder = msgspec.msgpack.Decoder(ObjectMeta)
blob_decoder = msgspec.msgpack.Decoder(Blob)
manifest_decoder = msgspec.msgpack.Decoder(Manifest)
upload_decoder = msgspec.msgpack.Decoder(UploadMeta)
fence_decoder = msgspec.msgpack.Decoder(Fence)
