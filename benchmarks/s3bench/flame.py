"""Summarise py-spy ``--format raw`` (collapsed stacks) into top self and inclusive functions.

``python -m s3bench.flame FILE.txt [--top 25]`` (from the benchmarks directory) prints the share of
samples spent in each function (self) and under each function (inclusive), which is what
``docs/performance.md`` quotes next to the flame graphs.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: merge lines of one function."""
    frame = _FRAME_LINE.sub(")", frame)
    if " (" in frame:
        func, path = frame.split(" (", 1)
        parts = path.rstrip(")").split("/")
        short = "/".join(parts[-2:]) if len(parts) > 1 else parts[0]
        return f"{func} ({short})"
    return frame


def summarise(text: str) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        stack, n = m.group(1), int(m.group(2))
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return total, self_c, incl


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("file")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    total, self_c, incl = summarise(Path(args.file).read_text())
    print(f"{total} samples")
    print("self %   function")
    for name, n in self_c.most_common(args.top):
        print(f"{100 * n / total:6.1f}   {name}")
    print("\nincl %   function")
    for name, n in incl.most_common(args.top):
        print(f"{100 * n / total:6.1f}   {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
