"""``GET /v1/stats/delays``: delay aggregates over the current state of the matching flights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aeroflow.api.dependencies import StoreDep
from aeroflow.api.params import STATS_PARAMS, GroupByParam, flight_filter, strict_query
from aeroflow.api.schemas import DelayStatsPageOut, error_responses
from aeroflow.api.serialization import delay_stats_json
from aeroflow.storage.port import FlightFilter

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get(
    "/delays",
    summary="Delay statistics",
    description="One row per group, ordered by group. Delay figures are over flights with a "
    "known departure delay; percentiles are continuous (linear interpolation); `on_time_rate` "
    "is the share of flights with a known arrival delay that arrived at most 15 minutes late. "
    "month, weekday and hour are of the local scheduled departure.",
    response_model=DelayStatsPageOut,
    responses=error_responses(400, 414, 422, 503),
    dependencies=[Depends(strict_query(*STATS_PARAMS))],
)
async def delay_stats(
    store: StoreDep,
    group_by: GroupByParam,
    filters: Annotated[FlightFilter, Depends(flight_filter)],
) -> Response:
    # Always in a thread: aggregates query the engine even when pages come from memory.
    rows = await run_in_threadpool(store.delay_stats, group_by, filters)
    return Response(delay_stats_json(group_by, rows), media_type="application/json")
