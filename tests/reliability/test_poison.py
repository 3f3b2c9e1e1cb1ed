"""Poison: 10 % invalid messages mixed into a load never block the valid ones.

Every kind of poison a push subscription can deliver, each with the reason it must be kept
under in ``rejected_messages``: data that is not base64, bytes that are not UTF-8, text that is
not JSON, no data at all, JSON that is not an object, and events that break the schema (wrong
types, unknown airlines' codes, arrivals before departures, missing fields). A poison message
must be acknowledged at once (2xx on its first delivery: redelivering it would never help), and
kept with its reason; every valid message must be stored as if the poison had not been there.

The same valid messages are also sent on their own to a second, fresh server, and both
throughputs are recorded (junit properties ``clean_msg_per_s``, ``poison_msg_per_s``,
``poison_throughput_ratio``); the benchmark (bench/bench_soak.py) reports the ratio, tests do
not assert timings.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from reliability_expected import Expected, api_mismatches, push_messages, sample_rows
from reliability_harness import (
    AeroflowServer,
    TrackingSender,
    stored_counts,
    stored_rejections,
)
from reliability_poison import poison_count, poison_messages

pytestmark = pytest.mark.slow

CI_FLIGHTS = 600


def test_poison_is_kept_with_its_reason_and_never_blocks_valid_messages(
    launch: Callable[..., AeroflowServer], record_property: Callable[[str, object], None], seed: int
) -> None:
    rng = random.Random(seed)
    rows = sample_rows(CI_FLIGHTS, seed)
    expected = Expected.from_rows(rows)
    valid = push_messages(rows)
    rng.shuffle(valid)
    poison = poison_messages(poison_count(len(valid)), valid, rng)  # 10 % of all messages
    mixed = valid + [message for message, _ in poison.values()]
    rng.shuffle(mixed)

    clean_server = launch(db_path=None)
    clean = TrackingSender(clean_server.push_url, concurrency=32, seed=seed).run(valid)
    assert clean.answers() == {204: len(valid)}
    clean_server.stop()

    server = launch(clean_server.db_path.with_name("poison.duckdb"))
    log = TrackingSender(server.push_url, concurrency=32, seed=seed).run(mixed)
    # Acknowledged at the first delivery, poison included: nothing is redelivered.
    assert log.answers() == {204: len(mixed)}
    assert api_mismatches(server.base_url, expected) == []
    server.stop()

    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    assert stored_rejections(server.db_path) == {
        message_id: reason for message_id, (_, reason) in poison.items()
    }

    clean_rate = len(valid) / clean.seconds
    poison_rate = len(mixed) / log.seconds
    record_property("clean_msg_per_s", round(clean_rate, 1))
    record_property("poison_msg_per_s", round(poison_rate, 1))
    record_property("poison_throughput_ratio", round(poison_rate / clean_rate, 3))
    print(  # noqa: T201 - the figure docs/reliability.md quotes, for -s runs
        f"clean {clean_rate:.0f} msg/s, with 10 % poison {poison_rate:.0f} msg/s"
        f" (ratio {poison_rate / clean_rate:.2f})"
    )
