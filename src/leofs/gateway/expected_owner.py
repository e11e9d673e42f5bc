"""``x-amz-expected-bucket-owner`` (and ``x-amz-source-expected-bucket-owner`` of a copy): a
request that names the account it expects to own the bucket is refused, 403 AccessDenied, when
another one does, so a client never writes into or reads from a bucket that changed hands."""

from __future__ import annotations

from leofs.accounts import Bucket
from leofs.gateway.context import S3Request, Services
from leofs.gateway.owners import canonical_id
from leofs.s3.errors import S3Error

EXPECTED_OWNER = "x-amz-expected-bucket-owner"
SOURCE_EXPECTED_OWNER = "x-amz-source-expected-bucket-owner"


def check_expected_owner(gw: Services, req: S3Request) -> None:
    """AccessDenied when the request's bucket is not owned by the canonical id it expects."""
    expected = req.headers.get(EXPECTED_OWNER)
    if expected is not None and req.bucket_record is not None:
        check_owner(gw, req.bucket_record, expected)


def check_owner(gw: Services, bucket: Bucket, expected: str | None) -> None:
    """AccessDenied when ``expected`` (a canonical id) is given and is not ``bucket``'s owner."""
    if expected is not None and expected.strip().lower() != canonical_id(gw, bucket.owner):
        raise S3Error("AccessDenied")
