"""The object cache on the embedded server (off by default there): with it on and two gateway
processes, each with its own cache, a hit is checked against the shared index, so an overwrite or
delete through one process is seen at once through the other; ranges come from the cache."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.servers import LeofsServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsServer]:
    base = tmp_path_factory.mktemp("cache-embedded")
    srv = LeofsServer(
        base / "data",
        extra_args=[
            "--workers",
            "2",
            "--cache-ram",
            "8MiB",
            "--cache-ram-threshold",
            "65536",
            "--cache-disk",
            f"{base / 'cache'}:64MiB",
            "--access-log",
        ],
    )
    srv.start()
    yield srv
    srv.stop()


def states(text: str, key: str) -> list[str]:
    return [line.split("\t")[-1] for line in text.splitlines()
            if "\tGetObject\t" in line and line.split("\t")[3] == key]  # fmt: skip


def test_overwrites_and_deletes_are_seen_by_every_process(server: LeofsServer) -> None:
    s3s = [make_client(server.endpoint) for _ in range(4)]  # separate connections: both processes answer
    s3s[0].create_bucket(Bucket="emb")
    for size in (1024, 200 * 1024):  # RAM tier, disk tier
        for round_ in range(4):
            body = os.urandom(size)
            s3s[round_ % 4].put_object(Bucket="emb", Key=f"k{size}", Body=body)
            for s3 in s3s:
                assert s3.get_object(Bucket="emb", Key=f"k{size}")["Body"].read() == body, round_
        s3s[1].delete_object(Bucket="emb", Key=f"k{size}")
        for s3 in s3s:
            with pytest.raises(ClientError) as err:
                s3.get_object(Bucket="emb", Key=f"k{size}")
            assert err.value.response["Error"]["Code"] == "NoSuchKey"


def test_hits_and_ranges(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket="emb2")
    body = os.urandom(50_000)
    s3.put_object(Bucket="emb2", Key="r", Body=body)
    mark = server.log_mark()
    for _ in range(3):
        assert s3.get_object(Bucket="emb2", Key="r")["Body"].read() == body
    assert s3.get_object(Bucket="emb2", Key="r", Range="bytes=10-99")["Body"].read() == body[10:100]
    # a worker writes its access-log line after the answer has gone out: wait for the fourth
    deadline = time.monotonic() + 10
    seen = states(server.log_since(mark), "r")
    while len(seen) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = states(server.log_since(mark), "r")
    assert len(seen) == 4 and "hit:mem" in seen
