"""Command line: start the servers, run the rows interleaved (A B A B ...), write JSON and Markdown.

Usage: ``python benchmarks/run.py [--quick] [--servers leofs,seaweedfs] [--workloads 'put-4k-*,get-*'] ...``
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import gc
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import procstat, report
from .client import S3Client
from .loadgen import LoadResult
from .servers import (
    ACCESS_KEY,
    SECRET_KEY,
    SERVER_TYPES,
    LeofsCluster,
    LeofsEmbedded,
    Server,
    ServerUnavailable,
)
from .sigv4 import Signer
from .workloads import BUCKET, GiB, KiB, MiB, Row, Target, build_rows, prepare, run_row

_UNITS = {"k": KiB, "m": MiB, "g": GiB}
_SPY_EXT = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    if text and text[-1] in _UNITS:
        return int(text[:-1]) * _UNITS[text[-1]]
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="leofs,seaweedfs",
                   help=f"comma list of {','.join(SERVER_TYPES)} (default: leofs,seaweedfs)")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke run: 1 rep, ~1.5 s per run, small sizes (8 MiB instead of 64 MiB/1 GiB, 1,000 keys)")
    p.add_argument("--workloads", default="*", help="comma list of row-id glob patterns, e.g. 'put-4k-*,list-*'")
    p.add_argument("--duration", type=float, help="seconds per timed run (default 5, quick 1.5)")
    p.add_argument("--reps", type=int, help="interleaved repetitions per row and server (default 3, quick 1)")
    p.add_argument("--sizes", default="4k,256k", help="small object sizes (default 4k,256k)")
    p.add_argument("--concurrency", default="16,64", help="client counts for small objects (default 16,64)")
    p.add_argument("--large", help="SIZE:CLIENTS list for large PUT/GET (default 64m:4,1g:1; quick 8m:4)")
    p.add_argument("--list-keys", help="bucket sizes for listings (default 10000,100000; quick 1000)")
    p.add_argument("--mixed-keys", type=int, help="key space of the mixed load (default 10000; quick 500)")
    p.add_argument("--mixed-concurrency", default="16,64", help="client counts for the mixed load (default 16,64)")
    p.add_argument("--leofs-args", default="", help="extra arguments for `leofs server`, e.g. '--no-sync'")
    p.add_argument("--baseline-src", metavar="DIR",
                   help="directory holding another copy of the leofs package (e.g. a copy of src/ before a change); "
                        "run it as server 'leofs-base' to compare before/after in the same interleaved run")
    p.add_argument("--baseline-args", default=None,
                   help="arguments for leofs-base instead of --leofs-args (e.g. '--workers 1'), and for every "
                        "process of leofs-cluster-base (e.g. '--internal-protocol http'); with this, "
                        "--baseline-src defaults to this tree's src")
    p.add_argument("--cluster-gateway-args", default="",
                   help="extra arguments for the gateway of leofs-cluster, e.g. '--workers 2'")
    p.add_argument("--cluster-base-gateway-args", default="",
                   help="gateway arguments of leofs-cluster-base (a second cluster, for A/B runs of gateway options)")
    p.add_argument("--cluster-base-storage-args", default="",
                   help="storage node arguments of leofs-cluster-base only, e.g. '--no-sync' (a diagnosis)")
    p.add_argument("--cluster-internal-tls", action="store_true",
                   help="leofs-cluster (not -base) with internal TLS on every link: a throwaway CA and one "
                        "certificate for 127.0.0.1 (trustme), given through LEOFS_INTERNAL_TLS_*")
    p.add_argument("--out", default="s3bench-results.json", help="JSON results file (Markdown next to it, .md)")
    p.add_argument("--workdir", help="where servers keep their data (default: a new temp dir, removed after)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (data and server logs)")
    p.add_argument("--time-limit", type=float, default=3600, help="stop starting new runs after this many seconds")
    p.add_argument("--py-spy", metavar="DIR", help="record a py-spy profile of each leofs run (rep 0) into DIR")
    p.add_argument("--py-spy-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"],
                   help="py-spy output: flamegraph (.svg), raw collapsed stacks (.txt, see s3bench.flame)")
    return p.parse_args(argv)


def select_rows(args: argparse.Namespace) -> list[Row]:
    quick = args.quick
    large = args.large or ("8m:4" if quick else "64m:4,1g:1")
    rows = build_rows(
        quick=quick,
        sizes=[parse_size(s) for s in args.sizes.split(",") if s],
        concurrencies=[int(c) for c in (("16" if quick else args.concurrency).split(","))],
        large=[(parse_size(s.split(":")[0]), int(s.split(":")[1])) for s in large.split(",") if s],
        list_keys=[int(n) for n in (args.list_keys or ("1000" if quick else "10000,100000")).split(",") if n],
        mixed_keys=args.mixed_keys or (500 if quick else 10000),
        mixed_concurrency=[int(c) for c in (("16" if quick else args.mixed_concurrency).split(","))],
    )
    patterns = [p.strip() for p in args.workloads.split(",") if p.strip()]
    return [r for r in rows if any(fnmatch.fnmatch(r.id, p) for p in patterns)]


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


async def wait_ready(target: Target, timeout: float = 90) -> None:
    """Retry bucket creation and a first PUT/GET until the server answers them."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            await target.client.create_bucket(BUCKET)
            await target.client.put(BUCKET, "ready", b"ok")
            await target.client.get(BUCKET, "ready")
            return
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)
    raise ServerUnavailable(f"{target.name} did not serve S3 within {timeout:.0f} s: {last}")


