"""CPU each process of an idle 3-node cluster burns: ``python benchmarks/idle_cpu.py [--seconds 20]``.

Starts manager + 3 storage nodes + gateway the way ``benchmarks/run.py`` does (``leofs-cluster``:
N=3 W=2 R=1 D=2), lets it settle, then reads each process's utime+stime from /proc before and after
``--seconds`` with no client load and prints CPU milliseconds per second (and % of one core) per
process. ``--src DIR`` runs the leofs package found in DIR (e.g. /work/main/src) for an A/B;
``--spy DIR`` also records each process with ``py-spy record --format raw`` meanwhile (to see what
wakes it; ``s3bench.flame`` summarises the files); ``--strace`` counts each process's system calls
with ``strace -c -f`` instead (the two cannot attach at once).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from s3bench.flame import summarise  # noqa: E402
from s3bench.procstat import cpu_seconds, tree  # noqa: E402
from s3bench.servers import LeofsCluster  # noqa: E402

NAMES = ["manager", "storage1", "storage2", "storage3", "gateway"]


def measure(cluster: LeofsCluster, seconds: float) -> dict[str, float]:
    """CPU seconds each process (with its children) used over ``seconds``."""
    trees = {name: tree([proc.pid]) for name, proc in zip(NAMES, cluster.procs, strict=True)}
    before = {name: cpu_seconds(pids) for name, pids in trees.items()}
    time.sleep(seconds)
    return {name: cpu_seconds(pids) - before[name] for name, pids in trees.items()}


def attach(cluster: LeofsCluster, args: argparse.Namespace) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    """py-spy (``--spy``) or strace (``--strace``) on every process, for the measured window."""
    out: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    for name, proc in zip(NAMES, cluster.procs, strict=True):
        if args.spy is not None:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            path = args.spy / f"{name}-idle.txt"
            cmd = [spy, "record", "--pid", str(proc.pid), "--rate", "200", "--nonblocking", "--duration",
                   str(int(args.seconds)), "--format", "raw", "-o", str(path)]  # fmt: skip
        else:
            path = Path(tempfile.mkdtemp(prefix="leofs-idle-strace-")) / f"{name}.txt"
            cmd = ["strace", "-c", "-f", "-o", str(path), "-p", str(proc.pid)]
        out.append((name, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), path))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=5.0, help="seconds to wait after start before measuring")
    p.add_argument("--src", default=None, help="run the leofs package found in this directory")
    p.add_argument("--spy", type=Path, default=None, help="record each process with py-spy into this directory")
    p.add_argument("--strace", action="store_true", help="count each process's system calls (strace -c -f)")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="leofs-idle-"))
    cluster = LeofsCluster(base / "cluster", src=args.src)
    try:
        cluster.start()
        time.sleep(args.settle)
        if args.spy is not None:
            args.spy.mkdir(parents=True, exist_ok=True)
        spies = attach(cluster, args) if args.spy is not None or args.strace else []
        used = measure(cluster, args.seconds)
        for _, proc, _ in spies:
            if args.strace:
                proc.send_signal(signal.SIGINT)  # strace -c prints its table when interrupted
            proc.wait(timeout=60)
        total = sum(used.values())
        print(f"idle {args.seconds:.0f} s ({args.src or 'installed leofs'}): "
              f"{total / args.seconds * 1000:.1f} ms CPU/s in all")  # fmt: skip
        for name in NAMES:
            print(f"  {name:9} {used[name] / args.seconds * 1000:6.1f} ms CPU/s "
                  f"({used[name] / args.seconds * 100:4.1f} % of a core)")  # fmt: skip
        for name, _, path in spies:
            print(f"\n== {name}")
            if args.strace:
                print(path.read_text() if path.exists() else "   (no strace output)")
                continue
            if not path.exists():
                print("   (no samples)")
                continue
            samples, _self, incl = summarise(path.read_text())
            print(f"   {samples} samples; inclusive:")
            for frame, count in incl.most_common(args.top):
                print(f"   {count / max(samples, 1) * 100:5.1f} %  {frame}")
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
