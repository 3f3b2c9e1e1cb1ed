"""One server span per request, ours, even with a tracing SDK installed process-wide.

OpenTelemetry's global tracer provider can be set once per process, so the app runs in a
child process that installs an SDK provider with an in-memory exporter, serves one request
through the composed app and prints the spans it recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from published_store import publish_store

_CHILD = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from fastapi.testclient import TestClient
from aeroflow.bootstrap import Role, build_app
from aeroflow.settings import Settings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
settings = Settings(environment="test", duckdb_path=sys.argv[1], tracing_exporter="otlp")
with TestClient(build_app(settings, Role.API)) as client:
    assert client.get("/v1/flights?limit=1").status_code == 200
spans = [
    {"name": s.name, "kind": s.kind.name}
    for s in exporter.get_finished_spans()
    if s.kind.name == "SERVER"
]
print(json.dumps(spans))
"""


def test_a_request_gets_exactly_one_server_span(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(publish_store(tmp_path / "store.duckdb"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    spans = json.loads(done.stdout.strip().splitlines()[-1])
    assert spans == [{"name": "GET /v1/flights", "kind": "SERVER"}]
