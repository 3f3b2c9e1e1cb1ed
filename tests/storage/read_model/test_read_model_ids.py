"""Flight ids as int64 keys: exact round trip, and the order of the keys is the ids' order."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from aeroflow.storage.read_model import ids

_CODE = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

flight_ids = st.builds(
    lambda carrier, number, origin, year, month, day: (
        f"{carrier}{number:04d}-{origin}-{year:04d}{month:02d}{day:02d}"
    ),
    st.text(_CODE, min_size=2, max_size=2),
    st.integers(0, 9999),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    st.integers(0, 9999),
    st.integers(1, 12),
    st.integers(1, 31),
)


@given(flight_ids)
def test_a_key_decodes_to_its_id(flight_id: str) -> None:
    key = ids.encode(flight_id)
    assert key is not None
    assert ids.decode(key) == flight_id
    assert ids.decode_many([key, key]) == [flight_id, flight_id]


@given(st.lists(flight_ids, min_size=2, max_size=20))
def test_keys_sort_as_the_ids_do(values: list[str]) -> None:
    keys = {v: ids.encode(v) for v in values}
    assert sorted(values) == sorted(values, key=lambda v: keys[v] or 0)


@given(st.lists(flight_ids, max_size=20))
def test_a_column_of_ids_encodes_as_each_id_does(values: list[str]) -> None:
    encoded = ids.encode_many("".join(values).encode(), len(values))
    assert encoded is not None
    assert encoded.tolist() == [ids.encode(v) for v in values]
    assert encoded.dtype == np.int64


def test_ids_not_in_the_domains_shape_have_no_key() -> None:
    for text in (
        "",
        "UA1545-EWR-2013010",  # short
        "ua1545-EWR-20130101",  # lower case carrier
        "UA1545-EW1-20130101",  # digit in the airport
        "UA1545_EWR-20130101",
        "UA1545-EWR-20131301",  # month 13
        "UA1545-EWR-20130132",  # day 32
        "UA1545-EWR-20130100",
    ):
        assert ids.encode(text) is None, text
        if len(text) == ids.ID_LENGTH:
            assert ids.encode_many(text.encode(), 1) is None, text


@given(st.lists(flight_ids, min_size=1, max_size=20))
def test_an_id_is_its_two_halves_side_by_side(values: list[str]) -> None:
    keys = np.array([ids.encode(v) for v in values], np.int64)
    prefixes, dates = ids.decode_halves(keys)
    assert [p + d for p, d in zip(prefixes, dates, strict=True)] == values
    opened, _ = ids.decode_halves(keys, ids.prefix_memo("<"))
    assert opened == ["<" + p for p in prefixes]
