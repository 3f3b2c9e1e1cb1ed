"""Packed integer columns and dictionaries: exact values back, in narrow types."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from aeroflow.storage.read_model.columns import NO_CODE, NULL, Dictionary, PackedInts

UNITS = (60_000_000, 1_000_000, 1_000, 1)
values = st.lists(st.none() | st.integers(-(2**50), 2**50), max_size=40)


def as_array(items: list[int | None]) -> np.ndarray:
    return np.array([NULL if v is None else v for v in items], np.int64)


@given(values)
def test_packed_values_unpack_exactly(items: list[int | None]) -> None:
    packed = PackedInts.pack(as_array(items), UNITS)
    assert packed.unpack(slice(None)).tolist() == as_array(items).tolist()
    rows = np.arange(len(items))[::-1]
    assert packed.take(rows).unpack(slice(None)).tolist() == as_array(items)[rows].tolist()


@given(st.lists(values, max_size=4))
def test_concatenated_columns_keep_every_value(parts: list[list[int | None]]) -> None:
    packed = [PackedInts.pack(as_array(p), UNITS) for p in parts]
    joined = PackedInts.concat(packed)
    expected = [v for p in parts for v in as_array(p).tolist()]
    assert joined.unpack(slice(None)).tolist() == expected


def test_whole_minutes_within_a_day_take_two_bytes() -> None:
    minutes = np.array([-20, 0, 95, 1_440], np.int64) * 60_000_000
    packed = PackedInts.pack(np.append(minutes, NULL), UNITS)
    assert packed.unit == 60_000_000
    assert packed.data.dtype == np.int16
    # One microsecond off a minute and the column keeps microseconds, still exact.
    exact = PackedInts.pack(minutes + 1, UNITS)
    assert exact.unit == 1
    assert exact.unpack(slice(None)).tolist() == (minutes + 1).tolist()


def test_dictionary_codes_are_stable_and_null_has_none() -> None:
    dictionary = Dictionary()
    first = dictionary.encode(pa.array(["UA", None, "AA", "UA"]))
    assert first.tolist() == [0, NO_CODE, 1, 0]
    assert dictionary.encode(pa.array(["AA", "B6"])).tolist() == [1, 2]
    assert dictionary.encode(pa.array([None, None], pa.string())).tolist() == [NO_CODE] * 2
    assert dictionary.values == ["UA", "AA", "B6"]
    assert dictionary.lookup("B6") == 2
    assert dictionary.lookup("DL") is None
