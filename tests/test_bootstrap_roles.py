"""On Cloud Run (K_SERVICE set) push-token verification is mandatory exactly where the push
endpoint is mounted: ``aeroflow serve`` and ``aeroflow ingest`` refuse to start without it, the
read-only ``aeroflow api`` starts without any push setting. Real apps from the composition root
on real DuckDB files, served over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from aeroflow.bootstrap import Role, build_app
from aeroflow.ingest.push import PUSH_PATH
from aeroflow.settings import Settings
from loopback_server import serve
from published_store import publish_store

PUSH_OIDC: dict[str, Any] = {
    "push_oidc_enabled": True,
    "push_oidc_audience": "aeroflow-ingest/aeroflow-prod",
    "push_service_account": "push@aeroflow-prod.iam.gserviceaccount.com",
}


@pytest.fixture(autouse=True)
def on_cloud_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K_SERVICE", "aeroflow-test")


def settings(db: Path, **overrides: Any) -> Settings:
    # _env_file=None: a developer's .env must not change what is tested.
    return Settings(_env_file=None, environment="test", duckdb_path=db, **overrides)  # type: ignore[call-arg]


def test_the_api_service_starts_without_push_settings(tmp_path: Path) -> None:
    # The read-only role serves an existing store file.
    app = build_app(settings(publish_store(tmp_path / "api.duckdb")), Role.API)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/readyz").status_code == 200
        assert http.get("/v1/flights").status_code == 200
        # Nothing to protect: it has no push endpoint at all.
        assert http.post(PUSH_PATH, json={}).status_code == 404


@pytest.mark.parametrize("role", [Role.INGEST, Role.SERVE])
def test_a_service_with_the_push_endpoint_refuses_to_start_without_verification(
    tmp_path: Path, role: Role
) -> None:
    db = tmp_path / "ingest.duckdb"
    with pytest.raises(ValueError, match="AEROFLOW_PUSH_OIDC_ENABLED=true is mandatory"):
        build_app(settings(db), role)
    assert not db.exists(), "storage was opened before the configuration was refused"


@pytest.mark.parametrize("role", [Role.INGEST, Role.SERVE])
def test_with_verification_on_the_push_endpoint_wants_a_token(tmp_path: Path, role: Role) -> None:
    app = build_app(settings(tmp_path / "ingest.duckdb", **PUSH_OIDC), role)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/readyz").status_code == 200
        response = http.post(PUSH_PATH, json={"message": {"data": "e30="}})
        assert response.status_code == 401
