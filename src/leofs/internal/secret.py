"""The cluster secret: how long it must be, and how every listener checks it.

Every internal and admin listener (manager, storage node, the gateway's admin listener, the embedded
server's admin API) compares the ``X-Leofs-Cluster-Secret`` header in constant time through a
:class:`SecretGuard`, which also throttles failures: each client address has a small bucket of
failed checks that refills slowly; once it is empty, that address's failed checks are answered
``429`` (and counted in the log once per burst) instead of ``403``.

The right secret always passes, even from a throttled address. Every process of a host shares
that host's address: refusing the right secret there would let any local user, or one node left
with an old secret during a rotation, cut the whole host off from the cluster. Guessing gains
nothing from this: secrets have at least 16 bytes (about 96 bits of a generated one), far beyond
online guessing at any rate.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

from leofs.internal.messages import SECRET_HEADER

log = logging.getLogger("leofs.internal.secret")

#: shorter secrets are refused: 16 bytes of a generated secret are about 96 bits of entropy
MIN_SECRET_BYTES = 16
FAILURE_BURST = 10.0  # failed checks an address may make in a row
FAILURE_REFILL = 0.5  # failed checks per second it regains
MAX_TRACKED = 4096  # addresses remembered (the oldest is forgotten first)


def check_secret_length(secret: str) -> None:
    """Raise ValueError for a cluster secret shorter than :data:`MIN_SECRET_BYTES`."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the cluster secret must be at least {MIN_SECRET_BYTES} bytes long "
                         f"(this one has {len(secret.encode())}); generate one with: "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


class SecretGuard:
    """Checks the cluster secret of requests, throttling addresses that keep getting it wrong."""

    def __init__(self, secret: str, *, burst: float = FAILURE_BURST, refill: float = FAILURE_REFILL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.expected = secret.encode()
        self.burst = burst
        self.refill = refill
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # address -> (tokens, when counted)
        self._throttled: set[str] = set()  # addresses whose throttling was logged

    def _available(self, peer: str, now: float) -> float:
        tokens, when = self._tokens.get(peer, (self.burst, now))
        return min(self.burst, tokens + (now - when) * self.refill)

    def refusal(self, request: web.BaseRequest) -> web.Response | None:
        """None when ``request`` carries the secret; else the answer: 403, or 429 while its
        address is throttled."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if hmac.compare_digest(given, self.expected):
            return None
        wait = self.failed(request.remote or "")
        if wait:
            return web.json_response({"ok": False, "error": "throttled",
                                      "message": "too many failed cluster-secret checks; retry later"},
                                     status=429, headers={"Retry-After": str(wait)})
        return web.json_response({"ok": False, "error": "forbidden", "message": "bad cluster secret"}, status=403)

    def failed(self, peer: str) -> int:
        """Count a failed check from ``peer`` (any protocol); 0 to answer 403, else the seconds
        it must wait (answer 429: throttled)."""
        now = self.clock()
        tokens = self._available(peer, now)
        if tokens < 1.0:
            if peer not in self._throttled:
                self._throttled.add(peer)
                log.warning("failed cluster-secret checks from %s: throttled", peer)
            return max(1, int((1.0 - tokens) / self.refill) + 1)
        self._throttled.discard(peer)
        self._tokens.pop(peer, None)  # re-inserted last: the dict's order is the age order
        self._tokens[peer] = (tokens - 1.0, now)
        if len(self._tokens) > MAX_TRACKED:
            del self._tokens[next(iter(self._tokens))]
        return 0
