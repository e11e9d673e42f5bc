"""A real multi-process cluster on loopback: a manager, storage nodes and a gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.support.servers import (
    CLUSTER_SECRET,
    PORT_ATTEMPTS,
    ROOT_ACCESS_KEY,
    ROOT_SECRET_KEY,
    PortTaken,
    Service,
    free_port,
    process_env,
    process_tree,
)


class LeofsCluster:
    """Manager + ``nodes`` storage nodes + one gateway, with N/W/R/D as given."""

    def __init__(self, base: Path, *, nodes: int = 3, n: int = 3, w: int = 2, r: int = 1, d: int = 2,
                 data_dirs: dict[str, Path] | None = None, gateway_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        """``env``: variables added to every process's environment and to ``leofs adm``'s (e.g. the
        shared LEOFS_INTERNAL_TLS_* of tests.support.tls.tls_env)."""
        self.base = base
        self.env = {**process_env(), **(env or {})}
        # one gateway process unless a test says otherwise (the default is one per core above 2 cores:
        # the cache tests' expectations of one process must not depend on the machine)
        self.gateway_args = gateway_args if "--workers" in gateway_args else (*gateway_args, "--workers", "1")
        base.mkdir(parents=True, exist_ok=True)
        self.consistency = (n, w, r, d)
        self.data_dirs = {f"storage{i}": (data_dirs or {}).get(f"storage{i}", base / f"storage{i}")
                          for i in range(1, nodes + 1)}  # fmt: skip
        self.manager = Service("manager", [], [], base / "manager.log", self.env)
        self.storage = {name: Service(name, [], [], base / f"{name}.log", self.env) for name in self.data_dirs}
        self.gateway = Service("gateway", [], [], base / "gateway.log", self.env)
        #: gateways started after the cluster (add_gateway), against the same manager
        self.extra_gateways: list[Service] = []
        self._pick_ports()

    def _pick_ports(self) -> None:
        """(New) free ports for every process: the first start retries here when one was taken."""
        n, w, r, d = self.consistency
        self.manager_port = free_port()
        self.manager.args = [
            "manager", "--data", str(self.base / "manager"), "--address", f"127.0.0.1:{self.manager_port}",
            "--replicas", str(n), "--write", str(w), "--read", str(r), "--delete", str(d),
        ]  # fmt: skip
        self.manager.ports = [self.manager_port]
        for name, node in self.storage.items():
            port = free_port()
            node.args = ["storage", "--name", name, "--data", str(self.data_dirs[name]), "--manager",
                         self.manager_address, "--address", f"127.0.0.1:{port}"]  # fmt: skip
            node.ports = [port]
        self.gateway_port = free_port()
        self.gateway_admin_port = free_port()
        self.gateway.args = ["gateway", "--manager", self.manager_address, "--address",
                             f"127.0.0.1:{self.gateway_port}", "--admin-address",
                             f"127.0.0.1:{self.gateway_admin_port}", *self.gateway_args]  # fmt: skip
        self.gateway.ports = [self.gateway_port, self.gateway_admin_port]

    def storage_address(self, name: str) -> str:
        return f"127.0.0.1:{self.storage[name].ports[0]}"

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
             CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=60, env=self.env)
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
        for attempt in range(PORT_ATTEMPTS):
            try:
                self._start()
                return
            except PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.stop()
                self._pick_ports()

    def _start(self) -> None:
        self.manager.start()
        for node in self.storage.values():
            node.start()
        self.wait_until(lambda: len(self.node_states()) == len(self.storage), what="storage nodes to register")
        # a retry on new ports (PortTaken) finds the cluster started by the attempt before
        if self.adm("status")["cluster_state"] != "running":
            self.adm("start")
        self.wait_until(lambda: set(self.node_states().values()) == {"running"}, what="nodes running")
        self.gateway.start()
        self.wait_gateway_ready()

    def add_gateway(self, name: str, args: tuple[str, ...] = ()) -> Service:
        """Start one more gateway process against this cluster's manager; its S3 port is
        ``ports[0]``, its admin listener ``ports[1]``. Stopped with the cluster."""
        for attempt in range(PORT_ATTEMPTS):
            port, admin_port = free_port(), free_port()
            service = Service(name, ["gateway", "--manager", self.manager_address, "--name", name, "--address",
                                     f"127.0.0.1:{port}", "--admin-address", f"127.0.0.1:{admin_port}", *args,
                                     *(() if "--workers" in args else ("--workers", "1"))],
                              [port, admin_port], self.base / f"{name}.log", self.env)  # fmt: skip
            try:
                service.start()
                break
            except PortTaken:
                service.stop()
                if attempt == PORT_ATTEMPTS - 1:
                    raise
        self.extra_gateways.append(service)
        self.wait_gateway_ready(f"http://127.0.0.1:{service.ports[0]}")
        return service

    def wait_gateway_ready(self, endpoint: str | None = None) -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = boto3.client("s3", endpoint_url=endpoint or self.endpoint, aws_access_key_id=ROOT_ACCESS_KEY,
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
        for service in [*self.extra_gateways, self.gateway, *self.storage.values(), self.manager]:
            service.stop()

    @property
    def services(self) -> list[Service]:
        return [self.manager, *self.storage.values(), self.gateway, *self.extra_gateways]

    def log_mark(self) -> dict[str, int]:
        """Where every process's log ends now (see :meth:`log_since`)."""
        return {s.name: s.log_mark() for s in self.services}

    def log_since(self, mark: dict[str, int]) -> str:
        """What the processes logged after ``mark``: checks scoped to one module or test."""
        return "\n".join(f"== {s.name}\n{s.log_since(mark.get(s.name, 0))}" for s in self.services)

    def pids(self) -> list[int]:
        """Every process of the cluster (and their children)."""
        return [p for s in self.services if s.proc is not None and s.proc.poll() is None
                for p in process_tree(s.proc.pid)]  # fmt: skip

    def logs(self) -> str:
        return "\n".join(f"== {s.name}\n{s.log()}" for s in self.services)


C = TypeVar("C", bound=LeofsCluster)


@contextmanager
def running(cluster: C, *, after_stop: Callable[[], None] | None = None) -> Iterator[C]:
    """Start ``cluster`` and stop it afterwards (then ``after_stop``); print its logs when starting it or
    the body fails, and fail when any of its processes logged a traceback meanwhile (what a test
    fixture of one cluster wants)."""
    mark = cluster.log_mark()
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs()[-20000:])
        raise
    finally:
        cluster.stop()
        if after_stop is not None:
            after_stop()
    log = cluster.log_since(mark)
    assert "Traceback" not in log, f"a process logged a traceback:\n{log[-20000:]}"
