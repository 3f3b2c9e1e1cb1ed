"""Collaborators of the routes, taken from ``app.state`` (set once by ``create_app``).

Dependencies are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a
cost these one-line lookups should not pay on every request.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from aeroflow.api.cursor import CursorCodec
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_store(request: Request) -> FlightStore:
    return cast(FlightStore, request.app.state.store)


async def get_cursor_codec(request: Request) -> CursorCodec:
    return cast(CursorCodec, request.app.state.cursor_codec)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[FlightStore, Depends(get_store)]
CursorCodecDep = Annotated[CursorCodec, Depends(get_cursor_codec)]
