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


class LeofsServer:
    """``leofs server DIR`` as a child process on free loopback ports."""

    def __init__(self, data_dir: Path, *, tls: tuple[Path, Path] | None = None, extra_args: list[str] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.host = host
        self.port = free_port(host)
        self.admin_port = free_port(host)
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    #: storage node names for `leofs adm du NODE` and friends
    node_names = ("embedded",)

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def admin(self) -> str:
        return f"{self.host}:{self.admin_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(LEOFS_ROOT_ACCESS_KEY=ROOT_ACCESS_KEY, LEOFS_ROOT_SECRET_KEY=ROOT_SECRET_KEY,
                   LEOFS_CLUSTER_SECRET=CLUSTER_SECRET)
        return env

    def start(self, timeout: float = 30.0) -> None:
        args = [sys.executable, "-m", "leofs", "server", str(self.data_dir), "--address", f"{self.host}:{self.port}",
                "--admin-address", self.admin, *self.extra_args]
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"leofs server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                with socket.create_connection((self.host, self.admin_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"leofs server did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/_leofs_adm/ping", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
