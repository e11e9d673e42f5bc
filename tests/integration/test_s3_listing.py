"""Listing against a real server: v1, v2 and ListObjectVersions with prefixes, delimiters,
pagination, encoding-type=url and awkward keys; a hypothesis model check against a sorted dict."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.s3_helpers import NS, request
from tests.support.servers import ROOT_ACCESS_KEY, LeofsServer

AWKWARD = [
    "a" * 1024,
    "é/ü/日本語/κλειδί",
    "double//slash",
    "/leading-slash",
    "dots/../../../../etc/passwd",
    "..",
    ".",
    "percent%20%2F%",
    "plus+plus",
    "with space ",
    "question?mark",
    "hash#tag",
    "amp&eq=semi;",
    "tab\tnewline\n",
    "emoji-🎉",
    "quote\"'<>&",
    "back\\slash",
]


def _model_list(keys: list[str], prefix: str, delimiter: str) -> tuple[list[str], list[str]]:
    """(contents, common prefixes) S3 returns for a full listing."""
    contents: list[str] = []
    prefixes: list[str] = []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                cp = key[: cut + len(delimiter)]
                if not prefixes or prefixes[-1] != cp:
                    prefixes.append(cp)
                continue
        contents.append(key)
    return contents, prefixes


def _walk_v2(s3: Any, bucket: str, prefix: str = "", delimiter: str = "", page: int = 1000,
             start_after: str = "") -> tuple[list[str], list[str]]:
    keys: list[str] = []
    prefixes: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": delimiter, "MaxKeys": page}
    if start_after:
        kwargs["StartAfter"] = start_after
    for _ in range(10000):
        resp = s3.list_objects_v2(**kwargs)
        got = [o["Key"] for o in resp.get("Contents", [])]
        cps = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        assert resp["KeyCount"] == len(got) + len(cps)
        assert resp["KeyCount"] <= page
        keys += got
        prefixes += cps
        if not resp["IsTruncated"]:
            return keys, prefixes
        assert resp["KeyCount"] == page
        kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        kwargs.pop("StartAfter", None)
    raise AssertionError("listing did not end")


def _walk_v1(s3: Any, bucket: str, prefix: str = "", delimiter: str = "", page: int = 1000) -> tuple[
        list[str], list[str]]:
    keys: list[str] = []
    prefixes: list[str] = []
    marker = ""
    for _ in range(10000):
        resp = s3.list_objects(Bucket=bucket, Prefix=prefix, Delimiter=delimiter, MaxKeys=page, Marker=marker)
        got = [o["Key"] for o in resp.get("Contents", [])]
        cps = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        keys += got
        prefixes += cps
        if not resp["IsTruncated"]:
            return keys, prefixes
        # NextMarker is returned when a delimiter is given; otherwise the last key is the marker
        marker = resp.get("NextMarker") or got[-1]
    raise AssertionError("listing did not end")


@pytest.fixture(scope="module")
def tree(server: LeofsServer) -> tuple[str, list[str]]:
    """A bucket with a small tree of keys (module scoped: listing tests only read it)."""
    from tests.integration.conftest import make_client

    s3 = make_client(server.endpoint)
    name = f"list-{os.getpid()}-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=name)
    keys = [f"photos/{y}/{m:02d}/img{i}.jpg" for y in (2023, 2024) for m in (1, 2, 11) for i in range(3)]
    keys += ["photos/readme", "photos-old/x", "docs/a-b-c", "docs/a-b", "docs/a", "top", "top-2", "z"]
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name, keys


@pytest.mark.parametrize("prefix,delimiter", [
    ("", ""), ("", "/"), ("photos/", "/"), ("photos/2024/", "/"), ("photos", "/"), ("docs/", "-"),
    ("docs/a", "-b"), ("", "o"), ("nomatch", "/"), ("photos/2023/01/", ""), ("", "/11/"),
])
def test_listing_matches_model(s3: Any, tree: tuple[str, list[str]], prefix: str, delimiter: str) -> None:
    name, keys = tree
    expected = _model_list(keys, prefix, delimiter)
    for page in (1, 2, 7, 1000):
        assert _walk_v2(s3, name, prefix, delimiter, page) == expected, page
        assert _walk_v1(s3, name, prefix, delimiter, page) == expected, page


def test_start_after_and_marker(s3: Any, tree: tuple[str, list[str]]) -> None:
    name, keys = tree
    ordered = sorted(keys)
    for after in ("", "docs/a", "photos/2024/", "photos/2023/11/img2.jpg", "zz", "0"):
        contents, _ = _walk_v2(s3, name, page=5, start_after=after)
        assert contents == [k for k in ordered if k > after]
        resp = s3.list_objects(Bucket=name, Marker=after)
        assert [o["Key"] for o in resp.get("Contents", [])] == [k for k in ordered if k > after]
        assert resp["Marker"] == after
    # a common prefix given back as the marker is not listed again
    resp = s3.list_objects(Bucket=name, Delimiter="/", Marker="photos/")
    assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == []
    assert [o["Key"] for o in resp["Contents"]] == ["top", "top-2", "z"]


def test_listing_response_fields(s3: Any, tree: tuple[str, list[str]]) -> None:
    name, _keys = tree
    resp = s3.list_objects_v2(Bucket=name, Prefix="docs/", MaxKeys=2)
    assert resp["Name"] == name and resp["Prefix"] == "docs/" and resp["MaxKeys"] == 2
    assert resp["KeyCount"] == 2 and resp["IsTruncated"] is True
    obj = resp["Contents"][0]
    assert obj["Key"] == "docs/a" and obj["Size"] == len(b"docs/a") and obj["StorageClass"] == "STANDARD"
    assert obj["ETag"].startswith('"') and obj["LastModified"]
    assert "Owner" not in obj
    owned = s3.list_objects_v2(Bucket=name, Prefix="docs/", FetchOwner=True)
    root_id = s3.list_buckets()["Owner"]["ID"]  # the canonical id, never the access key
    assert all(o["Owner"]["ID"] == root_id != ROOT_ACCESS_KEY for o in owned["Contents"])
    v1 = s3.list_objects(Bucket=name, Prefix="docs/")
    assert all(o["Owner"]["ID"] == root_id for o in v1["Contents"])
    # max-keys is capped at 1000, 0 gives an empty page
    assert s3.list_objects_v2(Bucket=name, MaxKeys=5000)["MaxKeys"] == 1000
    empty = s3.list_objects_v2(Bucket=name, MaxKeys=0)
    assert empty["KeyCount"] == 0 and "Contents" not in empty


def test_max_keys_1000_cap(s3: Any, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"k{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    first = s3.list_objects_v2(Bucket=bucket, MaxKeys=2000)
    assert first["KeyCount"] == 1000 and first["IsTruncated"]
    second = s3.list_objects_v2(Bucket=bucket, ContinuationToken=first["NextContinuationToken"])
    assert [o["Key"] for o in second["Contents"]] == keys[1000:]
    v1 = s3.list_objects(Bucket=bucket)
    assert len(v1["Contents"]) == 1000 and v1["IsTruncated"]
    versions = s3.list_object_versions(Bucket=bucket, MaxKeys=1500)
    assert len(versions["Versions"]) == 1000 and versions["IsTruncated"]
    assert versions["NextKeyMarker"] == keys[999]
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker=versions["NextKeyMarker"])
    assert [v["Key"] for v in rest["Versions"]] == keys[1000:]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:1000]], "Quiet": True})
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[1000:]], "Quiet": True})
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_list_object_versions(s3: Any, bucket: str) -> None:
    for key in ("a", "b/c", "b/d"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"v")
    resp = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in resp["Versions"]] == [("a", "null", True)]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
    assert "DeleteMarkers" not in resp
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") is None
    got = s3.get_object(Bucket=bucket, Key="a", VersionId="null")
    assert got["Body"].read() == b"v"


def _outside(data_dir: Path, base: Path) -> dict[str, Any]:
    """What a key used as a file path could reach: the entries of the data directory's parents up to
    the session's base directory (above it other test sessions come and go), and /etc/passwd."""
    base = base.resolve()
    parents = [p for p in Path(data_dir).resolve().parents if p == base or base in p.parents]
    seen: dict[str, Any] = {str(p): sorted(e.name for e in p.iterdir()) for p in parents}
    seen["/etc/passwd"] = Path("/etc/passwd").read_bytes()
    return seen


