"""Reading through each process that shares a port: a request on a new connection lands on the
process the kernel picks (SO_REUSEPORT), and its request id names that process."""

from __future__ import annotations

import time
import urllib.request


def anonymous_get(url: str) -> tuple[str, bytes]:
    """GET on a new connection: which process answered (the request id's per-process prefix,
    gateway/context.py), and the body."""
    with urllib.request.urlopen(url, timeout=30) as got:
        assert got.status == 200
        return got.headers["x-amz-request-id"][:8], got.read()


def answers(url: str, processes: int = 2, until: int = 3, limit: float = 60.0) -> dict[str, list[bytes]]:
    """Bodies per process, GETting on new connections until each of ``processes`` answered
    ``until`` times."""
    seen: dict[str, list[bytes]] = {}
    deadline = time.monotonic() + limit
    while len(seen) < processes or min(len(v) for v in seen.values()) < until:
        assert time.monotonic() < deadline, f"not every process answered: {seen}"
        process, body = anonymous_get(url)
        seen.setdefault(process, []).append(body)
    return seen
