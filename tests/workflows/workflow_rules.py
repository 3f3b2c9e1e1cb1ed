"""Supply-chain and safety rules for the GitHub Actions workflows, as plain functions.

Each rule takes a parsed workflow (and, for pins, its text, since YAML drops comments) and
returns the violations it found as readable strings, so a test can assert both that the real
workflows have none and that a deliberately bad workflow is caught.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

PIN_RE: Final = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$", re.MULTILINE
)
SHA_RE: Final = re.compile(r"^[0-9a-f]{40}$")
VERSION_COMMENT_RE: Final = re.compile(r"^v\d+(\.\d+){0,2}\b")
# A long-lived credential handed to a workflow: JSON keys, passwords, tokens in secrets.
CREDENTIAL_SECRET_RE: Final = re.compile(
    r"secrets\.[A-Za-z0-9_]*(KEY|CREDENTIAL|JSON|PASSWORD|TOKEN)", re.IGNORECASE
)
# The only scopes these workflows need: read the code, and mint an OIDC token for WIF.
ALLOWED_PERMISSIONS: Final = {("contents", "read"), ("id-token", "write")}
GOOGLE_AUTH: Final = "google-github-actions/auth"


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    value = workflow.get("on", workflow.get(True))
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list):
        return dict.fromkeys(value)
    return dict(value or {})


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(workflow.get("jobs") or {})


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def iter_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in jobs(workflow).items():
        for step in steps(job):
            yield name, step


def uses_of(step_or_job: dict[str, Any]) -> str:
    return str(step_or_job.get("uses", ""))


def action_name(uses: str) -> str:
    return uses.split("@", 1)[0]


def is_local(uses: str) -> bool:
    # `$/` (self-repository) and `./` refer to this repository at the running commit.
    return uses.startswith(("./", "$/"))


# --- rules ---------------------------------------------------------------------------------


def unpinned_uses(text: str) -> list[str]:
    """Every remote `uses:` names a full commit SHA and says which release it is."""
    problems = []
    for match in PIN_RE.finditer(text):
        ref, comment = match["ref"].strip("'\""), (match["comment"] or "").strip()
        if is_local(ref):
            continue
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{ref}: container action not pinned by digest")
            continue
        _, _, version = ref.partition("@")
        if not SHA_RE.match(version):
            problems.append(f"{ref}: not pinned to a 40-hex commit SHA")
        elif not VERSION_COMMENT_RE.match(comment):
            problems.append(f"{ref}: no '# vX.Y.Z' comment naming the pinned release")
    return problems


def inconsistent_pins(texts: list[str]) -> list[str]:
    """One action, one SHA, one version across all workflows: no half-finished upgrades."""
    seen: dict[str, set[str]] = {}
    for text in texts:
        for match in PIN_RE.finditer(text):
            ref = match["ref"].strip("'\"")
            if is_local(ref) or "@" not in ref:
                continue
            name, _, sha = ref.partition("@")
            seen.setdefault(name, set()).add(f"{sha} {(match['comment'] or '').strip()}")
    return [f"{name}: {sorted(pins)}" for name, pins in sorted(seen.items()) if len(pins) > 1]


def permission_problems(workflow: dict[str, Any]) -> list[str]:
    """Nothing granted at the top; each job asks for the least it needs."""
    problems = []
    if workflow.get("permissions") != {}:
        problems.append(f"top-level permissions must be {{}}, not {workflow.get('permissions')!r}")
    for name, job in jobs(workflow).items():
        granted = job.get("permissions")
        if not isinstance(granted, dict):
            problems.append(f"job {name}: no permissions mapping of its own ({granted!r})")
            continue
        for scope, level in granted.items():
            if (scope, level) not in ALLOWED_PERMISSIONS:
                problems.append(f"job {name}: permission {scope}: {level} is not needed")
        uses_auth = any(action_name(uses_of(s)) == GOOGLE_AUTH for s in steps(job))
        if granted.get("id-token") == "write" and not uses_auth:
            problems.append(f"job {name}: id-token: write without Workload Identity auth")
        if uses_auth and granted.get("id-token") != "write":
            problems.append(f"job {name}: Workload Identity auth needs id-token: write")
    return problems


def checkout_problems(workflow: dict[str, Any]) -> list[str]:
    """Checkouts leave no token in .git/config for later steps (or a pushed image) to find."""
    return [
        f"job {job}: actions/checkout without persist-credentials: false"
        for job, step in iter_steps(workflow)
        if action_name(uses_of(step)) == "actions/checkout"
        and (step.get("with") or {}).get("persist-credentials") is not False
    ]


def credential_problems(text: str, workflow: dict[str, Any]) -> list[str]:
    """Google Cloud is reached through Workload Identity Federation only, never a stored key."""
    problems = [f"uses a stored credential: {m[0]}" for m in CREDENTIAL_SECRET_RE.finditer(text)]
    if "credentials_json" in text:
        problems.append("credentials_json: a service-account key")
    for job, step in iter_steps(workflow):
        if action_name(uses_of(step)) != GOOGLE_AUTH:
            continue
        inputs = step.get("with") or {}
        for required in ("workload_identity_provider", "service_account"):
            if not inputs.get(required):
                problems.append(f"job {job}: {GOOGLE_AUTH} without {required}")
    return problems


def cloud_jobs_without_guard(workflow: dict[str, Any]) -> list[str]:
    """A job that can reach Google Cloud runs in a GitHub environment (protection rules, and
    the provider can pin assertion.environment) and in a concurrency group that never cancels a
    run midway."""
    problems = []
    for name, job in jobs(workflow).items():
        if (job.get("permissions") or {}).get("id-token") != "write":
            continue
        if not job.get("environment"):
            problems.append(f"job {name}: cloud credentials outside a GitHub environment")
        concurrency = job.get("concurrency") or workflow.get("concurrency")
        if not isinstance(concurrency, dict) or not concurrency.get("group"):
            problems.append(f"job {name}: cloud job without a concurrency group")
    return problems
