"""Optional TLS on the links between cluster processes (docs/internal-api.md, "TLS").

Every cluster member holds a certificate signed by the cluster's CA. A process with internal TLS
serves its internal ports with it and requires the peer's certificate (mutual TLS, against the same
CA); as a client it presents it and verifies the peer's certificate against the CA and the host of
the address it dials (an IP SAN for an IP address). The cluster secret is still checked on top:
TLS keeps the traffic private and proves cluster membership to the transport, the secret stays the
authorisation. Off unless all three files are given.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from leofs.fsmode import check_private_file

#: bytes read from a container file per piece when a body is streamed over TLS (no sendfile there)
FILE_PIECE = 1024 * 1024
#: seconds a peer has to complete the TLS handshake on a server port
HANDSHAKE_TIMEOUT = 10.0


class TlsConfigError(ValueError):
    """The internal TLS files are incomplete, unreadable, not private, or not a usable key pair."""


@dataclass(frozen=True)
class InternalTls:
    """The member's certificate (chain) and key, and the cluster CA, as PEM files."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def from_options(cls, cert: str | Path | None, key: str | Path | None, ca: str | Path | None) -> InternalTls | None:
        """The TLS settings of a role, or None when none of the three is set; TlsConfigError when only
        some are, or the files cannot be used (checked now: a role fails at start, not at its first call)."""
        given = {"internal_tls_cert": cert, "internal_tls_key": key, "internal_tls_ca": ca}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise TlsConfigError(f"internal TLS needs internal_tls_cert, internal_tls_key and internal_tls_ca; "
                                 f"missing {', '.join(missing)}")  # fmt: skip
        assert cert and key and ca
        tls = cls(Path(cert), Path(key), Path(ca))
        for name, path in (("internal_tls_cert", tls.cert), ("internal_tls_key", tls.key), ("internal_tls_ca", tls.ca)):
            if not path.is_file():
                raise TlsConfigError(f"{name}: no such file: {path}")
        try:
            check_private_file(tls.key)
        except ValueError as exc:
            raise TlsConfigError(f"internal_tls_key: {exc}") from None
        tls.server_context()
        tls.client_context()
        return tls

    def _load(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(str(self.cert), str(self.key))
            ctx.load_verify_locations(cafile=str(self.ca))
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(f"internal TLS files {self.cert}, {self.key}, {self.ca}: {exc}") from None
        return ctx

    @cached_property
    def _server(self) -> ssl.SSLContext:
        ctx = self._load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    @cached_property
    def _client(self) -> ssl.SSLContext:
        return self._load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # CERT_REQUIRED, check_hostname

    def server_context(self) -> ssl.SSLContext:
        """For the internal ports: our certificate; the peer's is required and checked against the CA
        (one context per process: its session cache is shared by every connection)."""
        return self._server

    def client_context(self) -> ssl.SSLContext:
        """For calls to peers: our certificate; the peer's checked against the CA and the host dialled."""
        return self._client


def is_tls(transport: object) -> bool:
    """Whether an asyncio transport (or aiohttp's) encrypts: then ``loop.sendfile`` must not be used."""
    get = getattr(transport, "get_extra_info", None)
    return get is not None and get("ssl_object") is not None


async def pread_pieces(fd: int, offset: int, count: int) -> AsyncIterator[bytes]:
    """``count`` bytes of file ``fd`` from ``offset``, in pieces read with ``os.pread`` in a thread.

    What a TLS connection sends instead of sendfile: asyncio's fallback for sendfile on TLS seeks
    the file object, and the offset of a dup'ed container descriptor is shared with every other
    reply reading the same log (they would read each other's bytes); pread has no shared offset.
    ConnectionResetError when the file ends early (truncated)."""
    done = 0
    while done < count:
        piece = await asyncio.to_thread(os.pread, fd, min(FILE_PIECE, count - done), offset + done)
        if not piece:
            raise ConnectionResetError(f"file ended after {done} of {count} bytes (truncated?)")
        done += len(piece)
        yield piece
