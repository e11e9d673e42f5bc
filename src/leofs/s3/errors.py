"""S3 error codes, their HTTP statuses, and the exception that carries them.

Every failure the gateway reports to a client is an :class:`S3Error`; the server turns it into the
standard ``<Error>`` XML document (no body for HEAD). Codes and statuses follow the AWS S3 API
reference ("Error responses").
"""

from __future__ import annotations

from typing import Final, Literal

#: every error code the gateway may send; S3Error takes only these (mypy checks each raise), and
#: ERRORS gives each its status (tests/unit/s3/test_errors.py checks the two agree)
ErrorCode = Literal[
    "AccessDenied",
    "AccountProblem",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "BadDigest",
    "BucketAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "BucketNotEmpty",
    "ConditionalRequestConflict",
    "EntityTooLarge",
    "EntityTooSmall",
    "ExpiredToken",
    "IllegalLocationConstraintException",
    "IncompleteBody",
    "InsufficientStorage",
    "InternalError",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidBucketState",
    "InvalidChunkSizeError",
    "InvalidDigest",
    "InvalidEncryptionAlgorithmError",
    "InvalidLocationConstraint",
    "InvalidObjectState",
    "InvalidPart",
    "InvalidPartNumber",
    "InvalidPartOrder",
    "InvalidRange",
    "InvalidRequest",
    "InvalidStorageClass",
    "InvalidTag",
    "InvalidToken",
    "InvalidURI",
    "KeyTooLongError",
    "MalformedACLError",
    "MalformedXML",
    "MaxMessageLengthExceeded",
    "MetadataTooLarge",
    "MethodNotAllowed",
    "MissingContentLength",
    "MissingRequestBodyError",
    "MissingSecurityHeader",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchTagSet",
    "NoSuchUpload",
    "NoSuchVersion",
    "NotImplemented",
    "NotModified",
    "PreconditionFailed",
    "RequestTimeTooSkewed",
    "RequestTimeout",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "TooManyBuckets",
    "UnexpectedContent",
    "UnresolvableGrantByEmailAddress",
    "XAmzContentSHA256Mismatch",
]

#: code -> (HTTP status, default message)
ERRORS: Final[dict[ErrorCode, tuple[int, str]]] = {
    "AccessDenied": (403, "Access Denied"),
    "AccountProblem": (403, "There is a problem with your AWS account."),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Error parsing the X-Amz-Credential parameter."),
    "BadDigest": (400, "The Content-MD5 or checksum you specified did not match what we received."),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by all users "
        "of the system. Please select a different name and try again.",
    ),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size"),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (
        400,
        "The unspecified location constraint is incompatible for the region specific endpoint "
        "this request was sent to.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length header.",
    ),
    "InsufficientStorage": (507, "There is not enough free space on the storage node to store the object."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidEncryptionAlgorithmError": (400, "The encryption request you specified is not valid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidObjectState": (403, "The operation is not valid for the current state of the object."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part might not have been uploaded, "
        "or the specified entity tag might not have matched the part's entity tag.",
    ),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
    ),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedACLError": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
    ),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
    ),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request Body is empty."),
    "MissingSecurityHeader": (400, "Your request was missing a required header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchUpload": (
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
        "aborted or completed.",
    ),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented."),
    "NotModified": (304, "Not Modified"),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not hold."),
    "ConditionalRequestConflict": (409, "A conflicting operation occurred. Please retry."),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SlowDown": (503, "Please reduce your request rate."),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed."),
    "UnresolvableGrantByEmailAddress": (
        400,
        "The e-mail address you provided does not match any account on record.",
    ),
    "UnexpectedContent": (400, "This request does not support content."),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    "InvalidChunkSizeError": (403, "Only the last chunk is allowed to have a size less than 8192 bytes"),
}


class S3Error(Exception):
    """An S3 error response: ``code`` picks the HTTP status unless ``status`` overrides it.

    ``extra`` holds additional elements for the XML body (for example ``BucketName`` or
    ``Key``) and ``headers`` additional response headers.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> None:
        # an unknown code fails mypy and tests/unit/s3/test_errors.py; at run time it still answers 400
        default_status, default_message = ERRORS.get(code, (400, code))
        self.code = code
        self.message = message if message is not None else default_message
        self.status = status if status is not None else default_status
        self.headers = headers or {}
        self.extra = extra
        super().__init__(f"{code}: {self.message}")
