"""The internal HTTP client: one pooled keep-alive session per process, with the cluster secret
(and, with internal TLS, the member's certificate: :mod:`leofs.internal.tls`)."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from leofs.internal.messages import SECRET_HEADER


class InternalClient:
    """Pooled aiohttp session for calls between cluster processes."""

    def __init__(self, secret: str, *, limit_per_host: int = 64, timeout: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        """``tls``: a client context (:meth:`leofs.internal.tls.InternalTls.client_context`): every
        call goes to ``https://``, the peer verified for the host of its address."""
        self.secret = secret
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self._limit = limit_per_host
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=2.0)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._limit, keepalive_timeout=30,
                                             ssl=self.tls if self.tls is not None else True)  # fmt: skip
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers={SECRET_HEADER: self.secret},
                auto_decompress=False,
                # X-Leofs-Entry / X-Leofs-Put carry up to 8 KiB of metadata as base64 msgpack
                max_line_size=65536, max_field_size=65536,
            )
        return self._session

    def request(self, method: str, address: str, path: str, **kwargs: Any) -> Any:
        """``session.request`` against ``http(s)://address/path`` (an async context manager)."""
        return self.session.request(method, f"{self.scheme}://{address}{path}", **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
