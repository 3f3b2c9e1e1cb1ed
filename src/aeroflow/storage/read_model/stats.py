"""Delay statistics from the read model's columns: what ``queries.build_delay_stats`` computes
in SQL, from memory, to the last bit.

DuckDB's statement scans ``flights`` and builds the (group, delay) distribution; here the same
distribution is counted (``np.add.at`` into a group x delay matrix) over the runs' packed
columns, whose stored delays are already small integers (the delay minus the column's minimum,
-1 for NULL), and the cancelled, arrived and on-time flights per group with ``np.bincount``.
Every figure is then read off the counts per group exactly as the SQL reads it off its
``cells``: integer sums, the percentile's position ``CAST(known - 1 AS DOUBLE) * q``, the
delays at its floor and ceiling and ``low * (1 - f) + high * f`` in doubles.

Work is done one chunk of rows at a time so that the transient arrays stay small (a few
arrays of ``_CHUNK`` values, ~2 MiB, plus two count matrices of at most ``_MAX_CELLS``: 3.8 MiB
each for 10 M flights by month); nothing per row outlives the query.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import DelayStats, FlightFilter, FlightQuery, GroupBy
from aeroflow.storage.queries import ON_TIME_THRESHOLD_MINUTES
from aeroflow.storage.read_model.columns import BoolArray, Dictionary, IntArray
from aeroflow.storage.read_model.plan import POSTED, Plan
from aeroflow.storage.read_model.run import Run

Counts = npt.NDArray[np.int64]
Index = npt.NDArray[np.int32]

# Rows per step: its temporaries (4-8 B per row each) stay in the CPU's cache.
_CHUNK: Final = 1 << 16
# Cells of a count matrix (groups x delays) beyond which the statement is left to SQL: 32 MiB.
# Real data is far below (10 M flights by month: 358 x 1,346); the domain's bounds allow more.
_MAX_CELLS: Final = 1 << 22
_DAY_US: Final = 86_400_000_000
_HOUR_US: Final = 3_600_000_000
# Local departures whose year DuckDB and numpy's calendar both print as four digits.
_FIRST_DAY: Final = int(np.datetime64("1000-01-01", "D").astype(np.int64))
_END_DAY: Final = int(np.datetime64("9999-12-01", "D").astype(np.int64))
_TIME_GROUPS: Final = (GroupBy.MONTH, GroupBy.WEEKDAY, GroupBy.HOUR)
_NO_DAYS: Final[Index] = np.empty(0, np.int32)
_NO_STARTS: Final[Counts] = np.empty(0, np.int64)
# Months are cut by departure order (see ``_Months``) when local departures lie at most this
# far on either side of the departures' band; beyond, every row is computed.
_MONTH_BAND_US: Final = 7 * _DAY_US
# Outcomes counted per group: [not cancelled, cancelled] x [no arrival delay, late, on time].
_OUTCOMES: Final = 6


@dataclass(frozen=True, slots=True)
class Source:
    """A run as of one moment: its rows and which of them were dead then."""

    run: Run
    dead: BoolArray | None


@dataclass(frozen=True, slots=True)
class _Groups:
    """How rows map to group indexes 0..count-1, each group's label, and the order of the
    indexes in which the SQL returns the groups."""

    count: int
    labels: list[str]
    order: list[int]
    # By month: day number -> group index, from ``first_day``.
    day_table: Index = dataclasses.field(default_factory=lambda: _NO_DAYS)
    first_day: int = 0
    # By month: where groups 1..count-1 begin, local µs.
    starts: Counts = dataclasses.field(default_factory=lambda: _NO_STARTS)


def delay_stats(
    sources: Sequence[Source],
    dictionaries: dict[str, Dictionary],
    sizes: dict[str, int],
    group_by: GroupBy,
    flight_filter: FlightFilter,
) -> list[DelayStats] | None:
    """The groups' figures over the sources' live rows matching ``flight_filter``, or None
    when the counts would take more memory than allowed (the caller asks SQL instead).

    ``sizes``: each coded column's dictionary size when the sources were taken (codes are
    below it). Raises ValueError as the SQL builder does (a naive datetime).
    """
    plan = Plan.of(FlightQuery(filter=flight_filter), dictionaries)
    if plan.impossible:
        return []
    group_by = GroupBy(group_by)
    runs = [s for s in sources if len(s.run)]
    groups = _groups(runs, dictionaries, sizes, group_by)
    if groups is None:
        return None
    delays = [s.run.packed["dep_delay_minutes"] for s in runs]
    filled = [d for d in delays if d.high >= d.low]
    low = min((d.low for d in filled), default=0)
    high = max((d.high for d in filled), default=-1)
    width = high - low + 2  # slot 0: NULL; slot i + 1: delay low + i
    if (groups.count + 1) * max(width, _OUTCOMES) > _MAX_CELLS:
        return None
    counts = np.zeros((groups.count, width), np.int64)
    outcomes = np.zeros((groups.count, _OUTCOMES), np.int64)
    cancelled = dictionaries["status"].lookup(FlightStatus.CANCELLED.value)
    statuses = sizes["status"]
    if cancelled is not None and cancelled >= statuses:
        cancelled = None  # coded after the sources were taken: none of their rows has it
    for source in runs:
        _count(source, plan, group_by, groups, low, counts, outcomes, cancelled, statuses)
    return _figures(groups, low, counts, outcomes)


def _groups(
    sources: Sequence[Source],
    dictionaries: dict[str, Dictionary],
    sizes: dict[str, int],
    group_by: GroupBy,
) -> _Groups | None:
    if group_by not in _TIME_GROUPS:
        name = group_by.value
        values = dictionaries[POSTED[name]].values[: sizes[name]]
        order = sorted(range(len(values)), key=values.__getitem__)
        return _Groups(len(values), list(values), order)
    if group_by is GroupBy.HOUR:
        return _Groups(24, [str(h) for h in range(24)], list(range(24)))
    if group_by is GroupBy.WEEKDAY:
        # ISO weekday 1 (Monday) .. 7; day 0, 1970-01-01, was a Thursday (index 3).
        return _Groups(7, [str(d) for d in range(1, 8)], list(range(7)))
    bounds = [_local_bounds(s.run) for s in sources]
    if not bounds:
        return _Groups(0, [], [])
    first_day = min(b[0] for b in bounds) // _DAY_US
    last_day = max(b[1] for b in bounds) // _DAY_US
    if first_day < _FIRST_DAY or last_day >= _END_DAY:
        return None
    days = np.arange(first_day, last_day + 1).astype("datetime64[D]")
    months = days.astype("datetime64[M]").astype(np.int64)
    first_month = int(months[0])
    count = int(months[-1]) - first_month + 1
    labels = [str(m) for m in np.arange(first_month, first_month + count).astype("datetime64[M]")]
    table: Index = (months - first_month).astype(np.int32)
    starts = (np.flatnonzero(np.diff(table)) + 1 + first_day) * _DAY_US
    return _Groups(count, labels, list(range(count)), table, first_day, starts)


def _local_bounds(run: Run) -> tuple[int, int]:
    """Bounds of the run's local departures in µs (the packed offsets' range added to the
    first and last departure: rows are in departure order)."""
    local = run.packed["scheduled_departure_local"]
    first, last = int(run.departures[0]), int(run.departures[-1])
    return first + local.low * local.unit, last + local.high * local.unit


def _count(
    source: Source,
    plan: Plan,
    group_by: GroupBy,
    groups: _Groups,
    low: int,
    counts: Counts,
    outcomes: Counts,
    cancelled: int | None,
    statuses: int,
) -> None:
    """Add the source's matching rows to ``counts`` (group x delay slot) and ``outcomes``."""
    run = source.run
    candidates = run.candidates(plan)
    if candidates is None:
        return
    checks, posted, lo, hi = candidates
    total = hi - lo if posted is None else len(posted)
    delay = run.packed["dep_delay_minutes"]
    width = delay.high - delay.low + 2 if delay.high >= delay.low else 1
    shift = delay.low - low if delay.high >= delay.low else 0
    arrival = run.packed["arr_delay_minutes"]
    # On time: a stored arrival delay (delay - low, NULL -1) in 0..on_time, compared
    # unsigned so that NULL, the type's largest unsigned value, is above any bound.
    on_time = min(ON_TIME_THRESHOLD_MINUTES - arrival.low, arrival.high - arrival.low)
    unsigned = np.dtype(f"u{arrival.data.itemsize}")
    local = run.packed["scheduled_departure_local"]
    run_counts = np.zeros(groups.count * width + 1, np.int64)
    run_outcomes = np.zeros(groups.count * _OUTCOMES + 1, np.int64)
    min_stored = None if plan.min_dep_delay is None else max(plan.min_dep_delay - delay.low, 0)
    months = None
    spread = (local.high - local.low) * local.unit
    if group_by is GroupBy.MONTH and spread <= _MONTH_BAND_US:
        months = _Months(run, groups)
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        rows: IntArray | slice = (
            slice(lo + start, lo + stop) if posted is None else posted[start:stop]
        )
        if months is not None:
            group = months.of(rows, stop - start)
        else:
            group = _group_of(run, rows, group_by, groups, local.unit, local.low)
        matched = _matches(source, plan, checks, rows, min_stored)
        # Arithmetic in one narrow type (int32: cells are at most _MAX_CELLS): mixing int8
        # or int16 operands into intp arrays cost numpy a buffered cast per operation.
        cells = group * np.int32(width)
        cells += delay.data[rows]
        cells += 1
        arrivals = arrival.data[rows]
        outcome = (arrivals >= 0).view(np.int8)
        if on_time >= 0:
            outcome += arrivals.view(unsigned) <= on_time
        if cancelled is not None:
            outcome += np.multiply(run.codes["status"][rows] == cancelled, 3, dtype=np.int8)
        outcomes_at = group * np.int32(_OUTCOMES)
        outcomes_at += outcome
        if matched is not None:
            # Rows that do not match go to one extra cell, dropped.
            unmatched = ~matched
            cells[unmatched] = len(run_counts) - 1
            outcomes_at[unmatched] = len(run_outcomes) - 1
        # add.at rather than bincount for the delays: bincount makes (zeroes) a count array
        # of every cell per chunk, ~1 MiB by destination; add.at only touches the chunk's.
        np.add.at(run_counts, cells, 1)
        run_outcomes += np.bincount(outcomes_at, minlength=len(run_outcomes))
    run_counts = run_counts[:-1]
    run_outcomes = run_outcomes[:-1]
    by_group = run_counts.reshape(groups.count, width)
    counts[:, 0] += by_group[:, 0]
    counts[:, 1 + shift : shift + width] += by_group[:, 1:]
    outcomes += run_outcomes.reshape(groups.count, _OUTCOMES)


