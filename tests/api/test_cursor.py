"""Signed cursors: the codec on its own, then tampering through the API."""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from aeroflow.api.cursor import CursorCodec, InvalidCursorError
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightFilter, FlightStore, Keyset, SortOrder

from .support import AppFactory, assert_error

KEYSET = Keyset(datetime(2013, 1, 1, 11, 0, 0, 123456, tzinfo=UTC), "UA1545-EWR-20130101")
FILTER = FlightFilter(carrier="UA", departure_from=datetime(2013, 1, 1, tzinfo=UTC))
CODEC = CursorCodec(b"test-secret")


def test_round_trip_preserves_the_keyset_exactly() -> None:
    token = CODEC.encode(KEYSET, SortOrder.ASC, FILTER)
    assert CODEC.decode(token, SortOrder.ASC, FILTER) == KEYSET


def test_tokens_are_url_safe_and_opaque() -> None:
    token = CODEC.encode(KEYSET, SortOrder.DESC, FILTER)
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")
    assert len(token) < 200


@pytest.mark.parametrize(
    ("sort", "flight_filter"),
    [
        (SortOrder.DESC, FILTER),
        (SortOrder.ASC, FlightFilter(carrier="AA", departure_from=FILTER.departure_from)),
        (SortOrder.ASC, FlightFilter(carrier="UA")),
        (
            SortOrder.ASC,
            FlightFilter(carrier="UA", departure_from=FILTER.departure_from, min_dep_delay=0),
        ),
    ],
)
def test_another_sort_or_filter_is_refused(sort: SortOrder, flight_filter: FlightFilter) -> None:
    token = CODEC.encode(KEYSET, SortOrder.ASC, FILTER)
    with pytest.raises(InvalidCursorError):
        CODEC.decode(token, sort, flight_filter)


def test_equal_instants_in_other_zones_fingerprint_alike() -> None:
    token = CODEC.encode(KEYSET, SortOrder.ASC, FILTER)
    same = FlightFilter(
        carrier="UA", departure_from=datetime(2013, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    )
    assert CODEC.decode(token, SortOrder.ASC, same) == KEYSET


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    token = CursorCodec(b"other-secret").encode(KEYSET, SortOrder.ASC, FILTER)
    with pytest.raises(InvalidCursorError, match="signature"):
        CODEC.decode(token, SortOrder.ASC, FILTER)


def test_every_single_byte_change_is_detected() -> None:
    token = CODEC.encode(KEYSET, SortOrder.ASC, FILTER)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(InvalidCursorError):
            CODEC.decode(forged, SortOrder.ASC, FILTER)


def test_a_forged_payload_without_the_key_is_refused() -> None:
    # What an attacker can build: a plausible payload with a made-up tag.
    payload = b'[1,"asc",0,"UA1545-EWR-20130101","x"]'
    forged = base64.urlsafe_b64encode(payload + b"\0" * 32).rstrip(b"=").decode()
    with pytest.raises(InvalidCursorError):
        CODEC.decode(forged, SortOrder.ASC, FlightFilter())


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        CursorCodec(b"")


@given(st.text(max_size=600))
def test_arbitrary_text_never_decodes_and_never_raises_anything_else(token: str) -> None:
    with pytest.raises(InvalidCursorError):
        CODEC.decode(token, SortOrder.ASC, FILTER)


@given(st.binary(max_size=200))
def test_arbitrary_url_safe_bytes_never_decode(data: bytes) -> None:
    token = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    with pytest.raises(InvalidCursorError):
        CODEC.decode(token, SortOrder.ASC, FILTER)


# --- through the API ---------------------------------------------------------------------


def _first_cursor(client: TestClient, params: dict[str, str]) -> str:
    body = client.get("/v1/flights", params={**params, "limit": "3"}).json()
    assert body["next_cursor"] is not None
    return str(body["next_cursor"])


def test_a_cursor_used_with_other_filters_is_400_invalid_cursor(client: TestClient) -> None:
    cursor = _first_cursor(client, {"carrier": "UA"})
    response = client.get("/v1/flights", params={"carrier": "AA", "cursor": cursor})
    error = assert_error(response, 400, "invalid_cursor")
    assert "filters" in error["message"]
    response = client.get("/v1/flights", params={"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")


def test_a_cursor_used_with_the_other_sort_order_is_400_invalid_cursor(
    client: TestClient,
) -> None:
    cursor = _first_cursor(client, {"sort": "asc"})
    response = client.get("/v1/flights", params={"sort": "desc", "cursor": cursor})
    assert "sort" in assert_error(response, 400, "invalid_cursor")["message"]


def test_a_tampered_cursor_is_400_invalid_cursor(client: TestClient) -> None:
    cursor = _first_cursor(client, {})
    for index in (0, len(cursor) // 2, len(cursor) - 2):
        replacement = "A" if cursor[index] != "A" else "B"
        tampered = cursor[:index] + replacement + cursor[index + 1 :]
        response = client.get("/v1/flights", params={"cursor": tampered})
        assert_error(response, 400, "invalid_cursor")


def test_cursors_do_not_survive_a_secret_rotation(
    client: TestClient, make_app: AppFactory, seeded_store: FlightStore
) -> None:
    cursor = _first_cursor(client, {})
    rotated = make_app(
        seeded_store, app_settings=Settings(environment="test", cursor_secret="rotated")
    )
    with TestClient(rotated) as other:
        assert_error(other.get("/v1/flights", params={"cursor": cursor}), 400, "invalid_cursor")


@pytest.mark.parametrize(
    "cursor",
    ["", "abc", "!!!!", "a" * 513, "x" * 500, "eyJ0eXAiOiJKV1QifQ", "=" * 8, "A" * 4 + "\x00"],
)
def test_garbage_cursors_are_400_invalid_cursor(client: TestClient, cursor: str) -> None:
    assert_error(client.get("/v1/flights", params={"cursor": cursor}), 400, "invalid_cursor")
