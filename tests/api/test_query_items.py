"""The fast path's query parse is the standard library's, byte for byte."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from aeroflow.api.fast_reads import query_items

# Separators, escapes (valid, truncated, non-ASCII), plus signs and latin-1 bytes.
_PIECES = st.sampled_from(
    ["&", "=", "+", "%", "%2", "%3A", "%26", "%3D", "%2B", "%C3%A9", "%FF", "a", "UA", "é", " "]
)


@given(st.lists(_PIECES, max_size=20).map("".join))
def test_query_items_match_parse_qsl(text: str) -> None:
    raw = text.encode("utf-8")
    assert query_items(raw) == parse_qsl(raw.decode("latin-1"), keep_blank_values=True)


def test_query_items_of_a_bench_page() -> None:
    raw = b"carrier=AA&destination=STT&departure_from=2013-06-27T05%3A00%3A00Z&limit=50"
    assert query_items(raw) == [
        ("carrier", "AA"),
        ("destination", "STT"),
        ("departure_from", "2013-06-27T05:00:00Z"),
        ("limit", "50"),
    ]
