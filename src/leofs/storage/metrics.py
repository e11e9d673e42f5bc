"""Storage metrics for ``/metrics``: the group-commit counters of every open store in this process,
and the repair-queue length of storage nodes. Read at scrape time."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from leofs import metrics
from leofs.storage.store import ObjectStore


class QueueStats(Protocol):
    """A storage node's repair queue, as far as its metrics go (``stats()["length"]``)."""

    enqueued: int

    def stats(self) -> dict[str, Any]: ...


_stores: weakref.WeakValueDictionary[str, ObjectStore] = weakref.WeakValueDictionary()
_queues: weakref.WeakValueDictionary[str, QueueStats] = weakref.WeakValueDictionary()


def track(node: str, store: ObjectStore, queue: QueueStats | None = None) -> None:
    """Report ``store`` (and ``queue``) under the label node=``node``."""
    _stores[node] = store
    if queue is not None:
        _queues[node] = queue


def _collect() -> Iterable[Metric]:
    families = {
        "writes": CounterMetricFamily("leofs_storage_writes", "Needles appended (puts and deletes)", labels=["node"]),
        "syncs": CounterMetricFamily("leofs_storage_syncs", "fdatasync calls on container logs", labels=["node"]),
        "batches": CounterMetricFamily("leofs_storage_group_commits", "Group commits (index transactions)",
                                       labels=["node"]),
        "rejected": CounterMetricFamily("leofs_storage_stale_writes", "Writes not applied: a newer clock was stored",
                                        labels=["node"]),
        "disk_full": CounterMetricFamily("leofs_storage_disk_full", "Writes refused for lack of space",
                                         labels=["node"]),
    }
    for node, store in list(_stores.items()):
        stats = store.stats
        for field, family in families.items():
            family.add_metric([node], getattr(stats, field))
    yield from families.values()
    queue_length = GaugeMetricFamily("leofs_repair_queue_length", "Replica writes waiting to be repaired",
                                     labels=["node"])
    for node, queue in list(_queues.items()):
        try:
            queue_length.add_metric([node], float(queue.stats()["length"]))
        except Exception:  # a closed queue: nothing to report
            continue
    yield queue_length
    enqueued = CounterMetricFamily("leofs_repair_queue_enqueued", "Repair tasks added (a replica missed a "
                                   "write, or had not answered within the straggler grace)", labels=["node"])
    for node, queue in list(_queues.items()):
        enqueued.add_metric([node], float(queue.enqueued))
    yield enqueued


metrics.register(_collect)
