"""`leofs server --config FILE` as a real process: the file's values apply, LEOFS_* variables beat
the file, flags beat both. Seen through behaviour: the ports it listens on and the largest PUT it takes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from leofs.internal.messages import SECRET_HEADER
from tests.integration.conftest import make_client
from tests.support.servers import Service, free_port, process_env


def _start(tmp_path: Path, name: str, args: list[str], ports: list[int], env: dict[str, str]) -> Service:
    service = Service(name, ["server", *args, "--workers", "1"], ports, tmp_path / f"{name}.log", env=env)
    service.start()
    return service


def _put(endpoint: str, bucket: str, size: int) -> str:
    """"ok", or the S3 error code of a single PUT of ``size`` bytes."""
    try:
        make_client(endpoint).put_object(Bucket=bucket, Key=f"k{size}", Body=b"x" * size)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    s3_port, admin_port, env_admin_port = free_port(), free_port(), free_port()
    config = tmp_path / "leofs.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\naddress = "127.0.0.1:{s3_port}"\n'
                      f'admin_address = "127.0.0.1:{admin_port}"\n'
                      "[gateway]\nmax_single_put = 1000\n")
    # the environment beats the file: the admin port and the largest PUT
    env = dict(process_env(), LEOFS_SERVER_ADMIN_ADDRESS=f"127.0.0.1:{env_admin_port}",
               LEOFS_GATEWAY_MAX_SINGLE_PUT="2000")
    server = _start(tmp_path, "by-env", ["--config", str(config)], [s3_port, env_admin_port], env)
    try:
        endpoint = f"http://127.0.0.1:{s3_port}"  # from the file (the default is 8080)
        make_client(endpoint).create_bucket(Bucket="conf")
        assert _put(endpoint, "conf", 1500) == "ok"  # the file's 1000 is overridden
        assert _put(endpoint, "conf", 2500) == "EntityTooLarge"
        status = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", f"127.0.0.1:{env_admin_port}",
                                 "--data", str(tmp_path / "data"), "status"], capture_output=True, text=True,
                                timeout=60, env=env)
        assert status.returncode == 0 and "embedded" in status.stdout, status
    finally:
        server.stop()
    # flags beat both
    flag_port = free_port()
    server = _start(tmp_path, "by-flag", ["--config", str(config), "--address", f"127.0.0.1:{flag_port}",
                                          "--max-single-put", "3000"], [flag_port, env_admin_port], env)
    try:
        endpoint = f"http://127.0.0.1:{flag_port}"
        assert _put(endpoint, "conf", 2500) == "ok"
        assert _put(endpoint, "conf", 3500) == "EntityTooLarge"
    finally:
        server.stop()


@pytest.mark.parametrize(("text", "named"), [
    ("[gateway]\nmax_conections = 5\n", "max_conections"),
    ("[server]\ncontainers = \"eight\"\n", "server.containers"),
])
def test_a_role_refuses_a_bad_file(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "leofs.toml"
    config.write_text(text)
    out = subprocess.run([sys.executable, "-m", "leofs", "server", str(tmp_path / "data"), "--config", str(config)],
                         capture_output=True, text=True, timeout=60, env=process_env())
    assert out.returncode == 2 and named in out.stderr, out
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_manager_from_file_environment_and_flags(tmp_path: Path) -> None:
    """A second role: N from the file, W from the environment over the file, R from a flag over both,
    the port and the cluster secret from the file."""
    port = free_port()
    secret = "secret-from-the-config-file"
    config = tmp_path / "leofs.toml"
    config.write_text(f'[manager]\ndata_dir = "{tmp_path / "m"}"\naddress = "127.0.0.1:{port}"\n'
                      f'replicas = 3\nwrite = 1\nread = 1\ndelete = 2\ncluster_secret = "{secret}"\n')
    env = {k: v for k, v in process_env().items() if k != "LEOFS_CLUSTER_SECRET"}
    env["LEOFS_MANAGER_WRITE"] = "3"
    manager = Service("manager", ["manager", "--config", str(config), "--read", "2"], [port],
                      tmp_path / "manager.log", env=env)
    manager.start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/adm/status", data=b"{}", method="POST",
                                         headers={SECRET_HEADER: secret})
        with urllib.request.urlopen(request, timeout=10) as response:
            consistency = json.loads(response.read())["result"]["consistency"]
        assert (consistency["n"], consistency["w"], consistency["r"], consistency["d"]) == (3, 3, 2, 2)
    finally:
        manager.stop()
