"""Hypothesis properties of the parsers hostile input reaches first.

What the example-based suites (tests/domain, tests/ingest, tests/api/test_cursor.py) do not
already cover: events drawn from the whole valid space rather than a few fixtures, any single
field replaced by any JSON value, and cursors over any position and filter, tampered anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from security_support import flight_events

from aeroflow.api.cursor import CursorCodec, InvalidCursorError
from aeroflow.domain.events import FLIGHT_ID_RE, FlightEvent, FlightStatus
from aeroflow.ingest.envelope import EnvelopeError, decode_message, decode_push
from aeroflow.ingest.publisher import event_message, push_envelope
from aeroflow.ingest.wire import encode_event, unwrap_unions
from aeroflow.storage.port import (
    AcceptedMessage,
    FlightFilter,
    Keyset,
    MessageMeta,
    RejectedMessage,
    SortOrder,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
META = MessageMeta(message_id="m-1", publish_time=NOW)
FIELDS = list(FlightEvent.model_fields)
REQUIRED = [name for name, info in FlightEvent.model_fields.items() if info.is_required()]
_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_texts, children, max_size=3),
    max_leaves=8,
)


def assert_invariants(event: FlightEvent) -> None:
    """What every accepted event guarantees to storage and to API clients."""
    assert FLIGHT_ID_RE.fullmatch(event.flight_id)
    assert event.origin != event.destination
    assert timedelta(0) < event.scheduled_arrival - event.scheduled_departure <= timedelta(hours=24)
    if event.status in {FlightStatus.SCHEDULED, FlightStatus.CANCELLED}:
        assert event.actual_departure is None
        assert event.actual_arrival is None
    else:
        assert event.actual_departure is not None
    if event.actual_arrival is not None:
        assert event.actual_departure is not None
        assert event.actual_arrival > event.actual_departure
    for delay in (event.dep_delay_minutes, event.arr_delay_minutes):
        assert delay is None or -24 * 60 <= delay <= 72 * 60


# --- FlightEvent ---------------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(flight_events())
def test_every_valid_event_survives_the_wire_unchanged(event: FlightEvent) -> None:
    assert_invariants(event)
    for wire in (encode_event(event), event.model_dump_json().encode()):  # Avro JSON, plain
        result = decode_message(META, wire, NOW)
        assert isinstance(result, AcceptedMessage), getattr(result, "detail", "")
        parsed = result.event
        assert parsed == event
        # The offsets, and so the local date in the flight id, are kept.
        assert parsed.flight_id == event.flight_id
        assert parsed.scheduled_departure.utcoffset() == event.scheduled_departure.utcoffset()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(event=flight_events(), field=st.sampled_from([*FIELDS, "unknown"]), value=json_values)
def test_any_field_set_to_any_json_value_is_refused_or_still_valid(
    event: FlightEvent, field: str, value: Any
) -> None:
    document = event.model_dump(mode="json")
    document[field] = value
    try:
        parsed = FlightEvent.model_validate_json(json.dumps(document))
    except ValidationError:
        return
    assert field != "unknown"  # extra fields are forbidden
    assert_invariants(parsed)


@settings(max_examples=100)
@given(event=flight_events(), field=st.sampled_from(REQUIRED))
def test_removing_a_required_field_is_refused(event: FlightEvent, field: str) -> None:
    document = event.model_dump(mode="json")
    del document[field]
    with pytest.raises(ValidationError, match=field):
        FlightEvent.model_validate_json(json.dumps(document))


# --- the envelope decoder ------------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(event=flight_events(), attempt=st.none() | st.integers(0, 100))
def test_any_valid_event_in_a_push_envelope_is_accepted_as_sent(
    event: FlightEvent, attempt: int | None
) -> None:
    message = event_message(event)
    body = orjson.dumps(push_envelope(message, "2026-01-01T00:00:00Z", delivery_attempt=attempt))
    result = decode_push(body, NOW)
    assert isinstance(result, AcceptedMessage)
    assert result.event == event
    assert result.meta.message_id == message.message_id
    assert result.meta.delivery_attempt == attempt


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        flight_events().map(encode_event),
        flight_events().map(lambda e: encode_event(e)[:-7]),  # truncated
    ),
    as_base64=st.booleans(),
)
@example(data=b"", as_base64=True)
@example(data=b"\xff\xfe", as_base64=False)
@example(data=b"[" * 5000 + b"]" * 5000, as_base64=True)
def test_message_data_is_accepted_exactly_when_it_is_a_valid_event(
    data: bytes, as_base64: bool
) -> None:
    wire: bytes | str = base64.b64encode(data).decode() if as_base64 else data
    result = decode_message(META, wire, NOW)  # never raises
    expected = _event_or_none(data)
    if expected is None:
        assert isinstance(result, RejectedMessage)
        assert result.raw_data == data
        assert 0 < len(result.detail) <= 400
    else:
        assert isinstance(result, AcceptedMessage)
        assert result.event == expected


def _event_or_none(data: bytes) -> FlightEvent | None:
    """The oracle: a JSON object that, with Avro union wrappers removed, is a valid event."""
    try:
        document = orjson.loads(data)
        if type(document) is not dict:
            return None
        unwrap_unions(document)
        return FlightEvent.model_validate_json(orjson.dumps(document))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, ValidationError):
        return None


@settings(max_examples=300)
@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_push_bodies_raise_nothing_but_envelope_error(body: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_push(body, NOW)


# --- the cursor codec ---------------------------------------------------------------------------

SECRET = b"property-secret"
_codes3 = st.none() | st.from_regex(r"[A-Z]{3}", fullmatch=True)
_instants = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
filters = st.builds(
    FlightFilter,
    carrier=st.none() | st.from_regex(r"[A-Z0-9]{2}", fullmatch=True),
    origin=_codes3,
    destination=_codes3,
    status=st.none() | st.sampled_from(list(FlightStatus)),
    departure_from=st.none() | _instants,
    departure_to=st.none() | _instants,
    min_dep_delay=st.none() | st.integers(-100_000, 100_000),
)
keysets = st.builds(
    Keyset,
    scheduled_departure=_instants,
    flight_id=st.from_regex(r"[A-Z0-9]{2}[0-9]{4}-[A-Z]{3}-[0-9]{8}", fullmatch=True),
)
sorts = st.sampled_from(list(SortOrder))


@settings(max_examples=300)
@given(keyset=keysets, sort=sorts, flight_filter=filters)
def test_cursor_round_trip(keyset: Keyset, sort: SortOrder, flight_filter: FlightFilter) -> None:
    codec = CursorCodec(SECRET)
    token = codec.encode(keyset, sort, flight_filter)
    assert codec.decode(token, sort, flight_filter) == keyset
    assert keyset.flight_id not in token  # opaque


@st.composite
def tamperings(draw: st.DrawFn, token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    how = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if how == "flip":
        position = draw(st.integers(0, len(raw) - 1))
        raw[position] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "extend":
        raw += draw(st.binary(min_size=1, max_size=40))
    else:  # a payload of the attacker's choice under the old tag
        payload = orjson.dumps([1, "asc", 0, "UA0001-EWR-20130101", "x"])
        raw = bytearray(payload) + raw[-32:]
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@settings(max_examples=400)
@given(keyset=keysets, sort=sorts, flight_filter=filters, data=st.data())
def test_any_tampered_cursor_is_refused(
    keyset: Keyset, sort: SortOrder, flight_filter: FlightFilter, data: st.DataObject
) -> None:
    codec = CursorCodec(SECRET)
    token = codec.encode(keyset, sort, flight_filter)
    tampered = data.draw(tamperings(token))
    if tampered == token:
        return
    with pytest.raises(InvalidCursorError):
        codec.decode(tampered, sort, flight_filter)


@settings(max_examples=300)
@given(
    keyset=keysets,
    sort=sorts,
    issued_for=filters,
    used_with=filters,
    other_sort=sorts,
    secret=st.binary(min_size=1, max_size=32),
)
def test_a_cursor_is_only_good_for_its_query_and_its_secret(
    keyset: Keyset,
    sort: SortOrder,
    issued_for: FlightFilter,
    used_with: FlightFilter,
    other_sort: SortOrder,
    secret: bytes,
) -> None:
    token = CursorCodec(SECRET).encode(keyset, sort, issued_for)
    if (used_with, other_sort) != (issued_for, sort):
        with pytest.raises(InvalidCursorError):
            CursorCodec(SECRET).decode(token, other_sort, used_with)
    if secret != SECRET:
        with pytest.raises(InvalidCursorError):
            CursorCodec(secret).decode(token, sort, issued_for)
