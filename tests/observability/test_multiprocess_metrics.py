"""The metrics of several worker processes merged, as /metrics and /status read them.

prometheus_client picks its multiprocess mode when it is imported, so every process here is
a real child of the test with ``PROMETHEUS_MULTIPROC_DIR`` in its environment, as the
workers of ``aeroflow api --workers N`` are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aeroflow.observability.multiprocess_metrics import ENV, shared_metrics_directory

# One worker's traffic: ``count`` /v1 requests (one a 5xx) and their latencies.
_WORKER = """
import sys
from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
count = int(sys.argv[1])
for n in range(count):
    status = "5xx" if n == 0 else "2xx"
    HTTP_REQUESTS.labels(route="/v1/flights", method="GET", status_class=status).inc()
    HTTP_REQUEST_DURATION.labels(route="/v1/flights", method="GET").observe(0.003)
"""

# The scraped worker: its registry reduced to the merged view, read as /status reads it.
_SCRAPED = """
import json
from prometheus_client import REGISTRY, generate_latest
from aeroflow.observability.multiprocess_metrics import report_every_worker
from aeroflow.observability.slo_status import StatusSampler
report_every_worker()
report = StatusSampler(REGISTRY).report()
print(json.dumps({
    "totals": report["totals"],
    "latency": next(s for s in report["slos"] if s["name"] == "api-latency"),
    "exposition": generate_latest(REGISTRY).decode(),
}))
"""

_TOO_LATE = """
import os, sys
import prometheus_client
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from aeroflow.observability.multiprocess_metrics import report_every_worker
try:
    report_every_worker()
except RuntimeError as exc:
    print(exc)
"""


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_a_scrape_reports_every_workers_requests() -> None:
    with shared_metrics_directory() as directory:
        run(_WORKER, "30")
        run(_WORKER, "12")
        scraped = json.loads(run(_SCRAPED))
    assert not directory.exists()
    assert scraped["totals"]["api_requests"] == 42
    assert scraped["totals"]["api_errors"] == 2
    assert scraped["latency"]["total"] == 42
    assert scraped["latency"]["good"] == 42  # every one within 250 ms
    exposition = scraped["exposition"]
    assert (
        'aeroflow_http_requests_total{method="GET",route="/v1/flights",status_class="2xx"} 40.0'
        in exposition
    )
    assert exposition.count("aeroflow_build_info{") == 1
    assert "process_cpu_seconds_total " in exposition


def test_the_directory_must_be_named_before_prometheus_client_is_imported(
    tmp_path: Path,
) -> None:
    env_before = os.environ.get(ENV)
    assert "after prometheus_client was imported" in run(_TOO_LATE, str(tmp_path))
    assert os.environ.get(ENV) == env_before


def test_a_worker_without_the_directory_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(
        [sys.executable, "-c", "from aeroflow.bootstrap import api_worker_app; api_worker_app()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "start the workers with `aeroflow api --workers`" in done.stderr
