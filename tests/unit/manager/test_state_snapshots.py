"""``GET /int/state`` builds and encodes its snapshot once per store version, over real loopback HTTP:
every gateway long-poll that a change wakes gets the same bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.manager.test_manager_http import AUTH, adm, manager, run

GATEWAYS = 5


def test_one_snapshot_per_version_for_every_waiting_gateway(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (mgr, client):
            assert mgr.watch is not None and mgr.state_api is not None
            snapshots = mgr.state_api.snapshots
            first = await (await client.get("/int/state", headers=AUTH)).read()
            again = await (await client.get("/int/state", headers=AUTH)).read()
            assert again == first and snapshots.encoded == 1  # the same version: not built again
            since = snapshots.store.version

            polls = [asyncio.ensure_future(client.get(f"/int/state?since={since}&wait=60", headers=AUTH))
                     for _ in range(GATEWAYS)]  # fmt: skip
            while mgr.watch.waiting < GATEWAYS:  # every poll parked before the change
                await asyncio.sleep(0.01)
            status, _ = await adm(client, "create-user", user_id="alice")
            assert status == 200
            bodies = [await (await asyncio.wait_for(p, 10)).read() for p in polls]
            assert len(set(bodies)) == 1 and b'"alice"' in bodies[0]
            assert snapshots.encoded == 2  # one more snapshot for all of them

    run(test)
