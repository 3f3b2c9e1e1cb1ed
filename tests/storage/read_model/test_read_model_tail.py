"""The tail's upsert: every flight keeps exactly one row, new flights are appended, known ones
overwritten in place, whatever mix of both a batch holds."""

from __future__ import annotations

import numpy as np

from aeroflow.storage.read_model.columns import CODED, PACKED, FlightColumns
from aeroflow.storage.read_model.tail import Tail


def batch(keys: list[int], value: int) -> FlightColumns:
    """Rows of ``keys`` whose every packed column and code is ``value`` (departure: the key)."""
    n = len(keys)
    return FlightColumns(
        np.array(keys, np.int64),
        np.array(keys, np.int64),
        {name: np.full(n, value, np.int64) for name in PACKED},
        {name: np.full(n, value, np.int32) for name in CODED},
    )


def rows_by_key(tail: Tail) -> dict[int, int]:
    """key -> the value its row holds, checking every column of the row agrees."""
    contents = tail.contents()
    result: dict[int, int] = {}
    for at, key in enumerate(contents.keys.tolist()):
        values = {int(contents.ints[name][at]) for name in PACKED}
        values |= {int(contents.codes[name][at]) for name in CODED}
        assert len(values) == 1, f"row of {key} mixes two writes"
        assert key not in result, f"{key} has two rows"
        result[key] = values.pop()
    return result


def test_new_flights_are_appended_and_known_ones_overwritten() -> None:
    tail = Tail()
    tail.upsert(batch([10, 20, 30], 1))  # all new
    tail.upsert(batch([20, 40, 10, 50], 2))  # known and new mixed, in any order
    tail.upsert(batch([50, 30], 3))  # all known

    assert len(tail) == 5
    assert rows_by_key(tail) == {10: 2, 20: 2, 30: 3, 40: 2, 50: 3}
    for key in (10, 20, 30, 40, 50):
        row = tail.find(key)
        assert row is not None
        assert tail.row(row).key == key
    assert tail.find(60) is None


def test_growing_past_the_capacity_keeps_every_row() -> None:
    tail = Tail()
    first = list(range(0, 3000, 3))
    tail.upsert(batch(first, 1))
    second = list(range(0, 6000, 2))  # overlaps the first on multiples of 6
    tail.upsert(batch(second, 2))

    expected = dict.fromkeys(first, 1) | dict.fromkeys(second, 2)
    assert rows_by_key(tail) == expected
    assert len(tail) == len(expected)
