"""Soak: 5 minutes of steady push load on one ``aeroflow serve``, plus the poison throughput ratio.

Three phases, each on a fresh server process over a fresh DuckDB file in a temporary directory:

1. **Calibrate**: a closed-loop burst (every message sent as soon as a slot frees) measures the
   most this machine sustains; the soak then runs at ``--load-share`` of it (60 %), unless
   ``--rate`` fixes the rate.
2. **Poison ratio**: the same valid messages, alone and with 10 % poison mixed in, closed-loop,
   alternated ``--poison-rounds`` times; the ratio of the medians (messages per second, poison
   included) is the figure the reliability brief wants within 20 % of 1.
3. **Soak**: open-loop at that rate for ``--seconds`` (300) of new messages; errors, loss
   (acked ids missing from the DuckDB file), latency and the server's RSS over time; then
   ``--replay-seconds`` (120) of the same messages again, all duplicates, so the database stops
   growing and RSS growth there would be a leak rather than DuckDB holding more data.

The load generator runs in this process, on the same cores as the server: on two cores the
figures are a floor, not a capacity. The driver is tests/reliability/reliability_soak.py, which
the CI test (tests/reliability/test_soak.py) runs for 20 s.

    .venv/bin/python bench/bench_soak.py    # ~7 minutes; writes bench/results/soak.json
    .venv/bin/python bench/bench_soak.py --seconds 60 --rate 500 --output /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from reliability_expected import push_messages, sample_rows  # noqa: E402
from reliability_harness import AeroflowServer, PushMessage  # noqa: E402
from reliability_poison import poison_count, poison_messages  # noqa: E402
from reliability_soak import closed_loop_rate, messages_for, run_soak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="soak duration")
    parser.add_argument("--replay-seconds", type=float, default=120.0, help="duplicates phase")
    parser.add_argument("--rate", type=float, help="messages/s (default: calibrated)")
    parser.add_argument("--load-share", type=float, default=0.6, help="share of the calibrated max")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--calibration-flights", type=int, default=3000)
    parser.add_argument("--poison-flights", type=int, default=2000)
    parser.add_argument("--poison-rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2013)
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)

    started = datetime.now(UTC)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aeroflow-soak-") as tmp:
        workdir = Path(tmp)
        servers: list[AeroflowServer] = []

        def fresh_server(name: str) -> AeroflowServer:
            server = AeroflowServer(workdir / "data" / f"{name}.duckdb", workdir)
            servers.append(server)
            server.start()
            return server

        try:
            calibration = _calibrate(fresh_server, args)
            rate = args.rate or round(calibration["closed_loop_msg_per_s"] * args.load_share)
            poison = _poison_ratio(fresh_server, args)
            print(f"soak: {args.seconds:.0f} s at {rate} msg/s", file=sys.stderr)
            messages = messages_for(args.seconds, rate)
            soak = run_soak(
                fresh_server("soak"),
                messages,
                seconds=args.seconds,
                rate=rate,
                concurrency=args.concurrency,
                replay_seconds=args.replay_seconds,
            )
        finally:
            for server in servers:
                server.cleanup()

    result: dict[str, Any] = {
        "benchmark": "soak",
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "commit": _commit(),
        },
        "calibration": calibration,
        "poison": poison,
        "soak": soak.as_json(),
        "verdict": {
            "no_errors": soak.errors == 0,
            "no_loss": soak.lost == 0
            and soak.stored_events == soak.distinct_stored_events == soak.load.acked,
            "rss_growth_after_warmup_mb": soak.load.rss_mb["growth_after_warmup"],
            "rss_growth_during_replay_mb": (
                soak.replay.rss_mb["growth_after_warmup"] if soak.replay else None
            ),
            "poison_throughput_within_20_percent": poison["ratio"] >= 0.8,
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(_compact_pairs(json.dumps(result, indent=2)) + "\n")
    print(json.dumps(_without_samples(result), indent=2))
    return 0 if result["verdict"]["no_errors"] and result["verdict"]["no_loss"] else 1


def _compact_pairs(text: str) -> str:
    """One line per [seconds, MB] sample instead of four."""
    return re.sub(r"\[\s+(-?[\d.]+),\s+(-?[\d.]+)\s+\]", r"[\1, \2]", text)


def _without_samples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_samples(v) for k, v in value.items() if k != "rss_samples_mb"}
    return value


def _calibrate(fresh_server: Any, args: argparse.Namespace) -> dict[str, Any]:
    messages = push_messages(sample_rows(args.calibration_flights, args.seed))
    started = time.monotonic()
    server = fresh_server("calibration")
    rate = closed_loop_rate(server, messages, args.concurrency)
    server.stop()
    print(f"calibration: {rate:.0f} msg/s closed-loop", file=sys.stderr)
    return {
        "messages": len(messages),
        "closed_loop_msg_per_s": round(rate, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def _poison_ratio(fresh_server: Any, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    valid = push_messages(sample_rows(args.poison_flights, args.seed + 1))
    rng.shuffle(valid)
    poison = [m for m, _ in poison_messages(poison_count(len(valid)), valid, rng).values()]
    mixed: list[PushMessage] = valid + poison
    rng.shuffle(mixed)
    clean_rates: list[float] = []
    poison_rates: list[float] = []
    for round_ in range(args.poison_rounds):
        for name, messages, rates in (
            ("clean", valid, clean_rates),
            ("poison", mixed, poison_rates),
        ):
            server = fresh_server(f"{name}-{round_}")
            rates.append(closed_loop_rate(server, messages, args.concurrency))
            server.stop()
    ratio = statistics.median(poison_rates) / statistics.median(clean_rates)
    print(f"poison: ratio {ratio:.2f}", file=sys.stderr)
    return {
        "valid_messages": len(valid),
        "poison_messages": len(poison),
        "clean_msg_per_s": [round(r, 1) for r in clean_rates],
        "poison_msg_per_s": [round(r, 1) for r in poison_rates],
        "ratio": round(ratio, 3),
    }


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
