"""A real store behind a wrapper, for the tests that fake one behaviour of a backend at the port.

Tests import it by rootdir (``from store_wrapper import DelegatingStore``) and subclass it,
overriding only what they fake (an outage, a slow read, an unreachable ping): what cannot be
produced on demand with an embedded DuckDB file. Everything else goes to the real store, so a
method the port gains later reaches it too.
"""

from __future__ import annotations

from collections.abc import Sequence

from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightQuery,
    FlightStore,
    GroupBy,
    WriteBatch,
    WriteResult,
)


class DelegatingStore:
    def __init__(self, inner: FlightStore) -> None:
        self.inner = inner

    @property
    def reads_block(self) -> bool:
        # What a subclass fakes may block (a sleep, a failing call): keep it off the event loop.
        return True

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        return self.inner.write_batch(batch)

    def list_flights(self, query: FlightQuery) -> FlightPage:
        return self.inner.list_flights(query)

    def get_flight(self, flight_id: str) -> Flight | None:
        return self.inner.get_flight(flight_id)

    def delay_stats(self, group_by: GroupBy, flight_filter: FlightFilter) -> Sequence[DelayStats]:
        return self.inner.delay_stats(group_by, flight_filter)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
