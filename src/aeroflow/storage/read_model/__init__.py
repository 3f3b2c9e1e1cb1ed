"""An in-memory, index-organised read model of ``flights`` for the DuckDB adapter.

``DuckDBFlightStore`` loads it at open and feeds it every committed batch, then answers
``list_flights`` and ``get_flight`` from it in microseconds instead of a SQL query each, and
``delay_stats`` by counting over its columns (``stats``); see ``model`` for the layout and
docs/performance.md for the figures.
"""

from __future__ import annotations

import logging
import time

import duckdb

from aeroflow.storage.read_model.columns import UnsupportedFlightIdError, UnsupportedRowsError
from aeroflow.storage.read_model.model import FlightReadModel, Tuning

__all__ = [
    "FlightReadModel",
    "Tuning",
    "UnsupportedFlightIdError",
    "UnsupportedRowsError",
    "open_read_model",
]

log = logging.getLogger(__name__)


def open_read_model(
    connection: duckdb.DuckDBPyConnection, tuning: Tuning | None = None
) -> FlightReadModel | None:
    """The model of the database's ``flights``, or None (logged) when it cannot hold them; the
    store then answers from SQL, as without the model."""
    start = time.perf_counter()
    try:
        model = FlightReadModel.load(connection, tuning or Tuning())
    except UnsupportedRowsError as exc:
        log.warning("read model off, reads go to DuckDB: %s", exc)
        return None
    log.info(
        "read model loaded: %d flights, %.0f MiB, %.1f s",
        len(model),
        model.nbytes / 2**20,
        time.perf_counter() - start,
    )
    return model
