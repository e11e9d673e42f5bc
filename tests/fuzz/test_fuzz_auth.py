"""Fuzz request authentication (SigV4 and SigV2, header and presigned): any request gives an
AuthResult or a clear S3 error; a request botocore signed verifies, and any change to what it
signed is refused."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import example, given
from hypothesis import strategies as st

from leofs.s3 import sigv2, sigv4
from leofs.s3.auth import AuthResult, RequestParts, authenticate
from leofs.s3.errors import S3Error
from tests.fuzz.profile import assert_client_error, fuzz, huge_digits, wire_text

ACCESS, SECRET = "AKIAFUZZ", "fuzz-secret-key"
CREDS = Credentials(ACCESS, SECRET)
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
AMZ_NOW = NOW.strftime("%Y%m%dT%H%M%SZ")
SCOPE = f"{AMZ_NOW[:8]}/us-east-1/s3/aws4_request"


def lookup(access_key: str) -> str | None:
    access_key.encode("utf-8")  # as the user store does (SQLite takes UTF-8 only)
    return SECRET if access_key == ACCESS else None


def run(req: RequestParts, now: dt.datetime = NOW) -> AuthResult | None:
    """Authenticate; None when refused with a clear error (anything else fails the test)."""
    try:
        return authenticate(req, lookup, now)
    except S3Error as err:
        assert_client_error(err)
        return None


# -- arbitrary requests --------------------------------------------------------------------------
_AUTH_PREFIXES = st.sampled_from(["AWS4-HMAC-SHA256 ", "AWS ", "AWS4-ECDSA-P256-SHA256 ", "Bearer ", "", " "])


@st.composite
def v4_authorizations(draw: st.DrawFn) -> str:
    """Authorization headers shaped like SigV4's, with fields dropped, duplicated or garbled."""
    credential = draw(st.one_of(st.just(f"{ACCESS}/{SCOPE}"), wire_text(60), st.just(f"{ACCESS}/x/y/z/")))
    fields = [f"Credential={credential}", f"SignedHeaders={draw(st.one_of(st.just('host;x-amz-date'), wire_text(40)))}",
              f"Signature={draw(st.one_of(st.just('0' * 64), wire_text(70)))}"]
    fields = draw(st.permutations(fields))
    fields = fields[: draw(st.integers(0, 3))] + draw(st.lists(wire_text(20), max_size=2))
    return "AWS4-HMAC-SHA256 " + draw(st.sampled_from([",", ", ", " ,", ""])).join(fields)


_DATES = st.one_of(st.just(AMZ_NOW), st.just("Fri, 02 Jan 2026 03:04:05 GMT"), wire_text(40),
                   st.sampled_from(["00000000T000000Z", "99991231T235959Z", "Mon, 01 Jan 0001 00:00:00 GMT",
                                    "Fri, 31 Dec 9999 23:59:59 -2359", "Thu, 01 Jan 1970 00:00:00 +9999"]))


