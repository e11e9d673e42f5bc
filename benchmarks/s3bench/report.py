"""Aggregate runs into medians and leofs / SeaweedFS ratios; write JSON and a Markdown table."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .workloads import Row

PAIRS = [("leofs", "seaweedfs"), ("leofs-cluster", "seaweedfs-3copy"), ("leofs", "leofs-base"),
         ("leofs-cluster", "leofs-cluster-base")]
LABELS = {"leofs": "leofs embedded", "seaweedfs": "SeaweedFS", "leofs-cluster": "leofs 3-node cluster",
          "seaweedfs-3copy": "SeaweedFS 3 copies", "leofs-base": "leofs before",
          "leofs-cluster-base": "leofs cluster (baseline)"}
_NUMERIC = ("ops_s", "mb_s", "p50_ms", "p99_ms", "cpu_ms_per_op", "rss_peak_mib", "client_cpu_ms_per_op",
            "other_cpu_s", "elapsed_s", "ops", "errors", "sec_per_op")


def headline(row: Row, m: dict[str, float]) -> float:
    """The row's main figure from a metrics dict (ops/s, MB/s or seconds per full listing)."""
    return {"ops/s": m["ops_s"], "MB/s": m["mb_s"], "s": m["sec_per_op"]}[row.metric]


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in _NUMERIC:
        vals = [r[key] for r in runs if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        out[key] = statistics.median(vals) if vals else math.nan
    out["reps"] = len(runs)
    out["errors"] = sum(r.get("errors", 0) for r in runs)
    return out


def summarize(rows: list[Row], runs: list[dict[str, Any]], servers: list[str]) -> list[dict[str, Any]]:
    """One entry per row: median metrics per server and the ratio for each (leofs, SeaweedFS) pair."""
    summary = []
    for row in rows:
        entry: dict[str, Any] = {"row": row.id, "title": row.title, "metric": row.metric, "servers": {},
                                 "ratios": {}}
        for name in servers:
            mine = [r for r in runs if r["row"] == row.id and r["server"] == name]
            if mine:
                med = medians(mine)
                med["headline"] = headline(row, med)
                entry["servers"][name] = med
        for a, b in PAIRS:
            if a in entry["servers"] and b in entry["servers"]:
                va, vb = entry["servers"][a]["headline"], entry["servers"][b]["headline"]
                ratio = (vb / va if row.metric == "s" else va / vb) if va and vb else math.nan
                entry["ratios"][f"{a}/{b}"] = ratio
        summary.append(entry)
    return summary


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == "s":
        return f"{value:.3f} s"
    if metric == "MB/s":
        return f"{value:,.0f} MB/s"
    return f"{value:,.0f} ops/s"


def _num(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def markdown(summary: list[dict[str, Any]], unavailable: dict[str, str]) -> str:
    """Markdown tables, one per (leofs, SeaweedFS) pair that has data."""
    out: list[str] = []
    for a, b in PAIRS:
        if not any(a in e["servers"] and b in e["servers"] for e in summary):
            if a in unavailable or b in unavailable:
                why = "; ".join(f"{n}: {unavailable[n]}" for n in (a, b) if n in unavailable)
                out.append(f"**{LABELS[a]} vs {LABELS[b]}: unavailable** ({why})\n")
                alone = b if a in unavailable else a
                if any(alone in e["servers"] for e in summary):
                    out.append(_single(summary, alone))
            continue
        la, lb = LABELS[a], LABELS[b]
        out.append(f"| workload | {la} | {lb} | {la} / {lb} | p50 ms ({a} / {b}) | p99 ms | "
                   f"server CPU ms/op | peak RSS MiB |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for e in summary:
            sa, sb = e["servers"].get(a), e["servers"].get(b)
            if not sa or not sb:
                continue
            ratio = e["ratios"].get(f"{a}/{b}", math.nan)
            err = ""
            if sa["errors"] or sb["errors"]:
                err = f" ⚠ errors {int(sa['errors'])}/{int(sb['errors'])}"
            out.append(
                f"| {e['title']}{err} | {_fmt(sa['headline'], e['metric'])} | {_fmt(sb['headline'], e['metric'])} "
                f"| **{_num(ratio, 2)}** | {_num(sa['p50_ms'])} / {_num(sb['p50_ms'])} "
                f"| {_num(sa['p99_ms'])} / {_num(sb['p99_ms'])} "
                f"| {_num(sa['cpu_ms_per_op'], 2)} / {_num(sb['cpu_ms_per_op'], 2)} "
                f"| {_num(sa['rss_peak_mib'], 0)} / {_num(sb['rss_peak_mib'], 0)} |")
        out.append("")
        out.append(f"Ratio > 1 means {la} is faster (for listings: {lb} seconds / {la} seconds). "
                   "Figures are medians over the interleaved repetitions; CPU is the server process tree's "
                   "utime+stime per operation; RSS is the sum of the processes' VmHWM during the run.\n")
    return "\n".join(out)


def _single(summary: list[dict[str, Any]], name: str) -> str:
    """A table of one server's figures (when its counterpart could not run)."""
    lines = [f"| workload | {LABELS[name]} | p50 ms | p99 ms | server CPU ms/op | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for e in summary:
        m = e["servers"].get(name)
        if m:
            lines.append(f"| {e['title']} | {_fmt(m['headline'], e['metric'])} | {_num(m['p50_ms'])} "
                         f"| {_num(m['p99_ms'])} | {_num(m['cpu_ms_per_op'], 2)} | {_num(m['rss_peak_mib'], 0)} |")
    return "\n".join(lines) + "\n"


def write(path: Path, meta: dict[str, Any], rows: list[Row], runs: list[dict[str, Any]], servers: list[str],
          unavailable: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """Write ``path`` (JSON) and ``path`` with ``.md`` (Markdown); return the summary and the Markdown."""
    summary = summarize(rows, runs, servers)
    md = markdown(summary, unavailable)
    doc = {"meta": meta, "unavailable": unavailable, "summary": summary, "runs": runs}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    path.with_suffix(".md").write_text(md)
    return summary, md
