"""The Terraform monitoring module: parses, formatted, documented, and wired into every env."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from .metric_names import REPO

MODULE = REPO / "infra" / "terraform" / "modules" / "monitoring"
ENVS = sorted((REPO / "infra" / "terraform" / "envs").glob("*/main.tf"))


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def unquote(name: str) -> str:
    # python-hcl2 8 keeps the quotes of block labels.
    return name.strip('"')


def resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in MODULE.glob("*.tf"):
        for block in load(path).get("resource", []):
            for kind_name, named in block.items():
                if unquote(kind_name) == kind:
                    found.update({unquote(name): body for name, body in named.items()})
    return found


def test_every_policy_has_a_runbook_severity_and_channels() -> None:
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', (REPO / "docs/runbooks.md").read_text()))
    policies = resources("google_monitoring_alert_policy")
    assert set(policies) >= {
        "slo_burn",
        "pubsub_backlog_age",
        "dead_letters",
        "cloud_run_5xx",
        "cloud_run_saturation",
        "uptime",
    }
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    for name, policy in policies.items():
        [doc] = policy["documentation"]
        assert "runbook_base_url" in doc["content"], name
        assert "severity" in policy, name
        assert "notification_channels" in policy, name
    for anchor in re.findall(r"runbook_base_url\}#([a-z0-9-]+)", text):
        assert anchor in anchors, anchor
    for anchor in re.findall(r'anchor = "([a-z0-9-]+)"', text):
        assert anchor in anchors, anchor


def test_burn_rate_policies_use_the_workbook_windows() -> None:
    text = (MODULE / "alerts.tf").read_text()
    assert "select_slo_burn_rate(" in text
    windows = re.findall(r'long = "(\d+)s", short = "(\d+)s", rate = ([\d.]+)', text)
    assert windows == [("3600", "300", "14.4"), ("21600", "1800", "6"), ("86400", "7200", "3")]


def test_the_slo_goals_default_to_the_slo_definitions() -> None:
    variables = {
        unquote(name): body
        for block in load(MODULE / "variables.tf")["variable"]
        for name, body in block.items()
    }
    slo_type = variables["slo"]["type"]
    assert "availability_goal" in slo_type
    assert re.search(r"availability_goal\W+optional\(number, 0\.999\)", slo_type)
    assert re.search(r"latency_goal\W+optional\(number, 0\.99\)", slo_type)
    for name, body in variables.items():
        assert body.get("description"), name
        assert body.get("type"), name


def test_every_environment_calls_the_module() -> None:
    assert ENVS
    for main in ENVS:
        modules = {unquote(name) for block in load(main)["module"] for name in block}
        assert "monitoring" in modules, main


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")
def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", str(MODULE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
