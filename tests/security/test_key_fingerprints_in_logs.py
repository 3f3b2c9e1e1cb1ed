"""Logs and metrics name API keys by fingerprint only (a real server, the real composition)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from security_support import make_keys, make_settings

from aeroflow.bootstrap import Role, build_app
from aeroflow.observability.logging import REQUEST_LOGGER
from json_log_capture import captured_json_logs, json_lines
from loopback_server import serve
from published_store import publish_store


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    # DEBUG: nothing at any level may carry a key.
    with captured_json_logs("DEBUG") as stream:
        yield stream


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return json_lines(stream, REQUEST_LOGGER)


def test_keys_appear_in_logs_and_metrics_only_as_fingerprints(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    (key, other), config = make_keys("partner-a", "partner-b")
    settings = make_settings(
        api_keys=config,
        duckdb_path=publish_store(tmp_path / "aeroflow.duckdb"),
        rate_limit_per_key="2/minute",
    )
    wrong = key.key[:-2] + "zz"
    with serve(build_app(settings, Role.API)) as url, httpx.Client(base_url=url) as http:
        assert http.get("/v1/flights", headers={"X-API-Key": key.key}).status_code == 200
        bearer = {"Authorization": f"Bearer {key.key}"}
        assert http.get("/v1/flights", headers=bearer).status_code == 200
        assert http.get("/v1/flights", headers=bearer).status_code == 429
        assert http.get("/v1/flights", headers={"X-API-Key": wrong}).status_code == 401
        assert http.get("/v1/flights").status_code == 401
        metrics = http.get("/metrics", headers={"X-API-Key": other.key}).text

    output = log_stream.getvalue()
    secrets = [key.key, other.key, wrong, key.entry.digest.hex(), other.entry.digest.hex()]
    for secret in secrets:
        assert secret not in output
        assert secret not in metrics
        assert secret[4:20] not in output  # not even a piece of one

    lines = [line for line in access_lines(log_stream) if line["route"] == "/v1/flights"]
    assert [(line["httpRequest"]["status"], line.get("apiClient")) for line in lines] == [
        (200, key.entry.fingerprint),
        (200, key.entry.fingerprint),
        (429, key.entry.fingerprint),
        (401, "unknown_key"),  # a wrong key leaves no fingerprint: it may be someone's password
        (401, "anonymous"),
    ]
    fingerprint = key.entry.fingerprint
    assert f'client="{fingerprint}",outcome="allowed"' in metrics
    assert f'client="{fingerprint}",outcome="rate_limited"' in metrics
