"""``submit_async`` queues without the committer's lock; ``drain`` from another thread must still
leave no caller waiting forever and no acked message unwritten (real DuckDB store)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ingest_helpers import arrived_event, envelope, table_count

from aeroflow.ingest.committer import CommitterClosedError, GroupCommitter, Outcome
from aeroflow.ingest.envelope import decode_push
from aeroflow.ingest.wire import encode_event
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import AcceptedMessage, RejectedMessage

# Generous: only there so that a lost waiter fails the test instead of hanging it.
HANG_SECONDS = 60


def message(number: int) -> AcceptedMessage | RejectedMessage:
    event = arrived_event(flight_number=number)
    body = envelope(encode_event(event), message_id=f"m-{number}")
    return decode_push(body, datetime.now(UTC))


@pytest.mark.parametrize("round_", range(5))
def test_drain_racing_async_submitters_settles_every_waiter(tmp_path: Path, round_: int) -> None:
    db_path = tmp_path / "race.duckdb"
    store = DuckDBFlightStore(db_path)
    committer = GroupCommitter(store, max_batch=64, max_wait_seconds=0.001, max_pending=10_000)
    committer.start()
    messages = [message(number) for number in range(1, 3001)]
    outcomes: list[Outcome | BaseException] = []

    async def submit_until_closed() -> None:
        waiters: list[asyncio.Future[Outcome]] = []
        drainer = threading.Thread(target=committer.drain, args=(30,))
        for index, item in enumerate(messages):
            if index == 200 + 100 * round_:
                drainer.start()  # drains while this loop keeps submitting
            try:
                waiters.append(committer.submit_async(item))
            except CommitterClosedError as exc:
                outcomes.append(exc)
            if index % 50 == 0:
                await asyncio.sleep(0)  # let the writer's settlements in
        async with asyncio.timeout(HANG_SECONDS):
            outcomes.extend(await asyncio.gather(*waiters, return_exceptions=True))
        await asyncio.to_thread(drainer.join)

    asyncio.run(submit_until_closed())
    store.close()

    assert len(outcomes) == len(messages)
    stored = sum(1 for outcome in outcomes if outcome is Outcome.STORED)
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, CommitterClosedError) for o in refused)
    assert stored + len(refused) == len(messages)
    assert stored > 0
    # Acked means written: exactly the stored ones are in the table.
    assert table_count(db_path, "flight_events") == stored
