from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import orjson
from hypothesis import given
from hypothesis import strategies as st
from ingest_helpers import arrived_event, scheduled_event

from aeroflow.domain.events import FlightStatus
from aeroflow.ingest.publisher import (
    LOCAL_SUBSCRIPTION,
    MESSAGE_ID_NAMESPACE,
    PublishReport,
    event_message,
    message_id_for,
    push_envelope,
    raw_message,
    rfc3339_now,
)
from aeroflow.ingest.wire import encode_event


def test_event_message_is_deterministic_and_keyed_by_flight() -> None:
    event = arrived_event()
    message = event_message(event)
    assert message == event_message(arrived_event())  # a replay gets the same id
    assert uuid.UUID(message.message_id).version == 5
    assert message.ordering_key == "UA1545-EWR-20130101"
    assert message.attributes == {"event_type": "arrived", "flight_id": "UA1545-EWR-20130101"}
    assert message.data == encode_event(event)


def test_message_ids_differ_by_status_and_event_time_but_not_by_offset() -> None:
    arrived = event_message(arrived_event()).message_id
    departed = arrived_event(
        status=FlightStatus.DEPARTED,
        actual_arrival=None,
        air_time_minutes=None,
        event_time=arrived_event().event_time,
    )
    assert event_message(departed).message_id != arrived
    later = arrived_event(event_time=arrived_event().event_time + timedelta(minutes=1))
    assert event_message(later).message_id != arrived
    same_instant_other_offset = arrived_event(
        event_time=arrived_event().event_time.astimezone(scheduled_event().event_time.tzinfo)
    )
    assert event_message(same_instant_other_offset).message_id == arrived


def test_raw_lines_become_event_messages_when_they_are_events() -> None:
    event = arrived_event()
    assert raw_message(event.model_dump_json().encode()) == event_message(event)
    assert raw_message(encode_event(event)) == event_message(event)


def test_raw_lines_that_are_not_events_are_sent_as_they_are() -> None:
    message = raw_message(b'{"carrier": "??"}')
    assert message.data == b'{"carrier": "??"}'
    assert message.attributes == {}
    assert message.ordering_key == ""
    assert message.message_id == raw_message(b'{"carrier": "??"}').message_id
    assert message.message_id != raw_message(b"garbage").message_id


def test_push_envelope_has_the_shape_pubsub_sends() -> None:
    message = event_message(scheduled_event())
    published = rfc3339_now()
    assert published.endswith("Z")
    body = push_envelope(message, published, delivery_attempt=2)
    assert body == {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": message.attributes,
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
            "orderingKey": message.ordering_key,
        },
        "subscription": LOCAL_SUBSCRIPTION,
        "deliveryAttempt": 2,
    }
    orjson.dumps(body)  # serialisable as is


def test_publish_report_rates() -> None:
    report = PublishReport(published=90, failed=10, retries=3, elapsed_seconds=2.0)
    assert not report.ok
    assert report.messages_per_second == 50
    assert PublishReport(0, 0, 0, 0.0).messages_per_second == 0


@given(st.text(max_size=200))
def test_message_ids_are_uuid5_of_the_name(name: str) -> None:
    assert message_id_for(name) == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, name))
