"""Graceful shutdown: SIGTERM during a load drains in-flight work; nothing acked is lost.

Cloud Run sends SIGTERM and waits ``ingest_drain_timeout_seconds`` (10 s grace) before
SIGKILL. aeroflow must stop taking requests, answer the ones in flight only once their batch is
durable, flush what is still queued and checkpoint. The sender records when each 2xx arrived;
right after the process exits, the DuckDB file itself (read-only) must hold every message
acknowledged before the exit, including those acknowledged after the SIGTERM (the drained
ones). Then the server restarts on the same file, the sender delivers what was refused while it
was down, and the stored state must be exactly the expected one.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable

import pytest
from reliability_expected import Expected, api_mismatches, push_messages, sample_rows
from reliability_harness import (
    AeroflowServer,
    TrackingSender,
    stored_counts,
    stored_event_ids,
    wait_for,
)

pytestmark = pytest.mark.slow

CI_FLIGHTS = 800


def test_sigterm_during_load_drains_and_every_acked_message_is_stored(
    launch: Callable[..., AeroflowServer],
    record_property: Callable[[str, object], None],
    seed: int,
) -> None:
    rng = random.Random(seed)
    rows = sample_rows(CI_FLIGHTS, seed)
    expected = Expected.from_rows(rows)
    messages = push_messages(rows)
    rng.shuffle(messages)

    server = launch()
    sender = TrackingSender(server.push_url, concurrency=48, give_up_after=240, seed=seed)
    load = sender.run_in_thread(messages)
    point = rng.randrange(len(messages) // 5, len(messages) // 2)
    wait_for(lambda: sender.log.acked >= point, 120, f"{point} acks")

    sigterm_at = time.monotonic()
    code = server.terminate(timeout=60)
    exited_at = time.monotonic()
    assert code in (0, -signal.SIGTERM), code
    assert load.is_alive(), "the load had ended before SIGTERM"
    log_text = server.log_path.read_text()
    assert "drain timed out" not in log_text, log_text[-2000:]
    wal = server.db_path.with_name(server.db_path.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0, "closed without a checkpoint"

    acked = sender.log.acked_ids(before=exited_at)
    drained = acked - sender.log.acked_ids(before=sigterm_at)
    on_disk = stored_event_ids(server.db_path)
    assert acked <= on_disk, f"{len(acked - on_disk)} messages acked but not stored"
    assert drained, "no request was in flight at SIGTERM: the drain was not exercised"
    record_property("drain_seconds", round(exited_at - sigterm_at, 2))
    record_property("acked_after_sigterm", len(drained))

    server.start()
    load.join(timeout=240)
    assert not sender.log.unacked_ids(), sender.log.answers()
    assert api_mismatches(server.base_url, expected) == []
    server.stop()
    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    print(  # noqa: T201
        f"SIGTERM after {point} acks; exited in {exited_at - sigterm_at:.2f} s;"
        f" {len(drained)} acked after SIGTERM; answers {dict(sender.log.answers())}"
    )
