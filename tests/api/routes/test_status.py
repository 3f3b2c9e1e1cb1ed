"""/status end to end: a real server, real ingest and API traffic, the page in headless Chromium."""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from aeroflow.api.routes.status import STATUS_CSP
from aeroflow.bootstrap import build_app
from aeroflow.ingest.publisher import OutgoingMessage, PushPublisher, event_message
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.settings import Settings

Serve = Callable[[FastAPI], AbstractContextManager[str]]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def status_app(tmp_path: Path, interval: float) -> FastAPI:
    # The composition root's app, status router included, sampling every ``interval`` seconds.
    settings = Settings(
        environment="test",
        duckdb_path=tmp_path / "aeroflow.duckdb",
        status_sample_interval_seconds=interval,
    )
    return build_app(settings)


@functools.cache
def sample_messages() -> tuple[OutgoingMessage, ...]:
    return tuple(event_message(e) for e in nycflights13_events(limit=120))


def generate_traffic(base: str, *, seconds: float) -> int:
    """Publish real events through the push endpoint and read them back, for ``seconds``."""
    publisher = PushPublisher(f"{base}/pubsub/push", concurrency=8)
    report = asyncio.run(publisher.publish(sample_messages()))
    assert report.ok
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base) as client:
        while time.monotonic() < deadline:
            assert client.get("/v1/flights", params={"limit": 5}).status_code == 200
            time.sleep(0.02)
    return report.published


@pytest.mark.slow
def test_data_json_reflects_the_traffic(tmp_path: Path, serve: Serve) -> None:
    with serve(status_app(tmp_path, interval=0.2)) as base:
        published = generate_traffic(base, seconds=1.0)
        with httpx.Client(base_url=base) as client:
            report = client.get("/status/data.json").json()
            assets = [
                client.get(f"/status/assets/{name}")
                for name in ("uPlot.iife.min.js", "status.js", "status.css")
            ]
            traversal = client.get("/status/assets/..%2F..%2F__init__.py")
            page = client.get("/status")

    slos = {slo["name"]: slo for slo in report["slos"]}
    # The registry is the process's: other tests may have added to it, never taken away.
    assert slos["api-availability"]["total"] >= 10
    assert slos["ingest-freshness"]["total"] >= published
    assert report["totals"]["ingest_accepted"] >= published
    assert len(report["series"]["t"]) >= 3  # sampled by the router's lifespan task
    assert max(v or 0 for v in report["series"]["api_requests_per_second"]) > 0
    assert max(v or 0 for v in report["series"]["ingest_messages_per_second"]["stored"]) > 0
    assert all(a.status_code == 200 for a in assets)
    assert assets[0].headers["content-type"].startswith("text/javascript")
    assert traversal.status_code == 404
    assert page.headers["content-security-policy"] == STATUS_CSP
    assert 'src="/status/assets/status.js"' in page.text
    assert "cdn" not in page.text.lower()


@pytest.mark.slow
def test_the_page_renders_charts_with_data_in_headless_chromium(
    tmp_path: Path, serve: Serve
) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian package `chromium`)")
    with serve(status_app(tmp_path, interval=0.2)) as base:
        generate_traffic(base, seconds=1.0)
        result = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--window-size=1280,1600",
                "--virtual-time-budget=3000",
                "--dump-dom",
                f"{base}/status",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None, dom[:500]
    assert 'data-ready="true"' in body.group(0), body.group(0)
    assert "data-error" not in body.group(0)
    points = re.search(r'data-points="(\d+)"', body.group(0))
    assert points is not None
    assert int(points.group(1)) >= 2
    # uPlot draws each chart on a canvas inside its container: four charts, four canvases.
    assert dom.count("<canvas") == 4
    assert len(re.findall(r'class="card" data-state="(?:ok|at-risk|breached)"', dom)) >= 2
    assert "Ingest freshness" in dom
