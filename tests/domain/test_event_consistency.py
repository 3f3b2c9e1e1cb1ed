"""FlightEvent._check_consistency works on integer µs since the epoch: the same accept/reject
decisions and the same messages as the aware-datetime version it replaced (kept here as the
reference), for any times around every bound, any offsets and any status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aeroflow.domain.events import FlightEvent, FlightStatus

_MIN_TIME = datetime(1950, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_EARLY = timedelta(hours=24)
_MAX_LATE = timedelta(hours=72)
_MAX_SCHEDULED_DURATION = timedelta(hours=24)


def _reference(event: FlightEvent) -> None:
    """The check as it was written over aware datetimes (before the µs rewrite)."""
    for name in (
        "scheduled_departure",
        "scheduled_arrival",
        "actual_departure",
        "actual_arrival",
        "event_time",
    ):
        value: datetime | None = getattr(event, name)
        if value is not None and not _MIN_TIME <= value < _MAX_TIME:
            raise ValueError(f"{name} is outside 1950..2100")
    if event.origin == event.destination:
        raise ValueError("origin and destination must differ")
    duration = event.scheduled_arrival - event.scheduled_departure
    if duration <= timedelta(0):
        raise ValueError("scheduled_arrival must be after scheduled_departure")
    if duration > _MAX_SCHEDULED_DURATION:
        raise ValueError("scheduled flight longer than 24 hours")
    dep, arr = event.actual_departure, event.actual_arrival
    needs_departure = {FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED}
    if event.status in needs_departure and dep is None:
        raise ValueError(f"status {event.status} requires actual_departure")
    if event.status is FlightStatus.ARRIVED and arr is None:
        raise ValueError("status arrived requires actual_arrival")
    if event.status in {FlightStatus.SCHEDULED, FlightStatus.CANCELLED} and (dep or arr):
        raise ValueError(f"status {event.status} cannot have actual times")
    if event.status is FlightStatus.DEPARTED and arr is not None:
        raise ValueError("status departed cannot have actual_arrival")
    if dep is not None and not (-_MAX_EARLY <= dep - event.scheduled_departure <= _MAX_LATE):
        raise ValueError("actual_departure is implausibly far from scheduled_departure")
    if arr is not None:
        if dep is None or arr <= dep:
            raise ValueError("actual_arrival must be after actual_departure")
        if not -_MAX_EARLY <= arr - event.scheduled_arrival <= _MAX_LATE:
            raise ValueError("actual_arrival is implausibly far from scheduled_arrival")


def _outcome(check: object, event: FlightEvent) -> str | None:
    assert callable(check)
    try:
        check(event)
    except ValueError as exc:
        return str(exc)
    return None


_OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Deltas that land on, and a µs either side of, every bound the check knows (0, 24 h, 72 h).
_BOUNDS = [timedelta(0), _MAX_EARLY, _MAX_LATE, _MAX_SCHEDULED_DURATION]
_NEAR_BOUNDS = st.builds(
    lambda bound, sign, nudge: sign * bound + timedelta(microseconds=nudge),
    st.sampled_from(_BOUNDS),
    st.sampled_from([-1, 1]),
    st.integers(-1, 1),
)
_DELTAS = st.one_of(_NEAR_BOUNDS, st.timedeltas(timedelta(days=-5), timedelta(days=5)))
# Mostly plausible, so that the later checks are reached as often as the earlier ones fail.
_PLAUSIBLE = st.timedeltas(-_MAX_EARLY, _MAX_LATE)
_FLIGHT_TIMES = st.timedeltas(timedelta(minutes=1), _MAX_SCHEDULED_DURATION)
_IN_RANGE = st.datetimes(datetime(1951, 1, 1), datetime(2098, 12, 31), timezones=st.just(UTC))
# Instants around the 1950 and 2100 bounds as well as inside them.
_INSTANTS = st.one_of(
    st.sampled_from([_MIN_TIME, _MAX_TIME]).flatmap(
        lambda bound: st.integers(-2, 2).map(lambda us: bound + timedelta(microseconds=us))
    ),
    _IN_RANGE,
    _IN_RANGE,
    _IN_RANGE,
)


def _local(instant: datetime, offset: timezone) -> datetime:
    return instant.astimezone(offset)


@st.composite
def _events(draw: st.DrawFn) -> FlightEvent:
    status = draw(st.sampled_from(list(FlightStatus)))
    departure = _local(draw(_INSTANTS), draw(_OFFSETS))
    arrival = _local(departure + draw(st.one_of(_DELTAS, _FLIGHT_TIMES)), draw(_OFFSETS))
    flown = status in (FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED)
    # Actual times as the status wants them three times out of four, any way otherwise.
    usual = draw(st.sampled_from([True, True, True, False]))
    actual_departure = actual_arrival = None
    if flown if usual else draw(st.booleans()):
        actual_departure = _local(departure + draw(st.one_of(_DELTAS, _PLAUSIBLE)), draw(_OFFSETS))
    if status is FlightStatus.ARRIVED if usual else draw(st.booleans()):
        # Relative to the scheduled arrival, or to the actual departure (ties and near-ties).
        base = draw(st.sampled_from([arrival, actual_departure or arrival]))
        actual_arrival = _local(base + draw(st.one_of(_DELTAS, _PLAUSIBLE)), draw(_OFFSETS))
    # Built without validation: the checks under test are what decides.
    return FlightEvent.model_construct(
        carrier="UA",
        flight_number=1545,
        origin="EWR",
        destination=draw(st.sampled_from(["IAH", "IAH", "IAH", "EWR"])),
        scheduled_departure=departure,
        scheduled_arrival=arrival,
        status=status,
        actual_departure=actual_departure,
        actual_arrival=actual_arrival,
        tail_number=None,
        distance_miles=1400,
        air_time_minutes=None,
        event_time=_local(draw(_INSTANTS), draw(_OFFSETS)),
    )


@settings(max_examples=3000, deadline=None)
@given(event=_events())
def test_same_decision_and_message_as_the_aware_datetime_check(event: FlightEvent) -> None:
    assert _outcome(FlightEvent._check_consistency, event) == _outcome(_reference, event)


@pytest.mark.parametrize("status", list(FlightStatus))
@given(event=_events())
@example(event=None)
def test_every_status_is_judged_the_same(status: FlightStatus, event: FlightEvent | None) -> None:
    if event is None:  # the plain valid case, whatever the draw
        departure = datetime(2013, 1, 1, 5, 15, tzinfo=timezone(timedelta(hours=-5)))
        event = FlightEvent.model_construct(
            carrier="UA",
            flight_number=1545,
            origin="EWR",
            destination="IAH",
            scheduled_departure=departure,
            scheduled_arrival=departure + timedelta(hours=3),
            status=status,
            actual_departure=departure + timedelta(minutes=5),
            actual_arrival=departure + timedelta(hours=3, minutes=1),
            tail_number=None,
            distance_miles=1400,
            air_time_minutes=None,
            event_time=departure,
        )
    else:
        event = event.model_copy(update={"status": status})
    assert _outcome(FlightEvent._check_consistency, event) == _outcome(_reference, event)


def _boundary_events() -> list[FlightEvent]:
    """Each bound of each check at -1 µs, on it and +1 µs, in two zones per instant."""
    west, east = timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30))
    departure = datetime(2013, 1, 1, 5, 15, tzinfo=west)
    arrival = (departure + timedelta(hours=3)).astimezone(east)
    base = FlightEvent.model_construct(
        carrier="UA",
        flight_number=1545,
        origin="EWR",
        destination="IAH",
        scheduled_departure=departure,
        scheduled_arrival=arrival,
        status=FlightStatus.ARRIVED,
        actual_departure=departure - _MAX_EARLY,
        actual_arrival=arrival - timedelta(hours=1),
        tail_number=None,
        distance_miles=1400,
        air_time_minutes=None,
        event_time=departure,
    )
    cases: list[FlightEvent] = []
    for nudge in (timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1)):
        for zone in (west, east):
            changes: list[dict[str, object]] = [
                {"scheduled_arrival": (departure + nudge).astimezone(zone)},
                {
                    "scheduled_arrival": (departure + _MAX_SCHEDULED_DURATION + nudge).astimezone(
                        zone
                    )
                },
                {"actual_departure": (departure - _MAX_EARLY + nudge).astimezone(zone)},
                {
                    "actual_departure": (departure + _MAX_LATE + nudge).astimezone(zone),
                    "status": FlightStatus.DEPARTED,
                    "actual_arrival": None,
                },
                {"actual_arrival": (arrival - _MAX_EARLY + nudge).astimezone(zone)},
                {"actual_arrival": (arrival + _MAX_LATE + nudge).astimezone(zone)},
                {"actual_arrival": (departure - _MAX_EARLY + nudge).astimezone(zone)},
            ]
            for name in ("scheduled_departure", "event_time", "actual_departure"):
                for bound in (_MIN_TIME, _MAX_TIME):
                    changes.append({name: (bound + nudge).astimezone(zone)})
            cases += [base.model_copy(update=change) for change in changes]
    return cases


@pytest.mark.parametrize("event", _boundary_events())
def test_every_bound_is_judged_the_same(event: FlightEvent) -> None:
    assert _outcome(FlightEvent._check_consistency, event) == _outcome(_reference, event)