def test_awkward_keys_stored_and_listed_exactly(s3: Any, bucket: str, server: LeofsServer,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    outside = _outside(server.data_dir, tmp_path_factory.getbasetemp())
    for key in AWKWARD:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in AWKWARD:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode(), key
    expected = sorted(AWKWARD, key=lambda k: k.encode())
    assert _walk_v2(s3, bucket, page=3)[0] == expected
    assert _walk_v1(s3, bucket, page=4)[0] == expected
    # encoding-type=url asked for explicitly: botocore leaves the keys encoded
    resp = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert resp["EncodingType"] == "url"
    assert [unquote(o["Key"]) for o in resp["Contents"]] == expected
    assert all(o["Key"].isascii() and "&" not in o["Key"] for o in resp["Contents"])
    # the raw response really is percent-encoded
    raw = request(server, "GET", f"/{bucket}?list-type=2&encoding-type=url&prefix=plus")
    assert raw.status == 200
    root = raw.xml()
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert [unquote(k.text or "") for k in root.iter(f"{NS}Key")] == ["plus+plus"]
    assert "+" not in (root.findtext(f"{NS}Contents/{NS}Key") or "+")
    # each key read back as itself (above), and nothing appeared or changed outside the data directory
    traversal = "dots/../../../../etc/passwd"
    assert s3.get_object(Bucket=bucket, Key=traversal)["Body"].read() == traversal.encode()
    assert _outside(server.data_dir, tmp_path_factory.getbasetemp()) == outside
    for key in AWKWARD:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_key_too_long(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert exc.value.response["Error"]["Code"] == "KeyTooLongError"


def test_invalid_listing_arguments(server: LeofsServer, bucket: str) -> None:
    for query in ("max-keys=abc", "max-keys=-1", "encoding-type=base64", "list-type=2&continuation-token=%21%21%21",
                  "list-type=2&max-keys=99999999999999999999"):
        resp = request(server, "GET", f"/{bucket}?{query}")
        assert resp.status == 400 and resp.code == "InvalidArgument", (query, resp.status, resp.body)


def test_list_missing_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=f"nope-{os.getpid()}")
    assert exc.value.response["Error"]["Code"] == "NoSuchBucket"


_key_chars = st.sampled_from(list("ab/-.é% +"))
_keys = st.lists(st.text(_key_chars, min_size=1, max_size=6), min_size=0, max_size=12, unique=True)


@pytest.fixture(scope="module")
def model_bucket(server: LeofsServer) -> str:
    from tests.integration.conftest import make_client

    s3 = make_client(server.endpoint)
    name = f"model-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    return name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=_keys, prefix=st.text(_key_chars, max_size=2), delimiter=st.sampled_from(["", "/", "-", "a", "/b", "é"]),
       page=st.integers(1, 5))
def test_listing_model(s3: Any, model_bucket: str, keys: list[str], prefix: str, delimiter: str,
                       page: int) -> None:
    existing = [o["Key"] for o in s3.list_objects_v2(Bucket=model_bucket).get("Contents", [])]
    if existing:
        s3.delete_objects(Bucket=model_bucket, Delete={"Objects": [{"Key": k} for k in existing], "Quiet": True})
    for key in keys:
        s3.put_object(Bucket=model_bucket, Key=key, Body=b"")
    expected = _model_list(keys, prefix, delimiter)
    assert _walk_v2(s3, model_bucket, prefix, delimiter, page) == expected
    assert _walk_v1(s3, model_bucket, prefix, delimiter, page) == expected
