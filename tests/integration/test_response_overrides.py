"""``response-*`` overrides of GET/HEAD: refused on anonymous requests (400 InvalidRequest, as in S3),
and a value that is not a valid header value (CR/LF, control characters) is a 400, not a 500
(issue 10, defect 7)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import no_server_errors, request
from tests.support.servers import LeofsServer

PARAMS = ("response-content-type", "response-content-language", "response-expires", "response-cache-control",
          "response-content-disposition", "response-content-encoding")


@pytest.fixture
def image(s3: Any, bucket: str) -> str:
    s3.put_object(Bucket=bucket, Key="cat.png", Body=b"\x89PNG", ContentType="image/png", ACL="public-read")
    return f"/{bucket}/cat.png"


@pytest.mark.parametrize("param", PARAMS)
def test_anonymous_overrides_are_refused(server: LeofsServer, image: str, param: str) -> None:
    assert request(server, "GET", image, sign=False).status == 200  # the object is public
    resp = request(server, "GET", f"{image}?{param}=text%2Fhtml", sign=False)
    assert (resp.status, resp.code) == (400, "InvalidRequest")
    assert resp.headers.get("Content-Type") != "text/html"
    assert request(server, "HEAD", f"{image}?{param}=text%2Fhtml", sign=False).status == 400
    # signed, the override applies
    resp = request(server, "GET", f"{image}?{param}=text%2Fhtml")
    assert resp.status == 200 and resp.body == b"\x89PNG"
    header = param.removeprefix("response-")
    assert resp.headers[header] == "text/html"


def test_presigned_override_applies(server: LeofsServer, image: str) -> None:
    bucket, key = image.split("/")[1:]
    url = make_client(server.endpoint, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": "attachment"})
    parts = urllib.parse.urlsplit(url)
    resp = request(server, "GET", f"{parts.path}?{parts.query}", sign=False)
    assert resp.status == 200 and resp.headers["Content-Disposition"] == "attachment"


@pytest.mark.parametrize("value", ["a%0D%0ASet-Cookie%3A%20x%3D1", "a%0Ab", "a%00b", "a%7Fb", "%E2%98%83"])
def test_invalid_override_values(server: LeofsServer, image: str, value: str) -> None:
    for method in ("GET", "HEAD"):
        resp = request(server, method, f"{image}?response-content-disposition={value}")
        assert resp.status == 400, (method, value)
        assert "Set-Cookie" not in resp.headers
        if method == "GET":
            assert resp.code == "InvalidArgument"
    no_server_errors(server)
