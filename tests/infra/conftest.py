"""Parsed Terraform for the infra tests: every .tf file under infra/terraform, read with
python-hcl2 the way Terraform would see it (no provider needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "infra" / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = ("dev", "prod")

_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False, preserve_heredocs=False
)


@dataclass(frozen=True)
class Resource:
    kind: str  # e.g. google_pubsub_subscription
    name: str
    body: dict[str, Any]
    path: Path

    @property
    def module_dir(self) -> Path:
        return self.path.parent

    @property
    def address(self) -> str:
        return f"{self.path.relative_to(TERRAFORM)}:{self.kind}.{self.name}"

    def block(self, *names: str) -> dict[str, Any]:
        """The nested block at names (each the first of its kind), or {} if absent."""
        current: Any = self.body
        for name in names:
            found = current.get(name) if isinstance(current, dict) else None
            if not found:
                return {}
            current = found[0] if isinstance(found, list) else found
        return current if isinstance(current, dict) else {}


@dataclass(frozen=True)
class TerraformTree:
    files: dict[Path, dict[str, Any]]

    def blocks(self, kind: str, directory: Path | None = None) -> Iterator[tuple[Path, Any]]:
        for path, doc in self.files.items():
            if directory is not None and path.parent != directory:
                continue
            for entry in doc.get(kind, []):
                yield path, entry

    def resources(self, kind: str | None = None, directory: Path | None = None) -> list[Resource]:
        found = []
        for path, entry in self.blocks("resource", directory):
            for rkind, named in entry.items():
                for name, body in named.items():
                    if kind is None or rkind == kind:
                        found.append(Resource(rkind, name, body, path))
        return found

    def resource(self, kind: str, name: str, directory: Path) -> Resource:
        matches = [r for r in self.resources(kind, directory) if r.name == name]
        assert len(matches) == 1, f"expected one {kind}.{name} in {directory}"
        return matches[0]

    def data_kinds(self) -> set[str]:
        return {kind for _, entry in self.blocks("data") for kind in entry}

    def variables(self, directory: Path) -> dict[str, dict[str, Any]]:
        return {
            name: body
            for _, entry in self.blocks("variable", directory)
            for name, body in entry.items()
        }

    def locals(self, directory: Path) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, entry in self.blocks("locals", directory):
            merged.update(entry)
        return merged

    def module_calls(self, directory: Path) -> dict[str, dict[str, Any]]:
        return {
            name: body
            for _, entry in self.blocks("module", directory)
            for name, body in entry.items()
        }


def load_tree() -> TerraformTree:
    files = {}
    for path in sorted(TERRAFORM.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            files[path] = hcl2.load(handle, serialization_options=_OPTIONS)
    return TerraformTree(files)


@pytest.fixture(scope="session")
def tf() -> TerraformTree:
    return load_tree()


def strings(value: Any) -> Iterator[str]:
    """Every string inside a parsed value (keys included), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def references(value: Any, pattern: str) -> bool:
    """True if any string in value matches the regular expression."""
    return any(re.search(pattern, s) for s in strings(value))
