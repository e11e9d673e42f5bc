"""What one gateway process lets clients hold: connections and request-body bytes.

A client that opens connections or starts uploads and then stalls must not pin the process's memory
without limit. Beyond either cap a request gets S3's ``503 SlowDown`` at once (clients back off and
retry), never a wait. A body that stops arriving for ``body_idle_timeout`` seconds ends with S3's
``400 RequestTimeout`` (see :mod:`leofs.gateway.body`).
"""

from __future__ import annotations

from aiohttp import web

from leofs.s3.errors import S3Error

#: besides its share of the body, what aiohttp buffers for one request before it stops reading the
#: socket (its read buffer high-water mark, twice 64 KiB)
READ_BUFFER = 128 * 1024


class ProcessLimits:
    """The connection cap and the body-byte budget of one process (one event loop)."""

    def __init__(self, *, max_connections: int, body_budget: int, chunk_size: int) -> None:
        self.max_connections = max_connections
        self.body_budget = body_budget
        self.chunk_size = chunk_size
        self.body_held = 0
        self._servers: list[web.Server] = []

    def track(self, server: web.Server | None) -> None:
        """Count the connections of this listener too (call after the runner's ``setup``): the
        cap is the process's, over its S3 and REST listeners."""
        if server is not None:
            self._servers.append(server)

    @property
    def connections(self) -> int:
        return sum(len(server.connections) for server in self._servers)

    def check_connections(self) -> None:
        """SlowDown when this process holds more connections than its cap."""
        if self.connections > self.max_connections:
            raise S3Error("SlowDown", "Too many connections to this server; please retry later.")

    def body_share(self, request: web.BaseRequest) -> int:
        """The most of this request's body the gateway buffers at once: the body itself when
        small, else one chunk being cut (the chunks being written have their own budget)."""
        if not request.body_exists:
            return 0
        length = request.content_length
        return (min(length, self.chunk_size) if length is not None else self.chunk_size) + READ_BUFFER

    def check_body(self, share: int) -> None:
        """SlowDown when a body needing ``share`` bytes does not fit in the budget now."""
        if share and self.body_held + share > self.body_budget:
            raise S3Error("SlowDown", "Too many request bodies in progress on this server; please retry later.")

    def reserve_body(self, share: int) -> int:
        """Hold ``share`` bytes of the budget (SlowDown when it is spent); give them back with
        :meth:`release_body`."""
        self.check_body(share)
        self.body_held += share
        return share

    def release_body(self, share: int) -> None:
        self.body_held -= share
