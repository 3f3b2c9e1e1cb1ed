from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ingest_helpers import arrived_event, envelope, scheduled_event

from aeroflow.ingest.envelope import (
    EnvelopeError,
    decode_message,
    decode_push,
    parse_push_envelope,
)
from aeroflow.ingest.publisher import event_message, push_envelope
from aeroflow.ingest.wire import encode_event
from aeroflow.storage.port import AcceptedMessage, MessageMeta, RejectedMessage, RejectReason

NOW = datetime(2013, 1, 2, 3, 5, tzinfo=UTC)
GOOD_DATA = encode_event(arrived_event())


def decode(body: bytes) -> AcceptedMessage | RejectedMessage:
    return decode_push(body, NOW)


def test_pubsub_envelope_yields_the_event_and_its_metadata() -> None:
    body = envelope(
        GOOD_DATA,
        attributes={"event_type": "arrived"},
        orderingKey="UA1545-EWR-20130101",
    )
    body = body[:-1] + b',"deliveryAttempt":3}'

    result = decode(body)

    assert isinstance(result, AcceptedMessage)
    assert result.event == arrived_event()
    assert result.ingest_time == NOW
    meta = result.meta
    assert meta.message_id == "4242"
    # Pub/Sub sends nanoseconds; Python keeps microseconds.
    assert meta.publish_time == datetime(2013, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert meta.attributes == {"event_type": "arrived"}
    assert meta.ordering_key == "UA1545-EWR-20130101"
    assert meta.subscription == "projects/p/subscriptions/s"
    assert meta.delivery_attempt == 3


def test_snake_case_only_fields_are_enough() -> None:
    body = orjson.dumps(
        {
            "message": {
                "data": base64.b64encode(GOOD_DATA).decode(),
                "message_id": "snake",
                "publish_time": "2013-01-02T03:04:05+01:00",
            }
        }
    )
    result = decode(body)
    assert isinstance(result, AcceptedMessage)
    assert result.meta.message_id == "snake"
    assert result.meta.publish_time == datetime(2013, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert result.meta.attributes == {}
    assert result.meta.ordering_key is None
    assert result.meta.subscription is None
    assert result.meta.delivery_attempt is None


def test_unknown_envelope_fields_are_ignored() -> None:
    body = orjson.dumps(
        {
            "message": {
                "data": base64.b64encode(GOOD_DATA).decode(),
                "messageId": "1",
                "publishTime": "2013-01-02T03:04:05Z",
                "somethingNew": {"x": 1},
            },
            "alsoNew": True,
        }
    )
    assert isinstance(decode(body), AcceptedMessage)


def _message(**changes: Any) -> bytes:
    message: dict[str, Any] = {
        "data": base64.b64encode(GOOD_DATA).decode(),
        "messageId": "1",
        "publishTime": "2013-01-02T03:04:05Z",
    }
    for key, value in changes.items():
        if value is _DROP:
            message.pop(key)
        else:
            message[key] = value
    return orjson.dumps({"message": message})


_DROP = object()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[]", "JSON object"),
        (b'"message"', "JSON object"),
        (b"null", "JSON object"),
        (b"{}", "'message'"),
        (b'{"message": "hello"}', "'message'"),
        (b'{"message": [1]}', "'message'"),
        (_message(messageId=_DROP), "messageId"),
        (_message(messageId=""), "messageId"),
        (_message(messageId=17), "messageId"),
        (_message(publishTime=_DROP), "publishTime"),
        (_message(publishTime=1357095845), "publishTime"),
        (_message(publishTime="yesterday"), "publishTime"),
        (_message(publishTime="2013-01-02T03:04:05"), "publishTime"),  # no offset
        (_message(publishTime="0001-01-01T00:00:00+01:00"), "publishTime"),  # overflows UTC
        (_message(data=17), "data"),
        (_message(data={"a": 1}), "data"),
        (_message(attributes=["a"]), "attributes"),
        (_message(attributes={"a": 1}), "attributes"),
        (_message(orderingKey=5), "orderingKey"),
    ],
)
def test_malformed_envelopes_raise_envelope_error(body: bytes, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint):
        parse_push_envelope(body)