def _group_of(
    run: Run,
    rows: IntArray | slice,
    group_by: GroupBy,
    groups: _Groups,
    unit: int,
    low: int,
) -> Index:
    """Each row's group index (a fresh array the caller may change)."""
    if group_by not in _TIME_GROUPS:
        codes: Index = run.codes[group_by.value][rows].astype(np.int32)
        return codes
    stored = run.packed["scheduled_departure_local"].data[rows].astype(np.int64)
    stored += low
    stored *= unit
    stored += run.departures[rows]  # the local departure, in µs
    # Remainders in int32: numpy's int64 remainder by a constant cost twice as much.
    if group_by is GroupBy.HOUR:
        stored //= _HOUR_US
        hours = stored.astype(np.int32)
        hours %= 24
        return hours
    stored //= _DAY_US
    if group_by is GroupBy.WEEKDAY:
        days = stored.astype(np.int32)
        days += 3
        days %= 7
        return days
    stored -= groups.first_day
    month: Index = groups.day_table.take(stored)
    return month


class _Months:
    """Month groups of ascending rows of a run, cut by departure order: a row's local
    departure is its departure plus an offset in the run's packed range, so a row departing
    well before a month's start (by more than the largest offset) is surely before it, one
    departing after it minus the smallest offset surely in it or later. Only rows in between,
    within a day or so of each month's start, are computed; the others are filled in slices.
    """

    def __init__(self, run: Run, groups: _Groups) -> None:
        local = run.packed["scheduled_departure_local"]
        self._run = run
        self._groups = groups
        # Rows from ``surely_in[k]`` on are in group k + 1 or later; rows before
        # ``maybe_in[k]`` are in group k or earlier.
        self._surely_in = np.searchsorted(run.departures, groups.starts - local.low * local.unit)
        self._maybe_in = np.searchsorted(run.departures, groups.starts - local.high * local.unit)

    def of(self, rows: IntArray | slice, count: int) -> Index:
        if isinstance(rows, slice):
            surely = np.clip(self._surely_in - rows.start, 0, count)
            maybe = np.clip(self._maybe_in - rows.start, 0, count)
        else:
            surely = np.searchsorted(rows, self._surely_in)
            maybe = np.searchsorted(rows, self._maybe_in)
        group = np.empty(count, np.int32)
        done, value = 0, int(np.searchsorted(surely, 0, "right"))
        for k in np.flatnonzero((surely > 0) & (surely < count)).tolist():
            at = int(surely[k])
            group[done:at] = value
            done, value = at, k + 1
        group[done:] = value
        local = self._run.packed["scheduled_departure_local"]
        for k in np.flatnonzero(maybe < surely).tolist():
            first, last = int(maybe[k]), int(surely[k])
            part = (
                slice(rows.start + first, rows.start + last)
                if isinstance(rows, slice)
                else rows[first:last]
            )
            group[first:last] = _group_of(
                self._run, part, GroupBy.MONTH, self._groups, local.unit, local.low
            )
        return group


