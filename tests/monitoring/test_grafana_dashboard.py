"""The Grafana dashboard: well-formed, and every query built on series that really exist."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .metric_names import (
    EXTERNAL_PREFIXES,
    REPO,
    TARGET_LABELS,
    exported_series,
    label_matchers,
    metric_names,
    recorded_names,
)

DASHBOARD = REPO / "monitoring" / "grafana" / "aeroflow.json"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def test_layout_is_well_formed() -> None:
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_uses_series_the_service_exports_or_the_rules_record() -> None:
    exported = exported_series()
    recorded = recorded_names()
    for title, expr in exprs():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        for name in names:
            if name.startswith(EXTERNAL_PREFIXES):
                continue
            assert name in exported or name in recorded, f"{title}: unknown series {name}"


def test_label_matchers_name_labels_the_series_carry() -> None:
    exported = exported_series()
    for title, expr in exprs():
        for metric, label, _, _ in label_matchers(expr):
            if metric in exported and label not in TARGET_LABELS:
                assert label in exported[metric].labels, f"{title}: {metric} has no {label}"


def test_every_slo_has_its_budget_on_the_dashboard() -> None:
    slos = yaml.safe_load((REPO / "monitoring" / "slo" / "slos.yaml").read_text())["slos"]
    text = json.dumps(dashboard())
    for slo in slos:
        assert f'slo:error_budget_remaining:ratio{{slo=\\"{slo["name"]}\\"}}' in text


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing (Debian `prometheus`)"
)
def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    # promtool has no offline expression check; a rules file of the queries gives one.
    rules = [
        {
            "record": f"dashboard:query:{i}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$job", ".*"),
        }
        for i, (_, expr) in enumerate(exprs())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
