"""Processes sharing one listening port (``SO_REUSEPORT``): what the embedded server's workers
(:mod:`leofs.workers`) and the cluster gateway's (:mod:`leofs.gateway_workers`) have in common.

One Python process runs one event loop on one core, so a role that should use every core starts
worker processes that bind the same port; the kernel spreads new connections over them. The
*primary* starts them with :class:`ProcessPool` (each gets its spec as JSON on the command line of
a hidden ``leofs`` subcommand), restarts any that dies, passes signals on, and stops them all. A
worker dies with the primary (:func:`die_with_parent`: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import msgspec

log = logging.getLogger("leofs.workers")

_PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0  # seconds before a dead worker is started again
STOP_TIMEOUT = 10.0  # seconds a worker gets to finish its requests on shutdown


class Indexed(Protocol):
    """A worker's spec: a msgspec struct with the worker's index (1..N-1; the primary is 0)."""

    @property
    def index(self) -> int: ...


S = TypeVar("S", bound=Indexed)


def default_workers() -> int:
    """One process per core, up to 8, on machines with more than two cores; one process on two
    cores or fewer. Measured on 2 cores shared with the client (docs/performance.md, "Worker
    processes"): a second process costs more per request (the write link, more wake-ups with fewer
    events each) than the half core it can add; the gain starts where cores are left over."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 2 else min(8, cores)


def check_port_free(host: str, port: int, wait: float = 3.0) -> None:
    """Fail (OSError EADDRINUSE) if anything listens on host:port. Workers bind with SO_REUSEPORT,
    which would let a second server share the port silently; a plain bind notices. Workers of a
    server just killed may take a moment to go, hence the short wait."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


def make_runtime_dir(prefix: str) -> Path:
    """A private directory (0700) for the sockets and shared metrics files of one primary and its
    workers, in the temp dir (a Unix socket path must stay short). Directories of the same prefix
    left by primaries that were killed are removed."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{prefix}-*-*"):
        pid = old.name.removeprefix(f"{prefix}-").split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=base))


class ProcessPool(Generic[S]):
    """The primary's side: starts ``leofs COMMAND SPEC`` per spec, restarts any that dies, stops them all."""

    def __init__(self, command: str, specs: list[S], *, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.specs = specs
        #: added to the workers' environment (secrets go there: a command line is public in /proc)
        self.env = env
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for spec in self.specs:
            self._tasks.append(asyncio.create_task(self._keep_running(spec)))

    async def _spawn(self, spec: S) -> asyncio.subprocess.Process:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leofs", "--log-level", str(level), self.command,
            msgspec.json.encode(spec).decode(), env={**os.environ, **self.env} if self.env else None,
        )  # fmt: skip

    async def _keep_running(self, spec: S) -> None:
        while not self._stopping:
            proc = self.procs[spec.index] = await self._spawn(spec)
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("gateway worker %d exited with %s; starting it again", spec.index, code)
            await asyncio.sleep(RESTART_DELAY)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every running worker."""
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM every worker (they finish their requests), SIGKILL what is left after a while."""
        self._stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waits = [asyncio.wait_for(p.wait(), STOP_TIMEOUT) for p in self.procs.values()]
        for result, proc in zip(await asyncio.gather(*waits, return_exceptions=True), self.procs.values(),
                                strict=True):  # fmt: skip
            if isinstance(result, BaseException) and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when ``parent`` exits (exit now if it already did)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
