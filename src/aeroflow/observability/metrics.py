"""Every Prometheus metric aeroflow exports, declared in one place.

Labels are bounded by construction: route templates (never raw paths), status classes,
outcome and reason enums, query kinds. No flight id, key or user text ever becomes a label.
The alert rules in monitoring/prometheus and the Grafana dashboard refer to these names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from aeroflow import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

HTTP_REQUESTS = Counter(
    "aeroflow_http_requests",
    "HTTP requests served, by route template, method and status class (2xx..5xx).",
    ["route", "method", "status_class"],
)
HTTP_REQUEST_DURATION = Histogram(
    "aeroflow_http_request_duration_seconds",
    "Time from request received to response sent, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
API_ACCESS = Counter(
    "aeroflow_api_access",
    "Read API access decisions by client (an API key's fingerprint, 'anonymous' or"
    " 'unknown_key') and outcome (allowed|unauthenticated|rate_limited).",
    ["client", "outcome"],
)
INGEST_MESSAGES = Counter(
    "aeroflow_ingest_messages",
    "Messages handled by ingest, by outcome (stored|duplicate|rejected|failed) and reject reason"
    " ('none' unless rejected).",
    ["outcome", "reason"],
)
INGEST_BATCH_SIZE = Histogram(
    "aeroflow_ingest_batch_size",
    "Messages per group-committed write.",
    buckets=BATCH_BUCKETS,
)
INGEST_COMMIT_DURATION = Histogram(
    "aeroflow_ingest_commit_duration_seconds",
    "Duration of one durable batch write.",
    buckets=LATENCY_BUCKETS,
)
INGEST_FRESHNESS = Histogram(
    "aeroflow_ingest_freshness_seconds",
    "Ingest time minus Pub/Sub publish time of stored messages.",
    buckets=FRESHNESS_BUCKETS,
)
INGEST_EVENT_LAG = Histogram(
    "aeroflow_ingest_event_lag_seconds",
    "Ingest time minus event_time of stored messages (negative lags land in the first bucket).",
    buckets=FRESHNESS_BUCKETS,
)
STORAGE_QUERY_DURATION = Histogram(
    "aeroflow_storage_query_duration_seconds",
    "Storage call latency by kind (list_flights|get_flight|delay_stats|ping|write_batch).",
    ["query"],
    buckets=LATENCY_BUCKETS,
)
STORAGE_ROWS_RETURNED = Histogram(
    "aeroflow_storage_rows_returned",
    "Rows returned by a storage read, by kind.",
    ["query"],
    buckets=(0, 1, 10, 50, 100, 250, 500, 1000),
)
BUILD_INFO = Gauge(
    "aeroflow_build_info",
    "Always 1; the labels say which build runs.",
    ["version"],
    # Several workers (multiprocess_metrics): one series, not one per worker's pid.
    multiprocess_mode="max",
)
BUILD_INFO.labels(version=__version__).set(1)
