"""The status page's numbers, computed from this process's own Prometheus registry.

A :class:`StatusSampler` reads the registry every few seconds and keeps a bounded history of
cumulative counts; :meth:`StatusSampler.report` turns it into SLO attainment since the process
started plus per-interval rates and quantiles for the charts. It is one instance's view: the
fleet-wide, 30-day SLOs live in Prometheus (monitoring/prometheus) and Cloud Monitoring.

The SLO objectives and thresholds are those of monitoring/slo/slos.yaml (a test checks it);
thresholds must be bucket bounds of the histograms in metrics.py.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import REGISTRY, CollectorRegistry

from aeroflow import __version__

SLI_ROUTE = re.compile(r"^/v1/")
INGEST_OUTCOMES = ("stored", "duplicate", "rejected", "failed")
SloState = Literal["ok", "at-risk", "breached", "no-data"]


@dataclass(frozen=True, slots=True)
class Objective:
    name: str
    title: str
    objective: float
    threshold_seconds: float | None = None


OBJECTIVES: tuple[Objective, ...] = (
    Objective("api-availability", "API availability: /v1 requests without a 5xx", 0.999),
    Objective("api-latency", "API latency: /v1 requests within 250 ms", 0.99, 0.25),
    Objective("ingest-freshness", "Ingest freshness: stored within 10 s of publish", 0.99, 10.0),
)


@dataclass(slots=True)
class Snapshot:
    """Cumulative counts read from the registry at one instant."""

    at: float
    api_total: float = 0.0
    api_errors: float = 0.0
    api_latency: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    ingest: dict[str, float] = field(default_factory=dict)  # outcome -> count
    freshness: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def take_snapshot(registry: CollectorRegistry = REGISTRY, *, now: float | None = None) -> Snapshot:
    snap = Snapshot(at=time.time() if now is None else now)
    for family in registry.collect():
        if family.name == "aeroflow_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and SLI_ROUTE.match(sample.labels["route"]):
                    snap.api_total += sample.value
                    if sample.labels["status_class"] == "5xx":
                        snap.api_errors += sample.value
        elif family.name == "aeroflow_http_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and SLI_ROUTE.match(sample.labels["route"]):
                    le = float(sample.labels["le"])
                    snap.api_latency[le] = snap.api_latency.get(le, 0.0) + sample.value
        elif family.name == "aeroflow_ingest_messages":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels["outcome"]
                    snap.ingest[outcome] = snap.ingest.get(outcome, 0.0) + sample.value
        elif family.name == "aeroflow_ingest_freshness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    snap.freshness[le] = snap.freshness.get(le, 0.0) + sample.value
    return snap


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket holding rank q * count."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # the highest finite bound, as Prometheus answers
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _diff(new: dict[float, float], old: dict[float, float]) -> dict[float, float]:
    return {le: max(count - old.get(le, 0.0), 0.0) for le, count in new.items()}


def _total(buckets: dict[float, float]) -> float:
    return buckets.get(math.inf, 0.0)


def _within(buckets: dict[float, float], threshold: float) -> float:
    return buckets.get(threshold, 0.0)


def _state(sli: float | None, objective: float, budget_left: float | None) -> SloState:
    if sli is None or budget_left is None:
        return "no-data"
    if sli < objective:
        return "breached"
    return "at-risk" if budget_left < 0.25 else "ok"


def _slo(objective: Objective, good: float, total: float) -> dict[str, Any]:
    sli = good / total if total > 0 else None
    budget = 1.0 - objective.objective
    left = None if sli is None else 1.0 - (1.0 - sli) / budget
    return {
        "name": objective.name,
        "title": objective.title,
        "objective": objective.objective,
        "threshold_seconds": objective.threshold_seconds,
        "good": good,
        "total": total,
        "sli": sli,
        "error_budget_remaining": left,
        "state": _state(sli, objective.objective, left),
    }


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


class StatusSampler:
    """Bounded history of registry snapshots; thread-safe, sampled by :meth:`sample`."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        interval_seconds: float = 10.0,
        history: int = 360,
        objectives: Sequence[Objective] = OBJECTIVES,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be > 0")
        self._registry = registry
        self.interval_seconds = interval_seconds
        self._objectives = tuple(objectives)
        self._snapshots: deque[Snapshot] = deque(maxlen=max(history, 2))
        self._lock = threading.Lock()
        self._started = time.time()

    def sample(self, *, now: float | None = None) -> Snapshot:
        snap = take_snapshot(self._registry, now=now)
        with self._lock:
            self._snapshots.append(snap)
        return snap

    def sample_if_due(self) -> None:
        """Take a snapshot unless the newest is fresher than the interval."""
        with self._lock:
            last = self._snapshots[-1].at if self._snapshots else None
        if last is None or time.time() - last >= self.interval_seconds:
            self.sample()

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots)

    def report(self) -> dict[str, Any]:
        """The JSON document behind /status/data.json."""
        snaps = self.snapshots()
        latest = snaps[-1] if snaps else take_snapshot(self._registry)
        accepted = latest.ingest.get("stored", 0.0) + latest.ingest.get("duplicate", 0.0)
        slos = []
        for objective in self._objectives:
            if objective.name == "api-availability":
                good, total = latest.api_total - latest.api_errors, latest.api_total
            elif objective.name == "api-latency":
                good = _within(latest.api_latency, objective.threshold_seconds or 0.0)
                total = _total(latest.api_latency)
            else:
                good = _within(latest.freshness, objective.threshold_seconds or 0.0)
                total = _total(latest.freshness)
            slos.append(_slo(objective, good, total))
        series = _series(snaps)
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "version": __version__,
            "window": "since this instance started",
            "uptime_seconds": round(time.time() - self._started, 1),
            "sample_interval_seconds": self.interval_seconds,
            "slos": slos,
            "totals": {
                "api_requests": latest.api_total,
                "api_errors": latest.api_errors,
                "ingest_messages": {o: latest.ingest.get(o, 0.0) for o in INGEST_OUTCOMES},
                "ingest_accepted": accepted,
            },
            "current": {key: _last(values) for key, values in _flat(series).items()},
            "series": series,
        }


