"""Worker and push-auth configuration: no emulator needed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aeroflow.ingest.worker import resolve_subscription
from aeroflow.settings import Settings


def test_subscription_names_become_paths_in_the_configured_project() -> None:
    settings = Settings(pubsub_project="aeroflow-prod", pubsub_subscription="flight-events-pull")
    assert resolve_subscription(settings) == (
        "projects/aeroflow-prod/subscriptions/flight-events-pull"
    )
    assert resolve_subscription(settings, "other") == "projects/aeroflow-prod/subscriptions/other"
    full = "projects/elsewhere/subscriptions/x"
    assert resolve_subscription(settings, full) == full


def test_the_gcp_project_is_the_fallback_and_a_bare_name_needs_one() -> None:
    assert resolve_subscription(Settings(gcp_project="p1"), "s") == "projects/p1/subscriptions/s"
    with pytest.raises(ValueError, match="needs a project"):
        resolve_subscription(Settings(), "s")


def test_push_oidc_on_needs_its_audience_and_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether it must be on depends on the role, not on the settings: tests/test_bootstrap_roles.py.
    monkeypatch.setenv("K_SERVICE", "aeroflow-ingest")
    assert Settings().push_oidc_enabled is False
    with pytest.raises(ValidationError, match="required when push OIDC"):
        Settings(push_oidc_enabled=True)
    settings = Settings(
        push_oidc_enabled=True,
        push_oidc_audience="https://aeroflow-ingest.example.run.app/pubsub/push",
        push_service_account="push@aeroflow-prod.iam.gserviceaccount.com",
    )
    assert settings.cloud_run_service == "aeroflow-ingest"


def test_off_cloud_run_push_oidc_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K_SERVICE", raising=False)
    assert Settings().push_oidc_enabled is False
