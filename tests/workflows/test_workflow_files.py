"""The workflows keep the properties issue 5 asks for: pinned actions, least privilege, no
persisted or stored credentials, serialised deploys, and a deploy that moves traffic only after
the end-to-end test passed. actionlint and zizmor (make lint-workflows) check the syntax and the
known-dangerous patterns; these tests pin the project's own rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import workflow_rules as rules

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
NAMES = [path.name for path in WORKFLOWS]


def test_the_three_workflows_exist() -> None:
    assert {"ci.yml", "terraform.yml", "deploy.yml"} <= set(NAMES)


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    assert rules.unpinned_uses(path.read_text(encoding="utf-8")) == []


def test_each_action_has_one_pin_across_workflows() -> None:
    texts = [path.read_text(encoding="utf-8") for path in WORKFLOWS]
    assert rules.inconsistent_pins(texts) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_permissions_are_empty_at_the_top_and_minimal_per_job(path: Path) -> None:
    assert rules.permission_problems(rules.load(path)) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_checkouts_do_not_persist_credentials(path: Path) -> None:
    assert rules.checkout_problems(rules.load(path)) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_google_cloud_only_through_workload_identity_federation(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert rules.credential_problems(text, rules.load(path)) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_cloud_jobs_run_in_an_environment_and_a_concurrency_group(path: Path) -> None:
    assert rules.cloud_jobs_without_guard(rules.load(path)) == []


# --- the deploy and apply jobs --------------------------------------------------------------


def _workflow(name: str) -> dict[str, Any]:
    return rules.load(ROOT / ".github" / "workflows" / name)


def _step_index(steps: list[dict[str, Any]], fragment: str) -> int:
    matches = [i for i, step in enumerate(steps) if fragment in str(step.get("run", ""))]
    assert len(matches) == 1, f"expected one step running {fragment!r}, found {matches}"
    return matches[0]


@pytest.mark.parametrize(
    ("workflow", "job"), [("deploy.yml", "deploy"), ("terraform.yml", "apply")]
)
def test_deploys_and_applies_queue_instead_of_racing(workflow: str, job: str) -> None:
    concurrency = rules.jobs(_workflow(workflow))[job]["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    # Keyed by environment: dev and prod do not wait for each other, two runs of one do.
    assert "environment" in concurrency["group"]


def test_deploy_runs_only_after_ci_passed() -> None:
    workflow = _workflow("deploy.yml")
    assert rules.jobs(workflow)["ci"]["uses"] == "$/.github/workflows/ci.yml"
    assert rules.jobs(workflow)["deploy"]["needs"] == "ci"
    assert "workflow_call" in rules.triggers(_workflow("ci.yml"))


def test_deploy_moves_traffic_only_after_the_e2e_test_passed() -> None:
    steps = rules.steps(rules.jobs(_workflow("deploy.yml"))["deploy"])
    deploy = _step_index(steps, "--no-traffic")
    assert "--tag" in steps[deploy]["run"]
    e2e = [i for i, step in enumerate(steps) if "run-e2e.sh" in str(step.get("run", ""))]
    shifts = [
        i
        for i, step in enumerate(steps)
        if "update-traffic" in str(step.get("run", "")) and "--to-latest" in str(step["run"])
    ]
    assert len(e2e) == 2
    assert len(shifts) == 2
    first_e2e, second_e2e = e2e
    ingest_shift, api_shift = shifts
    assert deploy < first_e2e < ingest_shift < second_e2e < api_shift
    assert "INGEST_SERVICE" in steps[ingest_shift]["run"]
    assert "API_SERVICE" in steps[api_shift]["run"]
    # Nothing that moves traffic forward runs after a failure.
    for index in (ingest_shift, api_shift):
        assert "if" not in steps[index]


def test_a_failed_deploy_puts_ingest_traffic_back_and_fails() -> None:
    steps = rules.steps(rules.jobs(_workflow("deploy.yml"))["deploy"])
    rollback = _step_index(steps, "--to-revisions")
    assert steps[rollback]["if"] == "failure() && steps.ingest_traffic.outcome == 'success'"
    assert "steps.before.outputs.ingest" in str(steps[rollback]["env"]["PREVIOUS"])
    # The recording of the previous traffic happens before anything is deployed.
    assert _step_index(steps, "select((.percent // 0) > 0)") < _step_index(steps, "--no-traffic")
    # Clean-up steps run on failure but never `continue-on-error`, so the run stays red.
    assert not any(step.get("continue-on-error") for step in steps)


def test_e2e_in_deploy_targets_the_tagged_revision_and_the_real_topic() -> None:
    steps = rules.steps(rules.jobs(_workflow("deploy.yml"))["deploy"])
    for step in steps:
        if "run-e2e.sh" in str(step.get("run", "")):
            env = step["env"]
            assert env["AEROFLOW_E2E_BASE_URL"] == "${{ steps.revisions.outputs.api_tag_url }}"
            assert env["AEROFLOW_E2E_PUBLISH"].startswith("pubsub:projects/")
    script = (ROOT / ".github" / "scripts" / "run-e2e.sh").read_text(encoding="utf-8")
    assert "pytest tests/e2e" in script
    assert "::add-mask::" in script


def test_terraform_applies_exactly_the_plan_it_showed() -> None:
    apply = rules.jobs(_workflow("terraform.yml"))["apply"]
    runs = [str(step.get("run", "")) for step in rules.steps(apply)]
    assert any("terraform plan" in run and "-out=tfplan" in run for run in runs)
    assert "terraform apply -no-color tfplan" in runs
    assert apply["environment"] == "${{ matrix.environment }}"
    assert apply["strategy"]["max-parallel"] == 1


def test_ci_runs_what_ci_run_runs_with_a_coverage_floor() -> None:
    workflow = _workflow("ci.yml")
    runs = [str(step.get("run", "")) for _, step in rules.iter_steps(workflow)]
    assert "make lint" in runs
    assert "make test" in runs
    test_job = rules.jobs(workflow)["test"]
    assert test_job["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    addopts = next(s["env"]["PYTEST_ADDOPTS"] for s in rules.steps(test_job) if "env" in s)
    assert "--cov-fail-under=" in addopts
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci_run.index("make lint") < ci_run.index("make test")


# --- the rules catch what they claim to ------------------------------------------------------

BAD_WORKFLOW = """\
name: bad
on: push
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-latest
    permissions:
      contents: write
      id-token: write
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@a309ff8b426b58ec0e2a45f0f869d46889d02405
      - uses: google-github-actions/auth@7c6bc770dae815cd3e89ee6cdf493a5fab2cc093 # v3.0.0
        with:
          credentials_json: ${{ secrets.GCP_SA_KEY }}
  other:
    runs-on: ubuntu-latest
    steps:
      - uses: ./.github/actions/local
      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.1
        with:
          persist-credentials: true
