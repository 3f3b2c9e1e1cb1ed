"""Known-vulnerability check of the installed Python dependencies (``make lint-security``).

Runs pip-audit against the project's virtual environment, asking PyPI's vulnerability data
(PyPA advisory database / OSV, served per release by PyPI's JSON API). pip-audit marks a
package it could not look up as "skipped" and still exits 0, so a run where PyPI's per-release
API is unreachable would pass while auditing nothing. This wrapper reads pip-audit's JSON and
decides explicitly:

* a known vulnerability (not ignored with ``--ignore-vuln ID``, which needs a reason next to
  it in the Makefile): fail;
* every dependency looked up: pass;
* some dependencies looked up, others skipped: fail (a package PyPI does not know cannot be
  vouched for);
* none looked up (no advisory source reachable, e.g. a mirror without PyPI's JSON API):
  say so loudly and pass, or fail when ``AEROFLOW_AUDIT_REQUIRED=1`` (set it where PyPI is
  reachable, e.g. GitHub-hosted CI, so that an outage there cannot pass silently).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

REQUIRED_ENV = "AEROFLOW_AUDIT_REQUIRED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True, help="pip-audit executable")
    parser.add_argument("--python", required=True, help="interpreter of the audited venv")
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID")
    args = parser.parse_args(argv)

    command = [args.pip_audit, "--format", "json", "--skip-editable", "--progress-spinner", "off"]
    for vuln_id in args.ignore_vuln:
        command += ["--ignore-vuln", vuln_id]
    # pip-audit inspects the environment of this interpreter (pip-api's documented switch).
    env = {**os.environ, "PIPAPI_PYTHON_LOCATION": args.python}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        return unreachable(f"pip-audit failed: {result.stderr.strip()[-500:] or result.returncode}")
    return judge(report)


def judge(report: dict[str, Any]) -> int:
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if "skip_reason" in d and "editable" not in d["skip_reason"]]
    audited = [d for d in dependencies if "skip_reason" not in d]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix released"
            say(
                f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']}"
                f" (fixed in: {fixes})"
            )
    if vulnerable:
        return 1
    if not audited and skipped:
        return unreachable(
            f"no advisory data for any of {len(skipped)} dependencies"
            f" (first: {skipped[0]['name']}: {skipped[0]['skip_reason']})"
        )
    if skipped:
        for dependency in skipped:
            say(f"NOT AUDITED {dependency['name']}: {dependency['skip_reason']}")
        return 1
    say(f"pip-audit: {len(audited)} dependencies, no known vulnerabilities")
    return 0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def unreachable(why: str) -> int:
    if os.environ.get(REQUIRED_ENV) == "1":
        say(f"pip-audit FAILED: {why}; {REQUIRED_ENV}=1 requires a reachable advisory source")
        return 1
    say(
        f"pip-audit SKIPPED: {why}. PyPI's per-release JSON API is unreachable from here, so"
        f" nothing was audited. CI with PyPI access sets {REQUIRED_ENV}=1 to make this fatal."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