def _last(values: Sequence[float | None]) -> float | None:
    for value in reversed(values):
        if value is not None:
            return value
    return None


def _flat(series: dict[str, Any]) -> dict[str, list[float | None]]:
    flat: dict[str, list[float | None]] = {}
    for key, values in series.items():
        if key == "t":
            continue
        if isinstance(values, dict):
            for sub, sub_values in values.items():
                flat[f"{key}.{sub}"] = sub_values
        else:
            flat[key] = values
    return flat


def _series(snaps: Iterable[Snapshot]) -> dict[str, Any]:
    ordered = list(snaps)
    out: dict[str, Any] = {
        "t": [],
        "api_requests_per_second": [],
        "api_error_ratio": [],
        "api_latency_p50_seconds": [],
        "api_latency_p99_seconds": [],
        "ingest_messages_per_second": {o: [] for o in INGEST_OUTCOMES},
        "ingest_freshness_p50_seconds": [],
        "ingest_freshness_p99_seconds": [],
    }
    for old, new in itertools.pairwise(ordered):
        span = new.at - old.at
        if span <= 0:
            continue
        requests = max(new.api_total - old.api_total, 0.0)
        errors = max(new.api_errors - old.api_errors, 0.0)
        latency = _diff(new.api_latency, old.api_latency)
        freshness = _diff(new.freshness, old.freshness)
        out["t"].append(round(new.at, 3))
        out["api_requests_per_second"].append(_rounded(requests / span, 3))
        out["api_error_ratio"].append(_rounded(errors / requests) if requests else None)
        out["api_latency_p50_seconds"].append(_rounded(histogram_quantile(0.5, latency)))
        out["api_latency_p99_seconds"].append(_rounded(histogram_quantile(0.99, latency)))
        for outcome in INGEST_OUTCOMES:
            delta = max(new.ingest.get(outcome, 0.0) - old.ingest.get(outcome, 0.0), 0.0)
            out["ingest_messages_per_second"][outcome].append(_rounded(delta / span, 3))
        out["ingest_freshness_p50_seconds"].append(_rounded(histogram_quantile(0.5, freshness)))
        out["ingest_freshness_p99_seconds"].append(_rounded(histogram_quantile(0.99, freshness)))
    return out
