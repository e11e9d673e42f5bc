"""Over the manager's real HTTP API: a storage node that registers again is `recovering`, status
shows what it waits for, and heartbeats reporting empty repair queues toward it make it `running`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leofs.cli.adm import _show_cluster_status
from leofs.internal.messages import MSGPACK, HeartbeatRequest, RegisterRequest, encoder
from tests.unit.manager.test_manager_http import AUTH, adm, manager, register, run


def test_status_shows_what_a_recovering_node_waits_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def test() -> None:
        async with manager(tmp_path, n=2) as (_, client):
            for i in (1, 2):
                await register(client, RegisterRequest("storage", f"s{i}", f"127.0.0.1:{i}"))
            status, answer = await adm(client, "start")
            assert status == 200, answer

            async def beat(name: str, **queue: int) -> None:
                body = encoder.encode(HeartbeatRequest("storage", name, repair_queue=dict(queue)))
                resp = await client.post("/int/heartbeat", data=body, headers={**AUTH, "Content-Type": MSGPACK})
                assert resp.status == 200, await resp.text()

            async def s2() -> dict[str, Any]:
                nodes = (await adm(client, "status"))[1]["result"]["nodes"]
                return next(n for n in nodes if n["name"] == "s2")

            await register(client, RegisterRequest("storage", "s2", "127.0.0.1:2"))  # restarted
            node = await s2()
            assert node["state"] == "recovering" and node["repair_pending"] == {"s1": None}
            await beat("s1", s2=3)
            await beat("s1", s2=3)
            assert (await s2())["repair_pending"] == {"s1": 3}
            _show_cluster_status((await adm(client, "status"))[1]["result"])
            assert "s2 is recovering: waiting for the repair queues of s1 (3 tasks)" in capsys.readouterr().out
            await beat("s1")
            node = await s2()
            assert node["state"] == "running" and "repair_pending" not in node

    run(test)
