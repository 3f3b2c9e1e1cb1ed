"""``FlightReadModel.holds``: which flights the model holds, wherever their row lives (a run,
a run's masked row replaced in the tail, the tail), the answer the write path relies on to skip
looking up flights it has never stored."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
from storage_factories import accepted, make_event

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb_rows import event_rows
from aeroflow.storage.read_model import FlightReadModel, Tuning


def _rows(numbers: range, status: FlightStatus = FlightStatus.SCHEDULED) -> pa.Table:
    """``flights`` rows of one event per flight number, over a few departure days."""
    messages = [
        accepted(
            make_event(
                flight_number=n,
                departure_local=datetime(2013, 1, 1, 5) + timedelta(days=n % 3),
                status=status,
            ),
            f"{status.value}-{n}",
        )
        for n in numbers
    ]
    return event_rows(messages).flights_rows(range(len(messages)))


def _ids(numbers: range) -> list[str]:
    return _rows(numbers).column("flight_id").to_pylist()


def test_holds_the_flights_of_every_run_and_of_the_tail_and_no_other() -> None:
    # Tiny runs, merged in this thread: the flights end up in several runs and the tail.
    model = FlightReadModel(Tuning(freeze_rows=8, merge_ratio=2, background_merges=False))
    try:
        model.apply(_rows(range(1, 30)))
        model.apply(_rows(range(30, 45)))
        # Rows replaced: masked in their run, live again in the tail.
        model.apply(_rows(range(1, 6), FlightStatus.DEPARTED))
        model.apply(_rows(range(45, 48)))
        assert len(model.run_sizes) > 1
        wanted = [*_ids(range(1, 48)), *_ids(range(100, 110))]

        held = model.holds(pa.array(wanted, pa.string()))

        assert held is not None
        assert held.tolist() == [True] * 47 + [False] * 10
    finally:
        model.close()


def test_an_empty_model_holds_nothing() -> None:
    model = FlightReadModel(Tuning(background_merges=False))
    try:
        held = model.holds(pa.array(_ids(range(1, 4)), pa.string()))
        assert held is not None
        assert held.tolist() == [False, False, False]
    finally:
        model.close()


def test_an_id_the_model_cannot_key_leaves_the_answer_to_sql() -> None:
    model = FlightReadModel(Tuning(background_merges=False))
    try:
        model.apply(_rows(range(1, 4)))
        assert model.holds(pa.array([*_ids(range(1, 3)), "legacy-id"], pa.string())) is None
    finally:
        model.close()