@st.composite
def presigned_queries(draw: st.DrawFn) -> str:
    params = {
        "X-Amz-Algorithm": draw(st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", "x", ""])),
        "X-Amz-Credential": draw(st.one_of(st.just(f"{ACCESS}/{SCOPE}"), wire_text(40))),
        "X-Amz-Date": draw(_DATES),
        "X-Amz-Expires": draw(st.one_of(st.integers(-5, 10**7).map(str), wire_text(10), st.just("٣"))),
        "X-Amz-SignedHeaders": draw(st.one_of(st.just("host"), wire_text(20))),
        "X-Amz-Signature": draw(st.one_of(st.just("0" * 64), wire_text(70))),
    }
    names = draw(st.lists(st.sampled_from(sorted(params)), unique=True))
    return "&".join(f"{n}={_q(params[n])}" for n in names)


def _q(text: str) -> str:
    return quote(text, safe="", errors="surrogateescape")


@st.composite
def requests(draw: st.DrawFn) -> RequestParts:
    headers: dict[str, str] = {}
    kind = draw(st.sampled_from(["v4", "v2", "other", "none", "presigned-v4", "presigned-v2"]))
    if kind == "v4":
        headers["authorization"] = draw(v4_authorizations())
    elif kind == "v2":
        headers["authorization"] = "AWS " + draw(st.one_of(st.just(f"{ACCESS}:c2ln"), wire_text(40)))
    elif kind == "other":
        headers["authorization"] = draw(_AUTH_PREFIXES) + draw(wire_text(60))
    query = draw(st.one_of(st.just(""), wire_text(60)))
    if kind == "presigned-v4":
        query = draw(presigned_queries())
    elif kind == "presigned-v2":
        signature = _q(draw(wire_text(30)))
        query = f"AWSAccessKeyId={ACCESS}&Signature={signature}&Expires={draw(wire_text(12))}"
    for name in draw(st.lists(st.sampled_from(["x-amz-date", "date", "x-amz-content-sha256", "content-md5",
                                               "content-type", "x-amz-meta-a", "host"]), unique=True)):
        headers[name] = draw(_DATES) if "date" in name else draw(wire_text(70))
    method = draw(st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "get", "M\u00e9"]))
    return RequestParts(method, draw(st.one_of(st.just("/b/k"), wire_text(60))), query, headers)


@fuzz(2.0)
@given(req=requests())
@example(req=RequestParts("GET", "/b/k", "", {"authorization": "AWS LEOFS\udcffKEY:c2ln", "date": "x"}))
@example(req=RequestParts("GET", "/b/k", "", {"authorization": "AWS LEOFS\udcffKEY:c2ln",
                                               "date": "Fri, 02 Jan 2026 03:04:05 GMT"}))  # a 500 once
def test_any_request_is_authenticated_or_refused_clearly(req: RequestParts) -> None:
    result = run(req)
    if result is not None and result.access_key is not None:
        assert result.access_key == ACCESS and result.version in (2, 4)


@fuzz()
@given(value=wire_text(300))
@example(value="AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=;;;, Signature=")
def test_parse_authorization(value: str) -> None:
    try:
        header = sigv4.parse_authorization(value)
    except S3Error as err:
        assert_client_error(err, {"AuthorizationHeaderMalformed"})
        return
    assert header.access_key and len(header.scope_parts) == 4 and header.signature


@fuzz()
@given(value=wire_text(100))
def test_parse_v2_authorization(value: str) -> None:
    try:
        access_key, signature = sigv2.parse_authorization(value)
    except S3Error as err:
        assert_client_error(err, {"InvalidArgument"})
        return
    assert access_key and signature


@fuzz()
@given(raw=wire_text(300), bucket=st.one_of(st.none(), st.text(max_size=10)))
def test_canonical_forms_never_raise(raw: str, bucket: str | None) -> None:
    path, _, query = raw.partition("?")
    assert sigv4.canonical_uris(path)
    sigv4.canonical_query(query, exclude="X-Amz-Signature")
    sigv4.canonical_query(query, plus_is_space=True)
    assert sigv2.canonical_resources(path, query, bucket)


@pytest.mark.parametrize("kind", ["v4", "v2"])
def test_presigned_expires_with_5000_digits(kind: str) -> None:
    # found by the fuzzer: int() of a 5000-digit X-Amz-Expires / Expires raised ValueError (a 500)
    digits = "9" * 5000
    if kind == "v4":
        query = (f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ACCESS}%2F{SCOPE.replace('/', '%2F')}"
                 f"&X-Amz-Date={AMZ_NOW}&X-Amz-Expires={digits}&X-Amz-SignedHeaders=host&X-Amz-Signature=00")
    else:
        query = f"AWSAccessKeyId={ACCESS}&Signature=abc&Expires={digits}"
    assert run(RequestParts("GET", "/b/k", query, {"host": "h"})) is None


