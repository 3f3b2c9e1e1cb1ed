"""The container image, checked by construction (no Docker engine runs here): pinned base,
multi-stage with nothing to build in the final stage, non-root, exec-form entrypoint, and
commands that exist in the aeroflow CLI."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import typer

from aeroflow.cli import app

from .conftest import MODULES, REPO, TerraformTree

DIGEST = re.compile(r"^python:3\.11-slim@sha256:[0-9a-f]{64}$")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|clang|apt-get|apk|curl|wget)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages() -> list[Stage]:
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, "instruction before FROM"
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def _cli_commands() -> dict[str, Any]:
    """The aeroflow CLI's commands by name (typer's click-compatible command objects)."""
    group = typer.main.get_command(app)
    commands: dict[str, Any] = dict(group.commands)  # type: ignore[attr-defined]
    return commands


def test_base_image_is_pinned_by_digest_in_every_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2, "multi-stage build"
    for stage in stages:
        assert DIGEST.match(stage.base), stage.base
    assert len({s.base for s in stages}) == 1, "every stage on the same base"


def test_final_stage_has_no_build_tools_and_copies_only_the_venv() -> None:
    final = _stages()[-1]
    for keyword, rest in final.instructions:
        if keyword == "RUN":
            assert not BUILD_TOOLS.search(rest), rest
    copies = [rest for keyword, rest in final.instructions if keyword == "COPY"]
    assert copies == ["--from=build /opt/aeroflow /opt/aeroflow"]


def test_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _stages()[-1].instructions if keyword == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"0", "root"}
    assert user.isdigit(), "numeric uid so Kubernetes-style runAsNonRoot checks can verify it"


def test_exec_form_entrypoint_so_sigterm_reaches_the_server() -> None:
    final = dict(_stages()[-1].instructions)
    entrypoint = json.loads(final["ENTRYPOINT"])
    command = json.loads(final["CMD"])
    assert entrypoint == ["aeroflow"]
    assert command[0] in _cli_commands()
    assert "--host" in command
    # Inside the container the server must listen on every interface for Cloud Run to reach it.
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104


def test_port_is_honoured() -> None:
    envs = " ".join(rest for keyword, rest in _stages()[-1].instructions if keyword == "ENV")
    assert re.search(r"\bPORT=8080\b", envs)
    assert re.search(r"\bAEROFLOW_HOST=0\.0\.0\.0\b", envs)
    commands = _cli_commands()
    for name in ("serve", "api", "ingest"):
        port = next(p for p in commands[name].params if p.name == "port")
        assert port.envvar == "PORT", f"aeroflow {name} must read $PORT (Cloud Run sets it)"


def test_cloud_run_commands_exist_in_the_cli(tf: TerraformTree) -> None:
    commands = _cli_commands()
    for service in tf.resources("google_cloud_run_v2_service", MODULES / "cloud_run"):
        args = service.block("template", "containers")["args"]
        assert args[0] in commands, f"{service.address}: no `aeroflow {args[0]}`"


def test_build_context_is_only_what_the_package_build_needs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    included = {line[1:] for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "src"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["readme"] in included
    for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert package.split("/")[0] in included
    sources = {
        word
        for keyword, rest in _stages()[0].instructions
        if keyword == "COPY"
        for word in rest.split()[:-1]
    }
    assert {"pyproject.toml", "README.md", "src"} <= sources
