"""The scanners' own rules: the dependency-audit verdicts and the audited secrets baseline."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_audit_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "audit_dependencies", REPO / "scripts" / "audit_dependencies.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


audit = load_audit_script()

OK = {"name": "limits", "version": "5.8.0", "vulns": []}
EDITABLE = {"name": "aeroflow", "skip_reason": "distribution marked as editable"}
NOT_FOUND = {"name": "urllib3", "skip_reason": "Dependency not found on PyPI"}
VULNERABLE = {
    "name": "jinja2",
    "version": "2.10",
    "vulns": [{"id": "GHSA-462w-v97r-4m45", "fix_versions": ["2.10.1"]}],
}


@pytest.mark.parametrize(
    ("dependencies", "required", "verdict", "says"),
    [
        ([OK, EDITABLE], False, 0, "no known vulnerabilities"),
        ([OK, VULNERABLE], False, 1, "VULNERABLE jinja2 2.10: GHSA-462w-v97r-4m45"),
        ([OK, NOT_FOUND], False, 1, "NOT AUDITED urllib3"),
        # No advisory source answered at all: loud, and fatal only where it is required.
        ([NOT_FOUND, EDITABLE], False, 0, "SKIPPED"),
        ([NOT_FOUND, EDITABLE], True, 1, "FAILED"),
    ],
)
def test_audit_verdicts(
    dependencies: list[dict[str, Any]],
    required: bool,
    verdict: int,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if required:
        monkeypatch.setenv(audit.REQUIRED_ENV, "1")
    else:
        monkeypatch.delenv(audit.REQUIRED_ENV, raising=False)
    assert audit.judge({"dependencies": dependencies, "fixes": []}) == verdict
    assert says in capsys.readouterr().out


def test_secrets_baseline_entries_are_all_audited_false_positives() -> None:
    baseline = json.loads((REPO / ".secrets.baseline").read_text())
    tracked = set(
        subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert baseline["results"], "an empty baseline would make this test vacuous"
    for filename, findings in baseline["results"].items():
        assert filename in tracked, f"{filename}: stale entry"
        for finding in findings:
            # Audited (detect-secrets audit) as not a secret; see docs/security.md.
            assert finding.get("is_secret") is False, (filename, finding["line_number"])
            assert "hashed_secret" in finding  # the baseline holds hashes, never the values
