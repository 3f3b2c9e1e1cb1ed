"""A real uvicorn server on 127.0.0.1 for the observability tests (tests/loopback_server.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from starlette.types import ASGIApp

from loopback_server import serve as serve_on_loopback


@pytest.fixture
def serve() -> Callable[[ASGIApp], AbstractContextManager[str]]:
    """``with serve(app) as base_url:`` runs ``app`` on a free loopback port."""
    return serve_on_loopback
