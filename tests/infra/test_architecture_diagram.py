"""docs/architecture.md: the Mermaid diagram names only resource kinds the Terraform creates,
names the essential ones, and puts every workload identity on an arrow."""

from __future__ import annotations

import re

from .conftest import MODULES, REPO, TerraformTree

KIND = re.compile(r"\bgoogle_[a-z0-9_]+\b")
ESSENTIAL = {
    "google_pubsub_schema",
    "google_pubsub_topic",
    "google_pubsub_subscription",
    "google_cloud_run_v2_service",
    "google_bigquery_dataset",
    "google_bigquery_table",
    "google_secret_manager_secret",
    "google_artifact_registry_repository",
    "google_iam_workload_identity_pool_provider",
    "google_service_account",
}


def _mermaid() -> str:
    text = (REPO / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert blocks, "docs/architecture.md has a mermaid block"
    return "\n".join(blocks)


def _arrow_labels(diagram: str) -> str:
    return "\n".join(re.findall(r'-[-.]\s*"([^"]*)"\s*\.?-*>', diagram))


def test_every_kind_in_the_diagram_exists_in_terraform(tf: TerraformTree) -> None:
    named = set(KIND.findall(_mermaid()))
    created = {r.kind for r in tf.resources()}
    assert named, "the diagram names resource kinds"
    assert named - created == set(), "named in the diagram but created by no Terraform"


def test_the_diagram_shows_the_essential_kinds() -> None:
    assert ESSENTIAL - set(KIND.findall(_mermaid())) == set()


def test_every_service_account_is_on_an_arrow(tf: TerraformTree) -> None:
    labels = _arrow_labels(_mermaid())
    assert labels
    for module in ("cloud_run", "github_oidc"):
        variables = tf.variables(MODULES / module)
        for account in tf.resources("google_service_account", MODULES / module):
            account_id = account.body["account_id"]
            for name, body in variables.items():
                account_id = account_id.replace("${var." + name + "}", str(body.get("default")))
            assert account_id in labels + _mermaid(), f"{account_id} missing from the diagram"
            if account_id != "aeroflow-deployer":
                assert f"SA {account_id}" in labels, f"no arrow is labelled with {account_id}"
    assert "service agent" in labels