@fuzz(0.3)
@given(digits=huge_digits())
def test_presigned_expires_below_the_int_limit(digits: str) -> None:
    # test_presigned_expires_with_5000_digits covers the lengths past Python's int limit (4300 digits).
    digits = digits[:4000]
    query = f"AWSAccessKeyId={ACCESS}&Signature=abc&Expires={digits}"
    assert run(RequestParts("GET", "/b/k", query, {"host": "h"})) is None


# -- signed by botocore, then changed ------------------------------------------------------------
_KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
_HEADER_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[str, RequestParts, list[str]]:
    """A request botocore signed (SigV4 header or presigned, SigV2 header or presigned), as the
    server receives it, and the names of the headers the signature covers."""
    scheme = draw(st.sampled_from(["v4", "v4-query", "v2", "v2-query"]))
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "POST"]))
    key = draw(_KEYS)
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/~')}"
    query = draw(st.lists(st.sampled_from(["acl", "uploadId=abc", "partNumber=3", "prefix=a%20b", "x=%2F"]),
                          unique=True, max_size=3))
    if query:
        url += "?" + "&".join(query)
    headers = {f"x-amz-meta-{n}": v for n, v in draw(st.dictionaries(st.sampled_from("abc"), _HEADER_VALUES,
                                                                        max_size=2)).items()}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(_HEADER_VALUES)
    aws = AWSRequest(method=method, url=url, headers=headers, data=b"")
    if scheme == "v4":
        S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(aws)
    elif scheme == "v4-query":
        S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=3600).add_auth(aws)
    elif scheme == "v2":
        HmacV1Auth(CREDS).add_auth(aws)
    else:
        HmacV1QueryAuth(CREDS, expires=3600).add_auth(aws)
    split = urlsplit(aws.url)
    sent = {k.lower(): str(v) for k, v in aws.headers.items()}
    sent.setdefault("host", "127.0.0.1:9000")
    if scheme == "v4":
        signed = sent["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    elif scheme == "v4-query":
        signed = ["host"]
    else:  # a presigned V2 URL signs its Expires in place of the Date header
        dated = ("date",) if scheme == "v2" else ()
        signed = [h for h in sent if h.startswith("x-amz-") or h in ("content-type", "content-md5", *dated)]
    return scheme, RequestParts(method, split.path, split.query, sent), signed


def _now_for(scheme: str) -> dt.datetime:
    # botocore dates what it signs from the real clock
    return dt.datetime.now(dt.UTC)


@fuzz()
@given(signed=signed_requests())
def test_botocore_signatures_verify(signed: tuple[str, RequestParts, list[str]]) -> None:
    scheme, req, _ = signed
    result = authenticate(req, lookup, _now_for(scheme))
    assert result.access_key == ACCESS


@fuzz()
@given(signed=signed_requests(), data=st.data())
def test_changing_a_signed_part_is_refused(signed: tuple[str, RequestParts, list[str]], data: st.DataObject) -> None:
    scheme, req, names = signed
    part = data.draw(st.sampled_from(["method", "path", "query", "signature", *(["header"] if names else [])]))
    extra = data.draw(st.sampled_from(["x", "Z", "%41", "0"]))
    headers = dict(req.headers)
    method, path, query = req.method, req.raw_path, req.raw_query
    if part == "method":
        method = {"GET": "PUT"}.get(method, "GET")
    elif part == "path":
        path += extra
    elif part == "query":
        query += ("&" if query else "") + "versionId=" + extra
    elif part == "header":
        name = data.draw(st.sampled_from(sorted(names)))
        headers[name] = headers.get(name, "") + extra
    elif scheme in ("v4", "v2"):
        auth = headers["authorization"].rstrip("=")
        headers["authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    else:
        query = query.replace("Signature=", "Signature=A", 1)
    assert run(RequestParts(method, path, query, headers), _now_for(scheme)) is None
