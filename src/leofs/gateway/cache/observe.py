"""The cache's metrics (on the gateway's ``/_leofs_adm/metrics``) and its access-log state."""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from prometheus_client.core import Metric

from leofs import metrics
from leofs.gateway.cache.store import DISK, MEM, ObjectCache

_caches: weakref.WeakSet[ObjectCache] = weakref.WeakSet()
_registered = False


def watch(cache: ObjectCache) -> None:
    """Report ``cache`` in this process's metrics (one collector serves every cache of the process)."""
    global _registered
    _caches.add(cache)
    if not _registered:
        metrics.register(_produce)
        _registered = True


def _produce() -> Iterable[Metric]:
    caches = list(_caches)
    hits: dict[tuple[str, ...], float] = {}
    misses: dict[tuple[str, ...], float] = {}
    evictions: dict[tuple[str, ...], float] = {}
    entries: dict[tuple[str, ...], float] = {}
    size: dict[tuple[str, ...], float] = {}
    for tier in (MEM, DISK):
        hits[(tier,)] = sum(c.stats[tier].hits for c in caches)
        misses[(tier,)] = sum(c.stats[tier].misses for c in caches)
        lrus = [c.ram if tier == MEM else (c.disk.lru if c.disk is not None else None) for c in caches]
        evictions[(tier,)] = sum(lru.evictions for lru in lrus if lru is not None)
        entries[(tier,)] = sum(len(lru) for lru in lrus if lru is not None)
        size[(tier,)] = sum(lru.used for lru in lrus if lru is not None)
    yield _counter("leofs_gateway_cache_hits", "Object cache hits, by tier", hits)
    yield _counter("leofs_gateway_cache_misses", "Object cache lookups not found in a tier, by tier", misses)
    yield _counter("leofs_gateway_cache_evictions", "Object cache entries evicted for room, by tier", evictions)
    yield metrics.gauge("leofs_gateway_cache_entries", "Object cache entries, by tier", entries, ["tier"])
    yield metrics.gauge("leofs_gateway_cache_bytes", "Object cache bytes held, by tier", size, ["tier"])
    yield metrics.counter(
        "leofs_gateway_cache_request_misses", "Object cache misses (both tiers)", sum(c.misses for c in caches)
    )
    yield metrics.counter(
        "leofs_gateway_cache_saved_bytes", "Body bytes served from the object cache", sum(c.bytes_saved for c in caches)
    )
    yield metrics.counter(
        "leofs_gateway_cache_corrupt_files",
        "Disk cache files found damaged (dropped)",
        sum(c.disk.corrupt for c in caches if c.disk is not None),
    )


def _counter(name: str, doc: str, values: dict[tuple[str, ...], float]) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, doc, labels=["tier"])
    for labels, value in values.items():
        family.add_metric(list(labels), value)
    return family
