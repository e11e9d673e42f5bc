"""Profile every process of a 3-node cluster (py-spy, raw stacks) under one small-object workload.

``python benchmarks/cluster_profile.py --op delete --seconds 8 --out DIR [--gateway-args ...]``

Starts manager + 3 storage nodes + gateway (N=3 W=2 R=1 D=2, as the benchmark harness does), writes
the objects the workload needs, then records each process with ``py-spy record --format raw`` while
16 clients run the operation, and prints per process: CPU seconds used (from /proc), samples, and the
top inclusive frames (``s3bench.flame``). The raw files stay in DIR for flame graphs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from s3bench.client import S3Client  # noqa: E402
from s3bench.flame import summarise  # noqa: E402
from s3bench.loadgen import run_closed_loop  # noqa: E402
from s3bench.sigv4 import Signer  # noqa: E402
from tests.support.cluster import LeofsCluster  # noqa: E402
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY  # noqa: E402

BODY = os.urandom(4096)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def prefill(endpoint: str, keys: int, concurrency: int) -> None:
    """The bucket, and ``keys`` objects named ``k{worker}-{i}`` (not profiled)."""
    signer = Signer(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    async with S3Client(endpoint, signer, connections=concurrency) as s3:
        await s3.create_bucket("prof")
        per = keys // concurrency
        # each worker writes exactly its ``per`` keys (a cap on the total would leave some short)
        await run_closed_loop(
            lambda w, i: s3.put("prof", f"k{w}-{i}", BODY), concurrency, 0.0, min_ops_per_worker=per, timeout=600.0
        )


async def timed(endpoint: str, op: str, seconds: float, keys: int, concurrency: int) -> tuple[int, int, str]:
    signer = Signer(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    per = keys // concurrency
    async with S3Client(endpoint, signer, connections=concurrency) as s3:
        fn = {
            "put": lambda w, i: s3.put("prof", f"p{w}-{i}", BODY),
            "get": lambda w, i: s3.get("prof", f"k{w}-{i % per}"),
            "head": lambda w, i: s3.head("prof", f"k{w}-{i % per}"),
            "delete": lambda w, i: s3.delete("prof", f"k{w}-{i}"),
        }[op]
        res = await run_closed_loop(fn, concurrency, seconds)
        return res.ops, res.errors, res.first_error


def make_public(endpoint: str, keys: int, concurrency: int) -> None:
    """Set every prefilled object's ACL to public-read (boto3 signs the x-amz-acl header)."""
    import boto3  # a test dependency; only this option needs it

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ROOT_ACCESS_KEY,
                      aws_secret_access_key=ROOT_SECRET_KEY, region_name="us-east-1")
    per = keys // concurrency
    for w in range(concurrency):
        for i in range(per):
            s3.put_object_acl(Bucket="prof", Key=f"k{w}-{i}", ACL="public-read")


def top(path: Path, n: int) -> None:
    total, self_c, incl = summarise(path.read_text())
    print(f"   {total} samples; inclusive:")
    for name, count in incl.most_common(n):
        print(f"   {count / max(total, 1) * 100:5.1f} %  {name}")
    print("   self:")
    for name, count in self_c.most_common(n // 2):
        print(f"   {count / max(total, 1) * 100:5.1f} %  {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", choices=["put", "get", "head", "delete"], default="delete")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--keys", type=int, default=40000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--gateway-args", default="")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--public", action="store_true",
                   help="make the objects public-read after writing them (http cache mode caches only those)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    base = Path(tempfile.mkdtemp(prefix="leofs-prof-"))
    cluster = LeofsCluster(base, gateway_args=tuple(args.gateway_args.split()))
    cluster.start()
    try:
        procs = {"gateway": cluster.gateway, **cluster.storage}
        pids = {name: svc.proc.pid for name, svc in procs.items() if svc.proc is not None}
        asyncio.run(prefill(cluster.endpoint, args.keys, args.concurrency))
        if args.public:
            make_public(cluster.endpoint, args.keys, args.concurrency)
        before = {n: cpu_seconds(pid) for n, pid in pids.items()}
        spies = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--duration",
                    str(int(args.seconds) + 1),
                    "--format",
                    "raw",
                    "-o",
                    str(args.out / f"{n}-{args.op}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n, pid in pids.items()
        ]
        time.sleep(0.5)
        t0 = time.perf_counter()
        ops, errors, first_error = asyncio.run(
            timed(cluster.endpoint, args.op, args.seconds, args.keys, args.concurrency)
        )
        wall = time.perf_counter() - t0
        after = {n: cpu_seconds(pid) for n, pid in pids.items()}
        for s in spies:
            s.wait(timeout=60)
        total = sum(after[n] - before[n] for n in pids)
        print(
            f"{args.op}: {ops} ops in {wall:.1f} s ({ops / wall:.0f} ops/s), {errors} errors; "
            f"server CPU {total / max(ops, 1) * 1000:.3f} ms/op" + (f" (first error: {first_error})" if errors else "")
        )
        for n in pids:
            used = after[n] - before[n]
            print(f"\n== {n}: {used / max(ops, 1) * 1000:.3f} ms CPU/op")
            top(args.out / f"{n}-{args.op}.txt", args.top)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
