"""Helpers shared by the API tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
from fastapi import APIRouter, FastAPI

from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore, WriteBatch

StoreFactory = Callable[[Sequence[WriteBatch]], FlightStore]


class AppFactory(Protocol):
    def __call__(
        self,
        store: FlightStore,
        *,
        routers: Sequence[APIRouter] = (),
        app_settings: Settings | None = None,
    ) -> FastAPI: ...


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the standard error body with this status and code; returns its error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], list)
    assert "Traceback" not in response.text
    return dict(body["error"])
