"""rfc3339_now: Pub/Sub's publishTime format, as ``datetime.isoformat`` writes it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aeroflow.ingest.publisher import rfc3339_now

RFC3339_MICROS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def reference_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_is_now_in_utc_with_microseconds_and_z() -> None:
    for _ in range(2_000):  # crosses second boundaries now and then
        before = reference_now()
        published = rfc3339_now()
        after = reference_now()
        assert RFC3339_MICROS_Z.match(published)
        # Same fixed-width format: text order is time order.
        assert before <= published <= after
        assert datetime.fromisoformat(published).tzinfo == UTC
