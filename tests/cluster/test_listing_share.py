"""Cluster listings where each storage node is asked for less than the page (issue 15), end to end.

With N=1 on 3 nodes a node is asked for max(16, ceil(2 x 1 x (max-keys + 1) / 3)) rows (at most the
page), fewer than the page from max-keys 20, so pages are merged from short answers, and from
several rounds where a run of deleted keys fills the nodes' answers. Real processes, real HTTP, boto3: every listing,
page after page, with and without a delimiter, must equal the live keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "share"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, set[str]]]:
    base: Path = tmp_path_factory.mktemp("listing-share")
    with running(LeofsCluster(base / "cluster", n=1, w=1, r=1, d=1)) as cluster:
        client = make_client(cluster.endpoint, connect_timeout=3, read_timeout=15)
        client.create_bucket(Bucket=BUCKET)
        # a run of 90 deleted keys first (about 30 per node, more than the 16-34 rows a node is asked
        # for), then live keys with and without a delimiter, some of them deleted too
        run = {f"a{i:03d}" for i in range(90)}
        keys = run | {f"d{i % 4}/k{i:03d}" if i % 3 else f"k{i:03d}" for i in range(72)}
        for key in sorted(keys):
            client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
        deleted = run | {k for k in keys if k.endswith("7")}
        for key in sorted(deleted):
            client.delete_object(Bucket=BUCKET, Key=key)
        yield client, keys - deleted


def _list(client: Any, max_keys: int, **kw: Any) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    prefixes: list[str] = []
    token: dict[str, str] = {}
    for _ in range(200):
        page = client.list_objects_v2(Bucket=BUCKET, MaxKeys=max_keys, **kw, **token)
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] <= max_keys
        if not page["IsTruncated"]:
            return keys, prefixes
        token = {"ContinuationToken": page["NextContinuationToken"]}
    raise AssertionError("the listing did not end")


@pytest.mark.parametrize("max_keys", [7, 20, 50, 1000])
def test_listings_merged_from_short_answers_are_exact(s3: tuple[Any, set[str]], max_keys: int) -> None:
    client, live = s3
    keys, prefixes = _list(client, max_keys)
    assert keys == sorted(live) and not prefixes
    keys, prefixes = _list(client, max_keys, Delimiter="/")
    assert keys == sorted(k for k in live if "/" not in k)
    assert prefixes == sorted({k.split("/")[0] + "/" for k in live if "/" in k})
    keys, prefixes = _list(client, max_keys, Prefix="d2/", StartAfter="d2/k050")
    assert keys == sorted(k for k in live if k.startswith("d2/") and k > "d2/k050")
