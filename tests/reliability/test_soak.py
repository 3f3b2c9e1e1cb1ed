"""Load: 20 seconds of steady push load (the CI cut of bench/bench_soak.py's 5 minutes).

No errors (every message acknowledged at its first delivery), no loss (every acknowledged id
in the DuckDB file, once), and memory that settles: the server's RSS may grow after warm-up by
a generous bound only. RSS is a resource, not a timing; the figures go to the junit XML.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reliability_harness import AeroflowServer
from reliability_soak import messages_for, run_soak

pytestmark = pytest.mark.slow

SECONDS = 20.0
# Well below what two shared cores sustain (the bench measures ~4x this on an idle machine),
# so that "no errors" is about aeroflow, not about a busy CI runner.
RATE = 200.0
# Generous: DuckDB's buffer pool and the Python heap grow with the data during warm-up; a leak
# per message at this rate (4,000 messages) would have to stay under ~25 kB each to hide in it.
MAX_RSS_GROWTH_MB = 100.0


def test_steady_load_has_no_errors_no_loss_and_bounded_memory(
    launch: Callable[..., AeroflowServer], record_property: Callable[[str, object], None]
) -> None:
    messages = messages_for(SECONDS, RATE)
    server = launch()
    result = run_soak(server, messages, seconds=SECONDS, rate=RATE, concurrency=32)
    load = result.load
    for name in ("achieved_rate", "latency_ms", "rss_mb"):
        record_property(name, getattr(load, name))
    print(load)  # noqa: T201

    assert load.released >= SECONDS * RATE / 4, "too few messages to mean anything"
    assert load.errors == 0, load.answers
    assert load.acked == load.released
    assert result.lost == 0
    assert result.stored_events == result.distinct_stored_events == load.acked
    assert load.rss_mb["growth_after_warmup"] < MAX_RSS_GROWTH_MB, load.rss_samples_mb
