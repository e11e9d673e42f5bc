"""authenticate() against botocore's own signers (SigV4 header/query, SigV2 header/query)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import (
    HmacV1Auth,
    HmacV1QueryAuth,
    S3SigV4Auth,
    S3SigV4QueryAuth,
    SigV4Auth,
)
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leofs.s3 import sigv4
from leofs.s3.auth import (
    PAYLOAD_STREAMING_SIGNED,
    PAYLOAD_STREAMING_UNSIGNED_TRAILER,
    PAYLOAD_UNSIGNED,
    AuthResult,
    RequestParts,
    authenticate,
)
from leofs.s3.errors import S3Error

AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(AK, SK)
SECRETS = {AK: SK, "OTHER": "other-secret"}


def lookup(key: str) -> str | None:
    return SECRETS.get(key)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parts(request: AWSRequest, extra_headers: dict[str, str] | None = None) -> RequestParts:
    """What the gateway would pass for the request botocore signed."""
    url = urlsplit(request.url)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "host" not in headers:
        headers["host"] = url.netloc
    headers.update(extra_headers or {})
    return RequestParts(request.method, url.path, url.query, headers)


def build(
    method: str,
    key: str,
    query: dict[str, str],
    *,
    vhost: bool,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    scheme: str = "http",
) -> AWSRequest:
    path = "/" + quote(key, safe="/~")
    host = "bucket.s3.example.com:8080" if vhost else "127.0.0.1:8080"
    if not vhost:
        path = "/bucket" + path
    url = f"{scheme}://{host}{path}"
    if query:
        url += "?" + percent_encode_sequence(query)
    auth_path = "/bucket" + path if vhost else None
    return AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body, auth_path=auth_path)


def tamper(p: RequestParts, what: str) -> RequestParts:
    if what == "method":
        return RequestParts("POST" if p.method != "POST" else "PUT", p.raw_path, p.raw_query, p.headers)
    if what == "path":
        return RequestParts(p.method, p.raw_path + "x", p.raw_query, p.headers)
    if what == "query":
        q = p.raw_query + "&acl" if p.raw_query else "acl"
        return RequestParts(p.method, p.raw_path, q, p.headers)
    if what == "header":
        headers = dict(p.headers)
        headers["host"] = headers["host"] + "x"
        return RequestParts(p.method, p.raw_path, p.raw_query, headers)
    raise AssertionError(what)


def assert_rejected(p: RequestParts, vhost: bool) -> None:
    bucket = "bucket" if vhost else None
    for what in ("method", "path", "query"):
        with pytest.raises(S3Error) as exc:
            authenticate(tamper(p, what), lookup, now(), virtual_host_bucket=bucket)
        assert exc.value.code == "SignatureDoesNotMatch", what
    with pytest.raises(S3Error) as exc:
        authenticate(p, lambda k: "wrong" + SK, now(), virtual_host_bucket=bucket)
    assert exc.value.code == "SignatureDoesNotMatch"


KEYS = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abcXYZ019 +%/!*'()&=?#~._-:;,@$[]{}\\^`|\"<>")),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=30,
)
QUERIES = st.dictionaries(
    st.one_of(
        st.sampled_from(["prefix", "delimiter", "marker", "max-keys", "encoding-type", "x-id"]),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8),
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    max_size=4,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- SigV4 in the Authorization header -----------------------------------------------------------


@SETTINGS
@given(key=KEYS, query=QUERIES, vhost=st.booleans(), body=st.binary(max_size=64))
def test_sigv4_header_botocore(key: str, query: dict[str, str], vhost: bool, body: bytes) -> None:
    request = build("PUT", key, query, vhost=vhost, body=body, headers={"x-amz-meta-a": " two  spaces "})
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    p = parts(request)
    result = authenticate(p, lookup, now())
    assert result == AuthResult(AK, 4, payload=hashlib.sha256(body).hexdigest())
    assert_rejected(p, vhost=False)
    with pytest.raises(S3Error) as exc:
        authenticate(tamper(p, "header"), lookup, now())
    assert exc.value.code == "SignatureDoesNotMatch"
    headers = dict(p.headers)
    headers["x-amz-meta-a"] = "two spaces!"
    with pytest.raises(S3Error):
        authenticate(RequestParts(p.method, p.raw_path, p.raw_query, headers), lookup, now())


def test_sigv4_unsigned_payload_and_streaming_modes() -> None:
    request = build("PUT", "k", {}, vhost=False, body=b"data", scheme="https", headers={"Content-MD5": "x"})
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(CREDS, "s3", "eu-west-3").add_auth(request)
    assert authenticate(parts(request), lookup, now()).payload == PAYLOAD_UNSIGNED

    request = build("PUT", "k", {}, vhost=False, body=b"data", scheme="https")
    request.context["checksum"] = {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    result = authenticate(parts(request), lookup, now())
    assert result.payload == PAYLOAD_STREAMING_UNSIGNED_TRAILER
    assert result.signing_key == b""

    request = build("PUT", "k", {}, vhost=False, headers={"X-Amz-Content-SHA256": PAYLOAD_STREAMING_SIGNED})
    SigV4Auth(CREDS, "s3", "us-west-2").add_auth(request)  # keeps the header and signs it
    p = parts(request)
    result = authenticate(p, lookup, now())
    assert result.payload == PAYLOAD_STREAMING_SIGNED
    assert result.seed_signature == request.headers["Authorization"].rsplit("=", 1)[1]
    assert result.scope.endswith("/us-west-2/s3/aws4_request")
    assert result.amz_date == p.headers["x-amz-date"]
    assert result.signing_key == sigv4.signing_key(SK, result.amz_date[:8], "us-west-2", "s3")


def test_sigv4_generic_signer_without_content_sha256() -> None:
    request = build("GET", "dir/file.txt", {"list-type": "2"}, vhost=False)
    SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    p = parts(request)
    assert "x-amz-content-sha256" not in p.headers
    assert authenticate(p, lookup, now()).payload == sigv4.EMPTY_SHA256


def test_sigv4_raw_path_fallback() -> None:
    # a client that signs the path exactly as it sends it, with characters AWS would encode
    request = build("GET", "k", {}, vhost=False)
    request.url = "http://127.0.0.1:8080/bucket/a!b(c)*d'e"
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    p = parts(request)
    assert authenticate(p, lookup, now()).access_key == AK
    # and one that encodes them although it sends them raw is accepted too
    request = build("GET", "k", {}, vhost=False)
    request.url = "http://127.0.0.1:8080/bucket/a%21b"
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    p = parts(request)
    assert authenticate(RequestParts("GET", "/bucket/a!b", "", p.headers), lookup, now()).version == 4


def test_sigv4_errors() -> None:
    request = build("GET", "k", {}, vhost=False)
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    p = parts(request)

    def code(headers: dict[str, str], when: dt.datetime | None = None, secrets: dict[str, str] = SECRETS) -> str:
        with pytest.raises(S3Error) as exc:
            authenticate(RequestParts("GET", p.raw_path, "", headers), secrets.get, when or now())
        return exc.value.code

    assert code(p.headers, secrets={}) == "InvalidAccessKeyId"
    assert code(p.headers, now() + dt.timedelta(minutes=16)) == "RequestTimeTooSkewed"
    assert code(p.headers, now() - dt.timedelta(minutes=16)) == "RequestTimeTooSkewed"
    assert authenticate(p, lookup, now() + dt.timedelta(minutes=14)).version == 4
    no_date = {k: v for k, v in p.headers.items() if k != "x-amz-date"}
    assert code(no_date) == "AccessDenied"
    auth = p.headers["authorization"]
    assert code({**p.headers, "authorization": auth.replace("SignedHeaders", "Signed")}) == (
        "AuthorizationHeaderMalformed"
    )
    assert code({**p.headers, "authorization": auth.replace("/s3/", "/ec2/")}) == "AuthorizationHeaderMalformed"
    assert code(
        {**p.headers, "authorization": auth.replace("Credential=AKIDEXAMPLE/2", "Credential=AKIDEXAMPLE/1")}
    ) == ("AuthorizationHeaderMalformed")
    assert code({**p.headers, "x-amz-content-sha256": "nonsense"}) == "InvalidArgument"
    ecdsa = {**p.headers, "x-amz-content-sha256": "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}
    assert code(ecdsa) == "NotImplemented"
    assert code({**p.headers, "authorization": "AWS4-ECDSA-P256-SHA256 Credential=x"}) == "NotImplemented"
    assert code({**p.headers, "authorization": "Bearer abc"}) == "InvalidArgument"
    # any region is accepted
    request = build("GET", "k", {}, vhost=False)
    S3SigV4Auth(CREDS, "s3", "leofs-region-1").add_auth(request)
    assert authenticate(parts(request), lookup, now()).access_key == AK


def test_sigv4_aws_docs_example_get_object() -> None:
    """The "GET Object" example of the S3 SigV4 header docs (signature given there)."""
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    secrets = {"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    when = dt.datetime(2013, 5, 24, 0, 1, tzinfo=dt.UTC)
    result = authenticate(RequestParts("GET", "/test.txt", "", headers), secrets.get, when)
    assert result.access_key == "AKIAIOSFODNN7EXAMPLE"


# -- SigV4 presigned -----------------------------------------------------------------------------


@SETTINGS
@given(key=KEYS, query=QUERIES, vhost=st.booleans(), method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE"]))
def test_sigv4_presigned_botocore(key: str, query: dict[str, str], vhost: bool, method: str) -> None:
    query = {k: v for k, v in query.items() if not k.lower().startswith("x-amz-")}
    request = build(method, key, query, vhost=vhost)
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=600).add_auth(request)
    p = parts(request)
    result = authenticate(p, lookup, now())
    assert result == AuthResult(AK, 4, payload=PAYLOAD_UNSIGNED, presigned=True)
    assert_rejected(p, vhost=False)
    with pytest.raises(S3Error) as exc:
        authenticate(tamper(p, "header"), lookup, now())
    assert exc.value.code == "SignatureDoesNotMatch"


def test_sigv4_presigned_expiry_and_parameters() -> None:
    request = build("GET", "k", {}, vhost=False)
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(request)
    p = parts(request)
    assert authenticate(p, lookup, now() + dt.timedelta(seconds=50)).presigned
    with pytest.raises(S3Error) as exc:
        authenticate(p, lookup, now() + dt.timedelta(seconds=120))
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")
    # presigned requests are not subject to the clock-skew check
    request = build("GET", "k", {}, vhost=False)
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=604800).add_auth(request)
    assert authenticate(parts(request), lookup, now() + dt.timedelta(days=6)).presigned
    for expires, code in (("0", "AccessDenied"), ("604801", "AccessDenied"), ("-5", "AccessDenied"),
                          ("9" * 40, "AccessDenied"), ("abc", "AuthorizationQueryParametersError"),
                          ("-", "AuthorizationQueryParametersError")):
        q = p.raw_query.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
        with pytest.raises(S3Error) as exc:
            authenticate(RequestParts("GET", p.raw_path, q, p.headers), lookup, now())
        assert (exc.value.code, exc.value.status) == (code, 403 if code == "AccessDenied" else 400), expires
    q = "&".join(x for x in p.raw_query.split("&") if not x.startswith("X-Amz-Date"))
    with pytest.raises(S3Error) as exc:
        authenticate(RequestParts("GET", p.raw_path, q, p.headers), lookup, now())
    assert exc.value.code == "AuthorizationQueryParametersError"
    with pytest.raises(S3Error) as exc:
        authenticate(RequestParts("GET", p.raw_path, p.raw_query, p.headers), {}.get, now())
    assert exc.value.code == "InvalidAccessKeyId"
    both = {**p.headers, "authorization": "AWS4-HMAC-SHA256 Credential=x"}
    with pytest.raises(S3Error) as exc:
        authenticate(RequestParts("GET", p.raw_path, p.raw_query, both), lookup, now())
    assert exc.value.code == "InvalidArgument"


def test_sigv4_presigned_security_token() -> None:
    request = build("GET", "k", {"versionId": "null"}, vhost=True)
    S3SigV4QueryAuth(Credentials(AK, SK, "session-token"), "s3", "us-east-1").add_auth(request)
    assert "X-Amz-Security-Token" in request.url
    assert authenticate(parts(request), lookup, now()).access_key == AK


# -- SigV2 ---------------------------------------------------------------------------------------

V2_QUERIES = st.dictionaries(
    st.sampled_from(["acl", "uploads", "versionId", "prefix", "response-content-type", "partNumber", "marker"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10),
    max_size=3,
)


@SETTINGS
@given(key=KEYS, query=V2_QUERIES, vhost=st.booleans(), body=st.binary(max_size=16))
def test_sigv2_header_botocore(key: str, query: dict[str, str], vhost: bool, body: bytes) -> None:
    headers = {"Content-Type": "text/plain", "x-amz-meta-Foo": "bar", "Content-MD5": "abc=="}
    request = build("PUT", key, query, vhost=vhost, body=body, headers=headers)
    HmacV1Auth(CREDS).add_auth(request)
    p = parts(request)
    bucket = "bucket" if vhost else None
    assert authenticate(p, lookup, now(), virtual_host_bucket=bucket) == AuthResult(AK, 2)
    assert_rejected(p, vhost)
    for name in ("content-type", "content-md5", "x-amz-meta-foo", "date"):
        changed = {**p.headers, name: p.headers[name] + "1"}
        with pytest.raises(S3Error) as exc:
            authenticate(
                RequestParts(p.method, p.raw_path, p.raw_query, changed), lookup, now(), virtual_host_bucket=bucket
            )
        assert exc.value.code in ("SignatureDoesNotMatch", "AccessDenied"), name


def test_sigv2_x_amz_date_and_skew() -> None:
    request = build("GET", "k", {}, vhost=False)
    HmacV1Auth(CREDS).add_auth(request)
    p = parts(request)
    with pytest.raises(S3Error) as exc:
        authenticate(p, lookup, now() + dt.timedelta(minutes=20))
    assert exc.value.code == "RequestTimeTooSkewed"
    # x-amz-date replaces Date: the Date line of the string to sign is empty
    amz_date = p.headers["date"]
    sts = f"GET\n\n\n\nx-amz-date:{amz_date}\n/bucket/k"
    sig = sigv2_sign(SK, sts)
    headers = {"host": "h", "x-amz-date": amz_date, "authorization": f"AWS {AK}:{sig}"}
    assert authenticate(RequestParts("GET", "/bucket/k", "", headers), lookup, now()).version == 2
    with pytest.raises(S3Error) as exc:
        authenticate(RequestParts("GET", "/bucket/k", "", {"authorization": f"AWS {AK}:{sig}"}), lookup, now())
    assert exc.value.code == "AccessDenied"
    with pytest.raises(S3Error) as exc:
        authenticate(RequestParts("GET", "/bucket/k", "", {**headers, "authorization": "AWS nocolon"}), lookup, now())
    assert exc.value.code == "InvalidArgument"


def sigv2_sign(secret: str, sts: str) -> str:
    import base64

    return base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()


@SETTINGS
@given(key=KEYS, query=V2_QUERIES, vhost=st.booleans())
def test_sigv2_presigned_botocore(key: str, query: dict[str, str], vhost: bool) -> None:
    request = build("GET", key, query, vhost=vhost, headers={"x-amz-meta-q": "v"})
    HmacV1QueryAuth(CREDS, expires=300).add_auth(request)
    # a presigned URL is used without the headers the presigner moved into the query
    p = parts(request)
    p = RequestParts(p.method, p.raw_path, p.raw_query, {"host": p.headers["host"]})
    bucket = "bucket" if vhost else None
    assert authenticate(p, lookup, now(), virtual_host_bucket=bucket) == AuthResult(AK, 2, presigned=True)
    assert_rejected(p, vhost)
    with pytest.raises(S3Error) as exc:
        authenticate(p, lookup, now() + dt.timedelta(seconds=400), virtual_host_bucket=bucket)
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")


def test_anonymous() -> None:
    assert authenticate(RequestParts("GET", "/b/k", "prefix=a", {"host": "h"}), lookup, now()) == AuthResult(None, 0)


def test_signing_key_cache_is_bounded() -> None:
    for i in range(2000):
        sigv4.signing_key("s", f"2024{i:04d}", "r", "s3")
    assert len(sigv4._KEY_CACHE) <= 512
    expected = hmac.new(b"AWS4s", b"20240001", hashlib.sha256).digest()
    expected = hmac.new(expected, b"r", hashlib.sha256).digest()
    expected = hmac.new(expected, b"s3", hashlib.sha256).digest()
    expected = hmac.new(expected, b"aws4_request", hashlib.sha256).digest()
    assert sigv4.signing_key("s", "20240001", "r", "s3") == expected


ANY_TEXT = st.text(max_size=40)  # surrogates included: servers decode bytes with surrogateescape
AUTH_HEADERS = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda c, s, g: f"AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={s}, Signature={g}",
        st.sampled_from([f"{AK}/20240101/us-east-1/s3/aws4_request", "x/y", ""]) | ANY_TEXT,
        st.sampled_from(["host;x-amz-date", "host"]) | ANY_TEXT,
        ANY_TEXT,
    ),
    st.builds(lambda s: f"AWS {AK}:{s}", ANY_TEXT),
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT"]) | ANY_TEXT,
    path=ANY_TEXT,
    query=st.sampled_from(["", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a", "AWSAccessKeyId=x"]) | ANY_TEXT,
    authorization=st.none() | AUTH_HEADERS,
    headers=st.dictionaries(
        st.sampled_from(["x-amz-date", "date", "x-amz-content-sha256", "host", "content-type", "x-amz-meta-a"]),
        ANY_TEXT,
    ),
)
def test_fuzz_only_s3_errors(
    method: str, path: str, query: str, authorization: str | None, headers: dict[str, str]
) -> None:
    if authorization is not None:
        headers = {**headers, "authorization": authorization}
    try:
        authenticate(RequestParts(method, path, query, headers), lookup, now(), virtual_host_bucket="b")
    except S3Error as e:
        assert 400 <= e.status < 600
