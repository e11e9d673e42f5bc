"""The embedded server's admin API throttles failed cluster-secret checks per client address."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.servers import CLUSTER_SECRET, LeofsServer


def status_of(server: LeofsServer, secret: str) -> int:
    request = urllib.request.Request(f"http://{server.admin}/adm/get-users", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "X-Leofs-Cluster-Secret": secret})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_failed_secret_checks_on_the_embedded_admin_api_are_throttled(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data", extra_args=["--workers", "1"])
    server.start()
    try:
        statuses = [status_of(server, "a-wrong-guess-of-the-secret") for _ in range(12)]
        assert statuses[0] == 403 and statuses[-1] == 429, statuses
        assert status_of(server, "wrong-secret-again-0000") == 429  # failures stay throttled
        assert status_of(server, CLUSTER_SECRET) == 200  # the right secret passes: the host shares its address
        deadline = time.monotonic() + 30
        while status_of(server, "wrong-secret-once-more-00") != 403:  # one failure's worth refills in 2 s
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.stop()
