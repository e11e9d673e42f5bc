"""Node processes of a :class:`~tests.support.cluster.LeofsCluster` under faults: SIGKILL, SIGSTOP
and SIGCONT, restart; and :class:`ProxiedCluster`, whose storage nodes are reached by every other
process through a :class:`~tests.cluster.faults.proxy.TcpProxy` (``leofs storage
--advertise-address``), so a test can delay, drop or black-hole one node's traffic."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.cluster.faults.proxy import TcpProxy
from tests.support.cluster import LeofsCluster
from tests.support.servers import process_tree


def kill(cluster: LeofsCluster, name: str) -> None:
    """SIGKILL the storage node ``name``: no chance to flush or close anything."""
    cluster.storage[name].kill()


def restart(cluster: LeofsCluster, name: str) -> None:
    """Start the storage node ``name`` again (same data directory, same ports)."""
    cluster.storage[name].start()


def _signal(cluster: LeofsCluster, name: str, sig: signal.Signals) -> None:
    proc = cluster.storage[name].proc
    assert proc is not None and proc.poll() is None, f"{name} is not running"
    for pid in process_tree(proc.pid):
        os.kill(pid, sig)


def pause(cluster: LeofsCluster, name: str) -> None:
    """SIGSTOP: the node's sockets still accept connections (the kernel does), nothing answers."""
    _signal(cluster, name, signal.SIGSTOP)


def resume(cluster: LeofsCluster, name: str) -> None:
    """SIGCONT a paused node."""
    _signal(cluster, name, signal.SIGCONT)


@contextlib.contextmanager
def paused(cluster: LeofsCluster, name: str) -> Iterator[None]:
    """The node is SIGSTOPped inside the block and always SIGCONTed after it."""
    pause(cluster, name)
    try:
        yield
    finally:
        resume(cluster, name)


class ProxiedCluster(LeofsCluster):
    """A :class:`LeofsCluster` whose storage nodes advertise a proxy's address: the manager, the
    gateway and the other nodes reach each node through ``proxies[name]`` (the node binds its own
    port; tests reading one replica directly use :meth:`storage_address`, which bypasses the proxy)."""

    def __init__(self, base: Path, **kwargs: Any) -> None:
        self.proxies: dict[str, TcpProxy] = {}
        super().__init__(base, **kwargs)

    def _pick_ports(self) -> None:
        super()._pick_ports()
        for name, node in self.storage.items():
            target = ("127.0.0.1", node.ports[0])
            proxy = self.proxies.get(name)
            if proxy is None or proxy.target != target:
                if proxy is not None:
                    proxy.close()
                proxy = self.proxies[name] = TcpProxy(target)
            node.args += ["--advertise-address", proxy.address]

    def advertised(self, name: str) -> str:
        return self.proxies[name].address

    def close_proxies(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()
        self.proxies.clear()
