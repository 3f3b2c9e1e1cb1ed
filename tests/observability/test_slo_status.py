from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram

from aeroflow.observability import metrics
from aeroflow.observability.slo_status import OBJECTIVES, StatusSampler, histogram_quantile

REPO = Path(__file__).resolve().parents[2]


class Service:
    """The service's metric families, declared as metrics.py declares them, in a fresh registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aeroflow_http_requests",
            "",
            ["route", "method", "status_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "aeroflow_http_request_duration_seconds",
            "",
            ["route", "method"],
            buckets=metrics.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest = Counter(
            "aeroflow_ingest_messages", "", ["outcome", "reason"], registry=self.registry
        )
        self.freshness = Histogram(
            "aeroflow_ingest_freshness_seconds",
            "",
            buckets=metrics.FRESHNESS_BUCKETS,
            registry=self.registry,
        )

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, "GET", f"{status // 100}xx").inc()
        self.duration.labels(route, "GET").observe(seconds)


def test_slo_attainment_and_budget_since_start() -> None:
    svc = Service()
    sampler = StatusSampler(svc.registry, interval_seconds=1)
    for _ in range(1998):
        svc.request("/v1/flights", 200, 0.01)
    svc.request("/v1/flights/{flight_id}", 503, 0.01)
    svc.request("/v1/flights", 200, 0.4)  # slow
    for _ in range(50):
        svc.request("/readyz", 503, 2.0)  # probes are outside the SLIs
    for _ in range(98):
        svc.ingest.labels("stored", "none").inc()
        svc.freshness.observe(0.2)
    svc.ingest.labels("rejected", "schema").inc()
    svc.freshness.observe(30.0)
    svc.freshness.observe(0.3)
    sampler.sample(now=100.0)

    report = sampler.report()
    slos = {slo["name"]: slo for slo in report["slos"]}
    availability = slos["api-availability"]
    assert availability["total"] == 2000
    assert availability["sli"] == pytest.approx(0.9995)
    assert availability["error_budget_remaining"] == pytest.approx(0.5)
    assert availability["state"] == "ok"
    latency = slos["api-latency"]
    assert latency["good"] == 1999
    assert latency["sli"] == pytest.approx(0.9995)
    assert latency["error_budget_remaining"] == pytest.approx(0.95)
    freshness = slos["ingest-freshness"]
    assert freshness["total"] == 100
    assert freshness["sli"] == pytest.approx(0.99)
    assert freshness["error_budget_remaining"] == pytest.approx(0.0)
    assert report["totals"]["ingest_messages"] == {
        "stored": 98,
        "duplicate": 0,
        "rejected": 1,
        "failed": 0,
    }


def test_breached_and_no_data_states() -> None:
    svc = Service()
    sampler = StatusSampler(svc.registry)
    svc.request("/v1/flights", 500, 0.01)
    svc.request("/v1/flights", 200, 0.01)
    sampler.sample()
    slos = {slo["name"]: slo for slo in sampler.report()["slos"]}
    assert slos["api-availability"]["state"] == "breached"
    assert slos["api-availability"]["error_budget_remaining"] == pytest.approx(-499)
    assert slos["ingest-freshness"]["state"] == "no-data"
    assert slos["ingest-freshness"]["sli"] is None


def test_series_are_rates_and_quantiles_between_samples() -> None:
    svc = Service()
    sampler = StatusSampler(svc.registry, interval_seconds=10)
    sampler.sample(now=1000.0)
    for _ in range(90):
        svc.request("/v1/flights", 200, 0.003)
    for _ in range(10):
        svc.request("/v1/flights", 500, 0.003)
    for _ in range(40):
        svc.ingest.labels("stored", "none").inc()
        svc.freshness.observe(0.07)
    sampler.sample(now=1010.0)
    sampler.sample(now=1020.0)  # a quiet interval

    series = sampler.report()["series"]
    assert series["t"] == [1010.0, 1020.0]
    assert series["api_requests_per_second"] == [10.0, 0.0]
    assert series["api_error_ratio"] == [0.1, None]
    # 100 observations in the (0.0025, 0.005] bucket: p50 interpolates to its middle.
    assert series["api_latency_p50_seconds"][0] == pytest.approx(0.00375)
    assert series["api_latency_p99_seconds"][1] is None
    assert series["ingest_messages_per_second"]["stored"] == [4.0, 0.0]
    assert series["ingest_freshness_p50_seconds"][0] == pytest.approx(0.075)
    report = sampler.report()
    assert report["current"]["api_requests_per_second"] == 0.0
    assert report["current"]["api_error_ratio"] == 0.1  # last non-empty value


def test_history_is_bounded_and_sample_if_due_respects_the_interval() -> None:
    svc = Service()
    sampler = StatusSampler(svc.registry, interval_seconds=3600, history=5)
    for i in range(20):
        sampler.sample(now=float(i))
    assert len(sampler.snapshots()) == 5
    fresh = StatusSampler(svc.registry, interval_seconds=3600)
    fresh.sample_if_due()
    fresh.sample_if_due()
    assert len(fresh.snapshots()) == 1


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.95)
    # Everything above the last finite bound: Prometheus answers that bound.
    assert histogram_quantile(0.5, {1.0: 0.0, math.inf: 10.0}) == 1.0
    assert histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.5, {}) is None


def test_objectives_match_the_slo_definitions() -> None:
    slos = yaml.safe_load((REPO / "monitoring" / "slo" / "slos.yaml").read_text())["slos"]
    defined = {s["name"]: (s["objective"], s.get("threshold_seconds")) for s in slos}
    assert {o.name: (o.objective, o.threshold_seconds) for o in OBJECTIVES} == defined
    # Thresholds are bucket bounds, or "within threshold" could not be counted exactly.
    latency, freshness = (o.threshold_seconds for o in OBJECTIVES[1:])
    assert latency in metrics.LATENCY_BUCKETS
    assert freshness in metrics.FRESHNESS_BUCKETS
