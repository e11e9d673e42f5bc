#!/usr/bin/env python
"""The gateway object cache, measured: ``python benchmarks/cache.py --help``.

GET ops/s and MB/s of 4 KiB, 256 KiB and 8 MiB objects on the 3-node cluster (N=3 W=2 R=1) with
the cache on (RAM 256 MiB, disk tier 1 GiB for the 8 MiB objects' chunks) and off, and on the
embedded server with its cache off (its default) and on; then the hit ratio and the body bytes the
cache kept off the internal network under a Zipf key popularity (s=0.99) over a key space larger
than the RAM tier. Every GET of the timed window reads one of a few hot keys, the case a cache is
for. Runs from the repository root with the project's venv active; configurations run one after
the other (not interleaved), so on a shared machine read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3bench import procstat
from s3bench.client import S3Client
from s3bench.loadgen import run_closed_loop
from s3bench.servers import ACCESS_KEY, SECRET_KEY, LeofsCluster, LeofsEmbedded, Server
from s3bench.sigv4 import Signer
from s3bench.workloads import ZipfSampler

KiB, MiB = 1 << 10, 1 << 20
BUCKET = "cachebench"
SIZES = ((4 * KiB, 16, 16), (256 * KiB, 16, 16), (8 * MiB, 4, 4))  # size, clients, hot keys


def metrics(endpoint: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{endpoint}/_leofs_adm/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for m in re.finditer(r"^(leofs_gateway_cache_\w+(?:\{[^}]*\})?) (\S+)$", text, re.MULTILINE):
        out[m.group(1)] = float(m.group(2))
    return out


def _put_public(endpoint: str, key: str, body: bytes) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                      region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ACL="public-read")


async def get_rows(server: Server, duration: float, sizes: Any = SIZES, public: bool = False) -> list[dict[str, Any]]:
    rows = []
    async with S3Client(server.endpoint, Signer(ACCESS_KEY, SECRET_KEY)) as client:
        await client.create_bucket(BUCKET)
        for size, clients, hot in sizes:
            body = bytes(range(256)) * (size // 256)
            keys = [f"{size}/{i}" for i in range(hot)]
            for key in keys:
                if public:  # http mode caches public objects only (boto3 signs the ACL header)
                    await asyncio.to_thread(_put_public, server.endpoint, key, body)
                else:
                    await client.put(BUCKET, key, body)
            for key in keys:  # warm: the first GET of each key is a miss
                await client.get(BUCKET, key)

            async def op(w: int, i: int, keys: list[str] = keys) -> int:
                return await client.get(BUCKET, keys[(w + i) % len(keys)])

            pids = procstat.tree(server.pids())
            cpu0 = procstat.cpu_seconds(pids)
            res = await run_closed_loop(op, clients, duration)
            # the servers' own CPU per GET: what other users of a shared machine disturb least
            cpu_ms = (procstat.cpu_seconds(pids) - cpu0) * 1000 / max(1, res.ops)
            rows.append({"size": size, "clients": clients, "ops_per_s": res.ops_per_s, "mb_per_s": res.mb_per_s,
                         "p50_ms": res.percentile_ms(50), "server_cpu_ms_per_op": cpu_ms, "errors": res.errors})
            print(f"  {server.name}: GET {size // KiB} KiB x{clients}: {res.ops_per_s:,.0f} ops/s "
                  f"{res.mb_per_s:,.1f} MB/s p50 {res.percentile_ms(50):.1f} ms server CPU {cpu_ms:.2f} ms/op "
                  f"errors {res.errors}", flush=True)
    return rows


async def zipf_row(server: Server, keys: int, size: int, requests: int, clients: int) -> dict[str, Any]:
    async with S3Client(server.endpoint, Signer(ACCESS_KEY, SECRET_KEY)) as client:
        await client.create_bucket(BUCKET)
        body = bytes(range(256)) * (size // 256)

        numbers = itertools.count()

        async def put(w: int, i: int) -> int:
            return await client.put(BUCKET, f"z/{next(numbers)}", body)

        await run_closed_loop(put, 16, 3600, max_ops=keys)
        names = [f"z/{n}" for n in range(keys)]
        sampler = ZipfSampler(len(names))
        before = metrics(server.endpoint)

        async def get(w: int, i: int) -> int:
            return await client.get(BUCKET, names[sampler()])

        res = await run_closed_loop(get, clients, 3600, max_ops=requests)
        after = metrics(server.endpoint)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    hits = sum(v for k, v in delta.items() if k.startswith("leofs_gateway_cache_hits_total"))
    misses = delta.get("leofs_gateway_cache_request_misses_total", 0)
    saved = delta.get("leofs_gateway_cache_saved_bytes_total", 0)
    return {"keys": len(names), "size": size, "requests": res.ops, "ops_per_s": res.ops_per_s,
            "hit_ratio": hits / (hits + misses) if hits + misses else 0.0, "body_bytes": res.bytes,
            "saved_bytes": saved, "saved_fraction": saved / res.bytes if res.bytes else 0.0}


def run(server: Server, work: Any) -> Any:
    try:
        server.start()
        return asyncio.run(work(server))
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per timed GET run (default 3)")
    p.add_argument("--zipf-keys", type=int, default=2000, help="key space of the Zipf run (default 2000)")
    p.add_argument("--zipf-size", type=int, default=64 * KiB, help="object size of the Zipf run (default 64 KiB)")
    p.add_argument("--zipf-ram", default="32MiB", help="RAM tier of the Zipf run (default 32MiB)")
    p.add_argument("--zipf-requests", type=int, default=20000, help="GETs of the Zipf run (default 20000)")
    p.add_argument("--configs", default="on,off,embedded,embedded-on,zipf",
                   help="which to run: on,off,embedded,embedded-on,http,zipf (default all but http)")
    p.add_argument("--max-size", type=int, default=8 * MiB, help="skip GET sizes above this (default 8 MiB)")
    p.add_argument("--reps", type=int, default=1, help="rounds over the configurations (default 1)")
    p.add_argument("--out", default="cache-bench.json", help="JSON results")
    args = p.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cachebench-") as tmp:
        base = Path(tmp)
        wanted = args.configs.split(",")
        sizes = [row for row in SIZES if row[0] <= args.max_size]
        configs: list[tuple[str, str, Any]] = [
            ("on", "cluster, cache on", lambda d: LeofsCluster(d, gateway_args=[
                "--cache-disk", f"{d / 'cache'}:1GiB"], name="cluster-cache-on")),
            ("off", "cluster, cache off", lambda d: LeofsCluster(d, gateway_args=["--cache-ram", "0"],
                                                                 name="cluster-cache-off")),
            ("http", "cluster, http mode", lambda d: LeofsCluster(d, gateway_args=["--cache-mode", "http"],
                                                                  name="cluster-cache-http")),
            ("embedded", "embedded, cache off", lambda d: LeofsEmbedded(d, name="embedded-cache-off")),
            ("embedded-on", "embedded, cache on", lambda d: LeofsEmbedded(d, ["--cache-ram", "256MiB"],
                                                                          name="embedded-cache-on")),
        ]
        n = 0
        for rep in range(args.reps):
            for short, label, make in configs:
                if short not in wanted:
                    continue
                print(f"{label} (round {rep + 1}):", flush=True)
                n += 1
                server = make(base / f"{short}{n}")
                rows = run(server, lambda s, short=short: get_rows(s, args.duration, sizes, public=short == "http"))
                results.setdefault(label, []).append(rows)
        if "zipf" in wanted:
            print("zipf:", flush=True)
            zipf = LeofsCluster(base / "zipf", gateway_args=["--cache-ram", args.zipf_ram], name="cluster-zipf")
            results["zipf"] = run(zipf, lambda s: zipf_row(s, args.zipf_keys, args.zipf_size, args.zipf_requests, 16))
            print(json.dumps(results["zipf"], indent=1), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