@pytest.mark.parametrize(
    "extra",
    [{"subscription": 5}, {"deliveryAttempt": "1"}, {"deliveryAttempt": True},
     {"deliveryAttempt": -1}, {"deliveryAttempt": 1.5}],
)  # fmt: skip
def test_malformed_top_level_fields_raise_envelope_error(extra: dict[str, object]) -> None:
    document = orjson.loads(_message())
    document.update(extra)
    with pytest.raises(EnvelopeError):
        parse_push_envelope(orjson.dumps(document))


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (None, RejectReason.INVALID_JSON, "no data"),
        (b"\xff\xfe\x00", RejectReason.INVALID_UTF8, "not UTF-8"),
        (b'{"carrier": "\xc3"}', RejectReason.INVALID_UTF8, "not UTF-8"),
        (b"{not json", RejectReason.INVALID_JSON, "not JSON"),
        (b'{"carrier": "UA"', RejectReason.INVALID_JSON, "not JSON"),
        (b"[1, 2]", RejectReason.SCHEMA_VIOLATION, "JSON object, got an array"),
        (b"42", RejectReason.SCHEMA_VIOLATION, "got a number"),
        (b'{"carrier": "UA"}', RejectReason.SCHEMA_VIOLATION, "flight_number: Field required"),
        (
            encode_event(arrived_event()).replace(b"1545", b'"1545"'),
            RejectReason.SCHEMA_VIOLATION,
            "flight_number: Input should be a valid integer",
        ),
        (
            encode_event(arrived_event()).replace(b'"IAH"', b'"EWR"'),
            RejectReason.SCHEMA_VIOLATION,
            "origin and destination must differ",
        ),
        (
            encode_event(arrived_event()).replace(b'{"string":"N14228"}', b'{"long":"N14228"}'),
            RejectReason.SCHEMA_VIOLATION,
            "tail_number",
        ),
        (
            encode_event(arrived_event())[:-1] + b',"gate":"C71"}',
            RejectReason.SCHEMA_VIOLATION,
            "gate: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_payloads_are_rejected_with_reason_and_raw_data(
    data: bytes | None, reason: RejectReason, detail: str
) -> None:
    result = decode(envelope(data))
    assert isinstance(result, RejectedMessage)
    assert result.reason is reason
    assert detail in result.detail
    assert result.raw_data == (data or b"")
    assert result.meta.message_id == "4242"
    assert result.received_at == NOW


def test_invalid_base64_is_rejected_and_keeps_the_text() -> None:
    body = orjson.dumps(
        {"message": {"data": "not*base64", "messageId": "1", "publishTime": "2013-01-02T03:04:05Z"}}
    )
    result = decode(body)
    assert isinstance(result, RejectedMessage)
    assert result.reason is RejectReason.INVALID_BASE64
    assert result.raw_data == b"not*base64"


def test_rejection_detail_is_short_and_does_not_echo_the_input() -> None:
    huge = "X" * 100_000
    bad = orjson.loads(encode_event(arrived_event()))
    bad["carrier"] = huge
    bad[huge] = 1
    result = decode(envelope(orjson.dumps(bad)))
    assert isinstance(result, RejectedMessage)
    assert result.reason is RejectReason.SCHEMA_VIOLATION
    assert len(result.detail) <= 400
    assert "X" * 50 not in result.detail
    assert "carrier" in result.detail


def test_plain_json_events_are_accepted_as_well_as_avro_json() -> None:
    event = arrived_event()
    plain = event.model_dump_json().encode()
    assert b'"tail_number":"N14228"' in plain
    result = decode(envelope(plain))
    assert isinstance(result, AcceptedMessage)
    assert result.event == event


