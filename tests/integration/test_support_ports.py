"""The test harness itself: a server whose port was taken between free_port() and the child's bind
moves to new ports instead of failing the fixture (two fixtures racing for one port)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.servers import LeofsServer


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_taken_before_the_first_start_moves_the_server(tmp_path: Path, workers: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        srv = LeofsServer(tmp_path / "data", extra_args=["--workers", workers])
        # what a race looks like: the port picked is bound by someone else by the time the child starts
        address = srv.service.args.index("--address") + 1
        srv.service.args[address] = f"127.0.0.1:{taken}"
        srv.service.ports[0] = srv.port = taken
        try:
            srv.start()
            assert srv.port != taken and srv.ping()
            assert "address already in use" in srv.log().lower()  # the first attempt did meet the race
            srv.kill()  # and a restart keeps the new port (SO_REUSEADDR: no wait after SIGKILL)
            port = srv.port
            srv.start()
            assert srv.port == port and srv.ping()
        finally:
            srv.stop()
