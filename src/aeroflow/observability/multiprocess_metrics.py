"""Prometheus metrics of a server run as several worker processes (``aeroflow api --workers N``).

Every worker counts the requests it serves, and a scrape (or a /status poll) reaches one
worker, chosen by the kernel. So that it reports the whole instance, prometheus_client's
multiprocess mode is used: each metric writes its values to memory-mapped files in one
directory (``PROMETHEUS_MULTIPROC_DIR``, which must be set before prometheus_client is
imported: the supervisor sets it, the spawned workers inherit it), and the scraped worker's
registry holds a single collector that reads and merges every worker's files. Counters and
histograms are summed; a dead worker's files stay, so totals never go backwards when uvicorn
replaces it.

The process collectors (CPU, memory, file descriptors) read one process; under the
supervisor they are replaced by :class:`InstanceProcessCollector`, which sums the supervisor
and its workers, as the dashboard's CPU and memory panels expect of one instance.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Samples of one process that make no sense summed: the oldest start, the parent's limit.
_EARLIEST: Final = frozenset({"process_start_time_seconds"})
_SUPERVISOR_ONLY: Final = frozenset({"process_max_fds"})


@contextmanager
def shared_metrics_directory() -> Iterator[Path]:
    """For the supervisor, before it starts workers: a fresh directory for their metric files,
    named in the environment they inherit, removed when they are gone. Fresh, because files
    left by an earlier run would be added to this one's counters. Under an existing
    ``PROMETHEUS_MULTIPROC_DIR`` (say a tmpfs) when one is set."""
    directory = Path(tempfile.mkdtemp(prefix="aeroflow-metrics-", dir=os.environ.get(ENV)))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def report_every_worker(registry: CollectorRegistry = REGISTRY) -> None:
    """In a worker: make ``registry`` (the one /metrics and /status read) report the merged
    metrics of every worker, and the instance's processes, instead of this process alone."""
    if ENV not in os.environ:
        raise RuntimeError(f"{ENV} is not set: start the workers with `aeroflow api --workers`")
    if values.ValueClass is values.MutexValue:
        # prometheus_client was imported before the directory was named: this process's
        # metrics live in its memory only and would vanish from the merged view.
        raise RuntimeError(f"{ENV} was set after prometheus_client was imported")
    # No public listing of a registry's collectors; each one reports this process alone.
    for collector in list(registry._collector_to_names):
        registry.unregister(collector)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # registers itself
    registry.register(InstanceProcessCollector(os.getppid()))


class InstanceProcessCollector(Collector):
    """The process metrics of the supervisor ``root`` and its children (the workers) as one:
    CPU seconds, memory and descriptors summed (a page shared by two workers counts twice,
    as in each worker's own RSS), the earliest start time, the supervisor's descriptor limit.
    Linux only, like the ProcessCollector it builds on (elsewhere it reports nothing)."""

    def __init__(self, root: int) -> None:
        self._root = root

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, tuple[Metric, float]] = {}
        for pid in [self._root, *_children(self._root)]:
            collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in collector.collect():
                for sample in family.samples:
                    name = sample.name
                    if name not in merged:
                        merged[name] = (family, sample.value)
                    elif name in _EARLIEST:
                        merged[name] = (family, min(merged[name][1], sample.value))
                    elif name not in _SUPERVISOR_ONLY:
                        merged[name] = (family, merged[name][1] + sample.value)
        for name, (family, value) in merged.items():
            if family.type == "counter":
                # ProcessCollector's one counter (process_cpu_seconds, sampled as _total).
                yield CounterMetricFamily(family.name, family.documentation, value=value)
            else:
                yield GaugeMetricFamily(name, family.documentation, value=value)


def _children(pid: int) -> list[int]:
    """The live children of ``pid`` (its main thread's: uvicorn's supervisor starts its
    workers from there)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
