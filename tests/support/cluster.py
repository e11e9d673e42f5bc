"""A real multi-process cluster on loopback: a manager, storage nodes and a gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.servers import CLUSTER_SECRET, ROOT_ACCESS_KEY, ROOT_SECRET_KEY, Service, free_port


class LeofsCluster:
    """Manager + ``nodes`` storage nodes + one gateway, with N/W/R/D as given."""

    def __init__(self, base: Path, *, nodes: int = 3, n: int = 3, w: int = 2, r: int = 1, d: int = 2,
                 gateway_args: list[str] | None = None) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.manager_port = free_port()
        self.manager = Service("manager", [
            "manager", "--data", str(base / "manager"), "--address", f"127.0.0.1:{self.manager_port}",
            "--replicas", str(n), "--write", str(w), "--read", str(r), "--delete", str(d),
        ], [self.manager_port], base / "manager.log")
        self.storage: dict[str, Service] = {}
        for i in range(1, nodes + 1):
            name = f"storage{i}"
            port = free_port()
            self.storage[name] = Service(name, [
                "storage", "--name", name, "--data", str(base / name), "--manager", self.manager_address,
                "--address", f"127.0.0.1:{port}",
            ], [port], base / f"{name}.log")
        self.gateway_port = free_port()
        self.gateway = Service("gateway", [
            "gateway", "--manager", self.manager_address, "--address", f"127.0.0.1:{self.gateway_port}",
            *(gateway_args or []),
        ], [self.gateway_port], base / "gateway.log")

    # -- the same face as LeofsServer, so the S3 integration tests run against either ------------------
    host = "127.0.0.1"
    tls = None

    @property
    def port(self) -> int:
        return self.gateway_port

    @property
    def admin(self) -> str:
        return self.manager_address

    @property
    def data_dir(self) -> Path:
        return self.base

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.storage)

    def log(self) -> str:
        return self.logs()

    def ping(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.endpoint}/_leofs_adm/ping", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def manager_address(self) -> str:
        return f"127.0.0.1:{self.manager_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def adm(self, *args: str, check: bool = True) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "leofs", "adm", "--manager", self.manager_address, "--cluster-secret",
             CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"leofs adm {' '.join(args)} failed: {out.stderr}\n{out.stdout}")
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else out

    def wait_until(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}")

    def node_states(self) -> dict[str, str]:
        return {n["name"]: n["state"] for n in self.adm("status")["nodes"] if n["type"] == "storage"}

    def start(self) -> None:
        self.manager.start()
        for node in self.storage.values():
            node.start()
        self.wait_until(lambda: len(self.node_states()) == len(self.storage), what="storage nodes to register")
        self.adm("start")
        self.wait_until(lambda: set(self.node_states().values()) == {"running"}, what="nodes running")
        self.gateway.start()
        self.wait_gateway_ready()

    def wait_gateway_ready(self) -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ROOT_ACCESS_KEY,
                          aws_secret_access_key=ROOT_SECRET_KEY, region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}))

        def ready() -> bool:
            try:
                s3.list_buckets()
                return True
            except (BotoCoreError, ClientError):
                return False

        self.wait_until(ready, what="the gateway to serve")

    def stop(self) -> None:
        for service in [self.gateway, *self.storage.values(), self.manager]:
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"== {s.name}\n{s.log()}" for s in [self.manager, *self.storage.values(), self.gateway])
