"""The bounded memo: the function's values, column by column, within its capacity."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aeroflow.storage.read_model.memo import Memo


@given(st.lists(st.lists(st.integers(-50, 50), max_size=20), max_size=10))
def test_a_memo_gives_the_functions_values_and_stays_bounded(columns: list[list[int]]) -> None:
    def square(value: int) -> str:
        return str(value * value)

    memo = Memo(square, 16)
    widest = 0  # a column holding more distinct keys than the capacity is held whole
    for column in columns:
        assert memo.many(column) == [str(v * v) for v in column]
        widest = max(widest, len(set(column)))
        assert len(memo) <= max(16, widest)


def test_a_value_is_computed_once_while_remembered() -> None:
    calls: list[int] = []

    def successor(value: int) -> int:
        calls.append(value)
        return value + 1

    memo = Memo(successor, 8)
    assert memo.many([1, 2, 1]) == [2, 3, 2]
    assert memo.many([2, 1]) == [3, 2]
    assert calls == [1, 2]