def start_py_spy(server: Server, out_dir: Path, row: Row, duration: float,
                 fmt: str) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists() or not server.pids():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [spy, "record", "--pid", str(server.pids()[-1]), "--subprocesses", "--rate", "200", "--nonblocking",
           "--duration", str(max(1, math.ceil(duration))), "--format", fmt,
           "-o", str(out_dir / f"{server.name}-{row.id}.{_SPY_EXT[fmt]}")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.3)  # let it attach before the timed window starts
    return proc


def record(row: Row, target: Target, rep: int, res: LoadResult, cpu: float, rss: float, client_cpu: float,
           machine: float) -> dict[str, Any]:
    ops = max(res.ops, 1)
    return {
        "row": row.id, "server": target.name, "rep": rep, "ops": res.ops, "errors": res.errors,
        "first_error": res.first_error, "elapsed_s": res.elapsed, "ops_s": res.ops_per_s, "mb_s": res.mb_per_s,
        "p50_ms": res.percentile_ms(50), "p99_ms": res.percentile_ms(99),
        "sec_per_op": res.percentile_ms(50) / 1000, "server_cpu_s": cpu, "cpu_ms_per_op": cpu / ops * 1000,
        "rss_peak_mib": rss, "client_cpu_ms_per_op": client_cpu / ops * 1000,
        "other_cpu_s": max(0.0, machine - cpu - client_cpu), "loadavg": os.getloadavg()[0],
    }


def show(rec: dict[str, Any], row: Row) -> None:
    head = report.headline(row, rec)
    err = f"  errors={rec['errors']} ({rec['first_error']})" if rec["errors"] else ""
    print(f"  {rec['row']:<18} {rec['server']:<16} rep {rec['rep']}  {head:>10.3f} {row.metric:<5} "
          f"p50 {rec['p50_ms']:7.2f} ms  p99 {rec['p99_ms']:8.2f} ms  cpu {rec['cpu_ms_per_op']:6.3f} ms/op  "
          f"rss {rec['rss_peak_mib']:6.0f} MiB  other-load {rec['other_cpu_s']:5.1f} s{err}", flush=True)


