"""Fixtures: a real ``leofs server`` process (http and https) and real S3 clients."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from botocore.config import Config

from tests.support.cluster import LeofsCluster
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

_counter = itertools.count()


@pytest.fixture(scope="session", params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The system under test, shared by the session: the embedded server, then a 3-node cluster
    (manager, three storage nodes with N=3 W=2 R=1 D=2, one gateway), both over http."""
    if request.param == "embedded":
        srv = LeofsServer(tmp_path_factory.mktemp("server") / "data")
        srv.start()
        yield srv
        srv.stop()
        return
    cluster = LeofsCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsServer]:
    """An embedded server, for tests of what only the embedded default has."""
    srv = LeofsServer(tmp_path_factory.mktemp("embedded") / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[LeofsServer]:
    """An embedded server over https (botocore sends aws-chunked trailers only over TLS)."""
    base = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    srv = LeofsServer(base / "data", tls=(cert_path, key_path))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def make_client(endpoint: str, *, access_key: str = ROOT_ACCESS_KEY, secret_key: str = ROOT_SECRET_KEY,
                verify: str | bool = True, **config: Any) -> Any:
    """A boto3 S3 client against ``endpoint``; ``config`` goes to botocore's Config."""
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name="us-east-1", config=cfg, verify=verify)


@pytest.fixture
def s3(server: Any) -> Any:
    """boto3 with its default configuration (CRC32 checksums on uploads, Expect: 100-continue)."""
    return make_client(server.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new empty bucket owned by root."""
    name = f"test-{os.getpid()}-{next(_counter)}"
    s3.create_bucket(Bucket=name)
    return name


def aws_env(server: Any, home: Path) -> dict[str, str]:
    """Environment for the aws CLI / s3cmd subprocesses."""
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=ROOT_SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", HOME=str(home), AWS_CONFIG_FILE=str(home / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "creds"))
    return env