def _matches(
    source: Source,
    plan: Plan,
    checks: dict[str, int],
    rows: IntArray | slice,
    min_stored: int | None,
) -> BoolArray | None:
    """Which of ``rows`` match the filters left after the window and the posting list, and
    are live; None when all of them are."""
    run = source.run
    masks: list[BoolArray] = []
    if source.dead is not None:
        masks.append(~source.dead[rows])
    for name, code in checks.items():
        masks.append(run.codes[name][rows] == code)
    if plan.status is not None:
        masks.append(run.codes["status"][rows] == plan.status)
    if min_stored is not None:
        masks.append(run.packed["dep_delay_minutes"].data[rows] >= min_stored)
    if not masks:
        return None
    mask = masks[0]
    for other in masks[1:]:
        mask &= other
    return mask


def _figures(groups: _Groups, low: int, counts: Counts, outcomes: Counts) -> list[DelayStats]:
    """Each non-empty group's figures, as ``queries._DUCKDB_GROUPED`` derives them."""
    known_delays = counts[:, 1:]
    known = known_delays.sum(axis=1).tolist()
    flights = (known_delays.sum(axis=1) + counts[:, 0]).tolist()
    values = np.arange(low, low + known_delays.shape[1], dtype=np.int64)
    sums = (known_delays @ values).tolist()
    result = []
    for index in groups.order:
        if not flights[index]:
            continue
        avg = p50 = p95 = None
        if known[index]:
            cumulative = np.cumsum(known_delays[index])
            avg = sums[index] / known[index]
            p50 = _percentile(cumulative, known[index], 0.5, low)
            p95 = _percentile(cumulative, known[index], 0.95, low)
        late, on_time = outcomes[index, 1] + outcomes[index, 4], outcomes[index, 2]
        on_time += outcomes[index, 5]
        arrivals = int(late + on_time)
        result.append(
            DelayStats(
                group=groups.labels[index],
                flights=flights[index],
                cancelled=int(outcomes[index, 3:].sum()),
                avg_dep_delay_minutes=avg,
                p50_dep_delay_minutes=p50,
                p95_dep_delay_minutes=p95,
                on_time_rate=int(on_time) / arrivals if arrivals else None,
            )
        )
    return result


def _percentile(cumulative: Counts, known: int, q: float, low: int) -> float:
    """Continuous percentile ``q`` of the delays counted in ``cumulative`` (at or below each
    delay), in the SQL's arithmetic: position (known - 1) * q as a double, the delays at its
    floor and ceiling (the smallest with more than that many at or below), then
    low * (1 - f) + high * f."""
    at = float(known - 1) * q
    floor, ceil = math.floor(at), math.ceil(at)
    bottom = low + int(np.searchsorted(cumulative, floor, "right"))
    top = low + int(np.searchsorted(cumulative, ceil, "right"))
    fraction = at - floor
    return bottom * (1 - fraction) + top * fraction
