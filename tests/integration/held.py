"""Requests held open half-way, to make write races happen: a PUT whose body is sent but for its
last byte, released at the moment the test chooses (several at once); a GET read slowly."""

from __future__ import annotations

import socket
from typing import Any

from tests.integration.s3_helpers import read_response, signed_headers, status_of


class HeldPut:
    """A signed request sent but for its last byte (of the body, or of the headers when there is
    no body: then the server has not even begun it); :meth:`release` sends that byte."""

    def __init__(self, server: Any, path: str, body: bytes = b"", *, method: str = "PUT",
                 headers: dict[str, str] | None = None) -> None:
        length = {"Content-Length": str(len(body))} if body or method in ("PUT", "POST") else {}
        hdrs = signed_headers(server, method, path, headers={**length, **(headers or {})}, payload="UNSIGNED-PAYLOAD")
        self.sock = socket.create_connection((server.host, server.port), timeout=60)
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        whole = head.encode() + body
        self.sock.sendall(whole[:-1])
        self.last = whole[-1:]

    def release(self) -> None:
        self.sock.sendall(self.last)

    def response(self) -> tuple[int, bytes]:
        """The status and the whole raw response."""
        try:
            raw = read_response(self.sock)
        finally:
            self.sock.close()
        return status_of(raw), raw


def release_together(held: list[HeldPut]) -> list[tuple[int, bytes]]:
    """Send every held request's last byte back to back, then collect the responses in order."""
    for h in held:
        h.release()
    return [h.response() for h in held]
