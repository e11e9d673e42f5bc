"""Prometheus metrics: one registry per process, served as ``GET /metrics``.

Request counters are updated on the hot path (a labelled child per operation is cached, so an
update costs a dictionary lookup and an increment); everything else is read when scraped, through
collectors that look at the live objects (store statistics, repair queue, members).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

registry = CollectorRegistry(auto_describe=True)
#: only the scrape-time collectors (store, members): what the embedded server's primary process
#: hands to its gateway workers, whose own registry has the request metrics of every process
live_registry = CollectorRegistry(auto_describe=True)
#: set in a gateway worker: fetches the primary's live metrics (text) to append to a scrape
remote_source: Callable[[], Awaitable[str]] | None = None

s3_requests = Counter("leofs_s3_requests", "S3 requests answered, by operation and HTTP status",
                      ["operation", "status"], registry=registry)
s3_seconds = Histogram("leofs_s3_request_seconds", "Time to answer S3 requests (headers and body)",
                       ["operation"], registry=registry,
                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def enable_multiprocess(directory: Path) -> None:
    """Keep the request metrics in files shared by the worker processes of one server
    (prometheus_client's multiprocess mode), so that a scrape of any of them shows the sums over
    all. Call before the first request is counted; ``directory`` must be empty at server start."""
    from prometheus_client.multiprocess import MultiProcessCollector

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    registry.unregister(s3_requests)
    registry.unregister(s3_seconds)
    MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]


class FunctionCollector(Collector):
    """Metrics computed at scrape time by ``produce``."""

    def __init__(self, produce: Callable[[], Iterable[Metric]]) -> None:
        self.produce = produce

    def collect(self) -> Iterable[Metric]:
        return self.produce()


def register(produce: Callable[[], Iterable[Metric]]) -> None:
    """Add scrape-time metrics to this process's registry."""
    collector = FunctionCollector(produce)
    registry.register(collector)
    live_registry.register(collector)


def live_text() -> str:
    """The scrape-time metrics of this process, in the text format."""
    return generate_latest(live_registry).decode()


def counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels) if labels else None)
    family.add_metric(list(labels.values()) if labels else [], value)
    return family


def gauge(name: str, doc: str, values: dict[tuple[str, ...], float], labels: list[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


async def handler(request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    body = generate_latest(registry)
    if remote_source is not None:
        try:
            body += (await remote_source()).encode()
        except ConnectionError:
            pass  # the primary is going away; serve what this process has
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
