"""Real leofs server processes for tests: start, wait until ready, SIGKILL, restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT_ACCESS_KEY = "LEOFSTESTROOTKEY0001"
ROOT_SECRET_KEY = "leofs-test-root-secret-key-0000000000001"
CLUSTER_SECRET = "leofs-test-cluster-secret"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Service:
    """One ``python -m leofs ...`` child process, ready once it accepts connections on ``ports``."""

    def __init__(self, name: str, args: list[str], ports: list[int], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.ports = ports
        self.log_path = log_path
        self.env = env if env is not None else process_env()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "leofs", *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        waiting = list(self.ports)
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5):
                    waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        if waiting:
            raise RuntimeError(f"{self.name} did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def process_env() -> dict[str, str]:
    """The environment of every process the tests start: known root keys and cluster secret."""
    return dict(os.environ, LEOFS_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY, LEOFS_ROOT_SECRET_KEY=ROOT_SECRET_KEY,
                LEOFS_CLUSTER_SECRET=CLUSTER_SECRET)


class LeofsServer:
    """``leofs server DIR`` as a child process on free loopback ports."""

    #: storage node names for `leofs adm du NODE` and friends
    node_names = ("embedded",)

    def __init__(self, data_dir: Path, *, tls: tuple[Path, Path] | None = None, extra_args: list[str] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.host = host
        self.port = free_port(host)
        self.admin_port = free_port(host)
        # Two processes unless a test says otherwise: every S3 test then also runs through a gateway
        # worker and the write link (the default is one process on the 2-core CI machines).
        extra = list(extra_args or [])
        if "--workers" not in extra:
            extra += ["--workers", "2"]
        args = ["server", str(data_dir), "--address", f"{host}:{self.port}", "--admin-address", self.admin, *extra]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.service = Service("leofs server", args, [self.port, self.admin_port],
                               data_dir.parent / f"{data_dir.name}.log")

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.service.proc

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def admin(self) -> str:
        return f"{self.host}:{self.admin_port}"

    def env(self) -> dict[str, str]:
        return self.service.env

    def start(self, timeout: float = 30.0) -> None:
        self.service.start(timeout)

    def log(self) -> str:
        return self.service.log()

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        self.service.kill()

    def stop(self) -> None:
        self.service.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/_leofs_adm/ping", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