async def run_all(args: argparse.Namespace, rows: list[Row], servers: list[Server], runs: list[dict[str, Any]],
                  unavailable: dict[str, str], t_start: float) -> None:
    quick = args.quick
    duration = args.duration or (1.5 if quick else 5.0)
    reps = args.reps or (1 if quick else 3)
    conns = max([r.concurrency for r in rows] + [64])
    signer = Signer(ACCESS_KEY, SECRET_KEY)
    targets: list[tuple[Server, Target]] = []
    clients: list[S3Client] = []
    try:
        for server in servers:
            client = S3Client(server.endpoint, signer, conns)
            await client.__aenter__()
            clients.append(client)
            target = Target(server.name, client)
            try:
                await wait_ready(target)
            except ServerUnavailable as exc:
                unavailable[server.name] = str(exc)
                print(f"{server.name}: unavailable: {exc}", flush=True)
                continue
            targets.append((server, target))
        for row in rows:
            print(f"{row.id}: {row.title}", flush=True)
            for rep in range(reps):
                for server, target in targets:
                    if time.monotonic() - t_start > args.time_limit:
                        print("  time limit reached; skipping the rest", flush=True)
                        return
                    try:
                        await prepare(row, target, duration=duration, quick=quick)
                    except Exception as exc:
                        print(f"  {row.id} {server.name}: preparation failed: {exc}", flush=True)
                        continue
                    gc.collect()
                    spy = start_py_spy(server, Path(args.py_spy), row, duration, args.py_spy_format) \
                        if args.py_spy and rep == 0 and server.kind == "leofs" else None
                    pids = procstat.tree(server.pids())
                    procstat.reset_peak_rss(pids)
                    cpu0, mach0, me0 = procstat.cpu_seconds(pids), machine_busy_seconds(), time.process_time()
                    res = await run_row(row, target, duration=duration)
                    me1, mach1 = time.process_time(), machine_busy_seconds()
                    pids = procstat.tree(server.pids())
                    cpu1, rss = procstat.cpu_seconds(pids), procstat.peak_rss_mib(pids)
                    if spy is not None:
                        spy.wait(30)
                    rec = record(row, target, rep, res, cpu1 - cpu0, rss, me1 - me0, mach1 - mach0)
                    runs.append(rec)
                    show(rec, row)
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = select_rows(args)
    if not rows:
        print("no workload matches --workloads", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVER_TYPES]
    if unknown:
        print(f"unknown server(s): {unknown}; choose from {list(SERVER_TYPES)}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="s3bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers: list[Server] = []
    started: list[Server] = []
    unavailable: dict[str, str] = {}
    runs: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/run.py",
                                                                            *(argv or sys.argv[1:])]),
                            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_info(),
                            "rows": [r.id for r in rows]}
    t_start = time.monotonic()
    try:
        for name in names:
            cls = SERVER_TYPES[name]
            if name in ("leofs", "leofs-base"):
                base = name == "leofs-base"
                if base and not args.baseline_src and args.baseline_args is None:
                    print("leofs-base needs --baseline-src DIR or --baseline-args ARGS", file=sys.stderr)
                    return 2
                extra = args.baseline_args if base and args.baseline_args is not None else args.leofs_args
                server = LeofsEmbedded(workdir / name, shlex.split(extra), name=name,
                                       src=args.baseline_src if base else None)
            elif name in ("leofs-cluster", "leofs-cluster-base"):
                base = name == "leofs-cluster-base"
                gw_args = shlex.split(args.cluster_base_gateway_args if base else args.cluster_gateway_args)
                # --baseline-args go to every process of the baseline cluster (e.g. --internal-protocol http)
                both = shlex.split(args.baseline_args or "") if base else []
                storage = shlex.split(args.cluster_base_storage_args) if base else []
                server = LeofsCluster(workdir / name, gateway_args=gw_args + both, name=name,
                                      storage_args=both + storage,
                                      src=args.baseline_src if base else None,
                                      internal_tls=args.cluster_internal_tls and not base)  # fmt: skip
            else:
                server = cls(workdir / name)
            servers.append(server)
            try:
                server.start()
                started.append(server)
                print(f"{name}: {server.version} at {server.endpoint} (pids {server.pids()})", flush=True)
            except ServerUnavailable as exc:
                unavailable[name] = str(exc).splitlines()[0][:300]
                print(f"{name}: unavailable: {exc}", flush=True)
                server.stop()
        asyncio.run(run_all(args, rows, started, runs, unavailable, t_start))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; writing what was measured", file=sys.stderr)
    finally:
        for server in started:
            server.stop()
        meta["versions"] = {s.name: s.version for s in started}
        meta["seconds"] = round(time.monotonic() - t_start, 1)
        meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        out = Path(args.out)
        _, md = report.write(out, meta, rows, runs, [s.name for s in servers], unavailable)
        print()
        print(md)
        print(f"results: {out} and {out.with_suffix('.md')}; {meta['seconds']} s")
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            print(f"kept {workdir}")
    return 0
