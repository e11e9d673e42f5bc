"""The same ring gives the same answers and hash in another interpreter (other hash seed, other order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from leofs.ring import Member, build_ring, ring_from_bytes

SCRIPT = r"""
import json, sys
from leofs.ring import Member, Ring, build_ring, ring_from_bytes
spec = json.loads(sys.argv[1])
members = [Member(**m) for m in spec["members"]]
ring = build_ring(members, replicas=spec["replicas"], rack_aware_replicas=spec["k"])
keys = [f"bucket-{i % 7}/object/{i}".encode() for i in range(spec["keys"])]
print(json.dumps({
    "hash": ring.hash,
    "bytes": ring.to_bytes().hex(),
    "lookups": [[m.name for m in ring.redundancy(k)] for k in keys],
    "handoff": [[m.name for m in ring.handoff(k, 2)] for k in keys[:50]],
    "decoded_hash": ring_from_bytes(bytes.fromhex(spec["foreign"])).hash,
}))
"""

MEMBERS = [
    Member(f"storage_{i}@10.0.0.{i}", f"10.0.0.{i}:4010", rack=f"rack{i % 3}", vnodes=168 + 8 * (i % 2))
    for i in range(9)
]


def run_elsewhere(members: list[Member], hashseed: str, foreign: bytes) -> dict[str, Any]:
    spec = {
        "members": [
            {"name": m.name, "address": m.address, "rack": m.rack, "vnodes": m.vnodes} for m in members
        ],
        "replicas": 3,
        "k": 2,
        "keys": 300,
        "foreign": foreign.hex(),
    }
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)], env=env, capture_output=True, check=True, timeout=60
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_same_ring_in_other_processes() -> None:
    ring = build_ring(MEMBERS, replicas=3, rack_aware_replicas=2)
    keys = [f"bucket-{i % 7}/object/{i}".encode() for i in range(300)]
    mine = [[m.name for m in ring.redundancy(k)] for k in keys]
    results = [
        run_elsewhere(MEMBERS, "1", ring.to_bytes()),
        run_elsewhere(list(reversed(MEMBERS)), "2", ring.to_bytes()),
        run_elsewhere(MEMBERS[4:] + MEMBERS[:4], "random", ring.to_bytes()),
    ]
    for res in results:
        assert res["hash"] == ring.hash
        assert bytes.fromhex(res["bytes"]) == ring.to_bytes()
        assert res["lookups"] == mine
        assert res["handoff"] == [[m.name for m in ring.handoff(k, 2)] for k in keys[:50]]
        assert res["decoded_hash"] == ring.hash
        assert ring_from_bytes(bytes.fromhex(res["bytes"])).hash == ring.hash
    assert len({tuple(x) for x in mine}) > 20  # the lookups are not trivially all alike