def test_pull_messages_pass_raw_bytes() -> None:
    meta = MessageMeta(message_id="pulled", publish_time=NOW)
    accepted = decode_message(meta, encode_event(scheduled_event()), NOW)
    assert isinstance(accepted, AcceptedMessage)
    assert accepted.event == scheduled_event()
    rejected = decode_message(meta, b"\x00\x01", NOW)
    assert isinstance(rejected, RejectedMessage)
    assert rejected.reason is RejectReason.INVALID_JSON
    assert rejected.raw_data == b"\x00\x01"


@pytest.mark.parametrize("event", [arrived_event(), scheduled_event()])
def test_event_message_round_trips_through_a_push_envelope(event: Any) -> None:
    message = event_message(event)
    body = orjson.dumps(push_envelope(message, "2013-01-02T03:04:05.5Z", delivery_attempt=1))

    result = decode(body)

    assert isinstance(result, AcceptedMessage)
    assert result.event == event
    assert result.event.scheduled_departure.utcoffset() == event.scheduled_departure.utcoffset()
    assert result.meta.message_id == message.message_id
    assert result.meta.attributes == message.attributes
    assert result.meta.ordering_key == message.ordering_key == event.flight_id
    assert result.meta.publish_time == datetime(2013, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)


# --- properties --------------------------------------------------------------------------

# Strings a real sender can put in JSON (no lone surrogates); big ints and odd floats welcome.
_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_texts, children, max_size=4),
    max_leaves=12,
)
_message_ids = _texts.filter(bool)
_publish_times = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
_event_bytes = st.sampled_from([encode_event(arrived_event()), encode_event(scheduled_event())])
_data = st.one_of(
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    _event_bytes.map(lambda b: base64.b64encode(b).decode()),
    _json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    _texts,  # mostly not base64
)


@st.composite
def _valid_envelopes(draw: st.DrawFn) -> tuple[bytes, str]:
    message_id = draw(_message_ids)
    message: dict[str, Any] = {
        draw(st.sampled_from(["messageId", "message_id"])): message_id,
        draw(st.sampled_from(["publishTime", "publish_time"])): draw(_publish_times),
    }
    if draw(st.booleans()):
        message["data"] = draw(_data)
    if draw(st.booleans()):
        message["attributes"] = draw(st.dictionaries(_texts, _texts, max_size=3))
    if draw(st.booleans()):
        message["orderingKey"] = draw(_texts)
    document: dict[str, Any] = {"message": message}
    if draw(st.booleans()):
        document["deliveryAttempt"] = draw(st.integers(min_value=0, max_value=100))
    return json.dumps(document).encode(), message_id


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_envelopes())
def test_every_valid_envelope_yields_exactly_one_message(case: tuple[bytes, str]) -> None:
    body, message_id = case
    result = decode(body)  # must not raise: the envelope is valid
    assert isinstance(result, AcceptedMessage | RejectedMessage)
    assert result.meta.message_id == message_id
    event("accepted" if isinstance(result, AcceptedMessage) else f"rejected: {result.reason}")
    if isinstance(result, RejectedMessage):
        assert result.detail
        assert len(result.detail) <= 400


@st.composite
def _mangled_envelopes(draw: st.DrawFn) -> bytes:
    body, _ = draw(_valid_envelopes())
    document = orjson.loads(body)
    target = draw(st.sampled_from(["top", "message"]))
    where = document if target == "top" else document["message"]
    key = draw(st.sampled_from(
        ["message", "messageId", "message_id", "publishTime", "publish_time", "data",
         "attributes", "orderingKey", "subscription", "deliveryAttempt"]
    ))  # fmt: skip
    if draw(st.booleans()):
        where.pop(key, None)
    else:
        where[key] = draw(_json_values)
    return json.dumps(document).encode()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        _json_values.map(lambda v: json.dumps(v).encode()),
        _mangled_envelopes(),
    )
)
def test_decoder_raises_nothing_but_envelope_error(body: bytes) -> None:
    try:
        result = decode(body)
    except EnvelopeError:
        return
    assert isinstance(result, AcceptedMessage | RejectedMessage)
    assert isinstance(result.meta.message_id, str)
    assert result.meta.message_id
