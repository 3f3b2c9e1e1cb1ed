"""A pull worker process for tests/ingest/test_worker_crash.py: what ``aeroflow worker`` runs.

Settings come from the environment (AEROFLOW_*), exactly as in the CLI: the real DuckDB store,
``run_worker`` with its signal handling and drain. The only addition is a progress line on
stdout after each durable batch write (``committed <id> <id> ...``: every message id of the
batch, new or duplicate, is durable at that point) so the test knows what has been committed
without opening the DuckDB file this process holds.

Usage: python worker_process.py SUBSCRIPTION
"""

from __future__ import annotations

import logging
import sys

from aeroflow.ingest.worker import run_worker
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import WriteBatch, WriteResult


class ReportingStore(DuckDBFlightStore):
    def write_batch(self, batch: WriteBatch) -> WriteResult:
        result = super().write_batch(batch)
        ids = " ".join(m.meta.message_id for m in (*batch.accepted, *batch.rejected))
        sys.stdout.write(f"committed {ids}\n")
        sys.stdout.flush()
        return result


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = Settings()
    store = ReportingStore(settings.duckdb_path)
    try:
        sys.stdout.write("started\n")
        sys.stdout.flush()
        return run_worker(settings, store, subscription=sys.argv[1])
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