"""


@pytest.fixture
def bad(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    path = tmp_path / "bad.yml"
    path.write_text(BAD_WORKFLOW, encoding="utf-8")
    return BAD_WORKFLOW, rules.load(path)


def test_rules_catch_tags_and_missing_version_comments(bad: tuple[str, dict[str, Any]]) -> None:
    problems = rules.unpinned_uses(bad[0])
    assert problems == [
        "actions/checkout@v4: not pinned to a 40-hex commit SHA",
        "actions/setup-python@a309ff8b426b58ec0e2a45f0f869d46889d02405: "
        "no '# vX.Y.Z' comment naming the pinned release",
    ]


def test_rules_catch_two_pins_of_one_action(bad: tuple[str, dict[str, Any]]) -> None:
    good = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    problems = rules.inconsistent_pins([good, bad[0]])
    assert any(problem.startswith("actions/checkout:") for problem in problems)


def test_rules_catch_broad_permissions(bad: tuple[str, dict[str, Any]]) -> None:
    problems = rules.permission_problems(bad[1])
    assert "top-level permissions must be {}, not 'write-all'" in problems
    assert "job build: permission contents: write is not needed" in problems
    assert "job other: no permissions mapping of its own (None)" in problems


def test_rules_catch_persisted_checkout_credentials(bad: tuple[str, dict[str, Any]]) -> None:
    assert rules.checkout_problems(bad[1]) == [
        "job build: actions/checkout without persist-credentials: false",
        "job other: actions/checkout without persist-credentials: false",
    ]


def test_rules_catch_service_account_keys(bad: tuple[str, dict[str, Any]]) -> None:
    problems = rules.credential_problems(*bad)
    assert "uses a stored credential: secrets.GCP_SA_KEY" in problems
    assert "credentials_json: a service-account key" in problems
    assert f"job build: {rules.GOOGLE_AUTH} without workload_identity_provider" in problems


def test_rules_catch_cloud_jobs_without_environment(bad: tuple[str, dict[str, Any]]) -> None:
    assert rules.cloud_jobs_without_guard(bad[1]) == [
        "job build: cloud credentials outside a GitHub environment",
        "job build: cloud job without a concurrency group",
    ]
