"""The Prometheus rules: valid, unit-tested by promtool, built on metrics the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .metric_names import (
    EXTERNAL_PREFIXES,
    PROMETHEUS_DIR,
    REPO,
    RULE_FILES,
    exported_series,
    label_matchers,
    metric_names,
    recorded_names,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool missing: Debian package `prometheus` (`make lint-monitoring` installs it)",
)
PROMTOOL_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))


def rules() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


@needs_promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", *map(str, RULE_FILES)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert PROMTOOL_TESTS
    result = subprocess.run(
        [PROMTOOL, "test", "rules", *map(str, PROMTOOL_TESTS)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in PROMTOOL_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', runbooks))
    for rule in alerts():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no runbook section #{anchor}"


def test_rules_use_only_metrics_the_service_exports() -> None:
    exported = exported_series()
    recorded = recorded_names()
    for rule in rules():
        for name in metric_names(rule["expr"]):
            if name.startswith(EXTERNAL_PREFIXES):
                continue
            assert name in exported or name in recorded, (
                f"{name} in {rule.get('record') or rule.get('alert')}"
            )


def test_label_matchers_name_real_labels_and_buckets() -> None:
    exported = exported_series()
    for rule in rules():
        for metric, label, op, value in label_matchers(rule["expr"]):
            if metric is None or metric not in exported:
                continue
            series = exported[metric]
            assert label in series.labels, f"{metric} has no label {label}"
            if label == "le" and op == "=":
                # The SLO thresholds must be real bucket bounds, spelled as the client spells them.
                assert value in series.buckets, f"{metric} has no bucket le={value}"


def test_slo_objectives_match_the_slo_definitions() -> None:
    definitions = yaml.safe_load((REPO / "monitoring" / "slo" / "slos.yaml").read_text())
    objectives = {
        rule["labels"]["slo"]: float(re.fullmatch(r"vector\((.+)\)", rule["expr"]).group(1))  # type: ignore[union-attr]
        for rule in rules()
        if rule.get("record") == "slo:objective:ratio"
    }
    budgets = {
        rule["labels"]["slo"]: float(re.fullmatch(r"vector\((.+)\)", rule["expr"]).group(1))  # type: ignore[union-attr]
        for rule in rules()
        if rule.get("record") == "slo:error_budget:ratio"
    }
    assert objectives == {slo["name"]: slo["objective"] for slo in definitions["slos"]}
    for name, objective in objectives.items():
        assert budgets[name] == pytest.approx(1 - objective)
    for rule in alerts():
        slo = rule["labels"].get("slo") or next(
            (v for m, label, _, v in label_matchers(rule["expr"]) if label == "slo"), None
        )
        if slo is None:
            continue
        # Every burn-rate threshold is written as (burn * budget) with this SLO's budget.
        factors = re.findall(r"\(([\d.]+) \* ([\d.]+)\)", rule["expr"])
        assert factors, rule["alert"]
        assert {float(b) for _, b in factors} == {budgets[slo]}, rule["alert"]


def test_sli_windows_cover_every_burn_rate_alert() -> None:
    recorded = recorded_names()
    for rule in alerts():
        for name in metric_names(rule["expr"]):
            if name.startswith("slo:"):
                assert name in recorded
