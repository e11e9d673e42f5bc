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


#: ports this process handed out lately: the kernel may give the same free port to two picks made
#: before either child binds it (two services of one cluster would then collide)
_HANDED_OUT: dict[int, None] = {}
_HANDED_OUT_MAX = 4096


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago and that this process has not handed out lately. Another
    process may take it before the child binds it: :meth:`Service.start` raises :class:`PortTaken`
    then, and the owners pick new ports and retry."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            break
    _HANDED_OUT[port] = None
    if len(_HANDED_OUT) > _HANDED_OUT_MAX:
        del _HANDED_OUT[next(iter(_HANDED_OUT))]
    return port


class PortTaken(RuntimeError):
    """The child could not bind its port (EADDRINUSE): pick another one and start again."""


#: how many times a first start is retried on new ports when its port was taken meanwhile
PORT_ATTEMPTS = 5


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
        """Start the child and wait until every port accepts connections; :class:`PortTaken` when the
        child exited because one of its ports was in use."""
        mark = self.log_mark()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "leofs", *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        waiting = list(self.ports)
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.log_since(mark)
                if "address already in use" in output.lower() or "eaddrinuse" in output.lower():
                    raise PortTaken(f"{self.name}: a port of {self.ports} was taken:\n{output[-2000:]}")
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            # ours, not another process that took the port meanwhile (then our child exits: PortTaken)
            if not any(listens_on(p, waiting[0]) for p in process_tree(self.proc.pid)):
                time.sleep(0.05)
                continue
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

    def log_mark(self) -> int:
        """The log's current length: :meth:`log_since` then shows only what was written after."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode(errors="replace")
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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its child processes (a server's gateway workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                pids.append(int(entry))
    return pids


def listens_on(pid: int, port: int) -> bool:
    """True when process ``pid`` holds a socket listening on TCP ``port`` (IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


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
        # Two processes unless a test says otherwise: every S3 test then also runs through a gateway
        # worker and the write link (the default is one process on the 2-core CI machines).
        self.extra = list(extra_args or [])
        if "--workers" not in self.extra:
            self.extra += ["--workers", "2"]
        self.service = Service("leofs server", [], [], data_dir.parent / f"{data_dir.name}.log")
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port = free_port(self.host)
        self.admin_port = free_port(self.host)
        args = ["server", str(self.data_dir), "--address", f"{self.host}:{self.port}", "--admin-address", self.admin,
                *self.extra]
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self.service.args = args
        self.service.ports = [self.port, self.admin_port]
        self._started = False

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
        """Start (or restart, on the same ports); a first start whose ports were taken meanwhile
        moves to new ones."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                self.service.start(timeout)
                self._started = True
                return
            except PortTaken:
                if self._started or attempt == PORT_ATTEMPTS - 1:
                    raise
                self._pick_ports()

    def log(self) -> str:
        return self.service.log()

    def log_mark(self) -> dict[str, int]:
        """Where the logs end now (see :meth:`log_since`)."""
        return {"server": self.service.log_mark()}

    def log_since(self, mark: dict[str, int]) -> str:
        """What the server logged after ``mark``: checks scoped to one module or test."""
        return self.service.log_since(mark["server"])

    def pids(self) -> list[int]:
        """The server process and its worker processes."""
        proc = self.proc
        return process_tree(proc.pid) if proc is not None and proc.poll() is None else []

    @property
    def alive(self) -> bool:
        return self.service.alive

    def wait_workers(self, count: int, timeout: float = 30.0) -> list[int]:
        """Wait until the server runs ``count`` processes (primary and workers), each listening on the
        S3 port; their pids."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if len(pids) == count and all(listens_on(p, self.port) for p in pids):
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} processes listening on {self.port} never came (have {pids})")
            time.sleep(0.05)

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
