"""Start the bqemulator BigQuery emulator offline.

Run with the emulator's own interpreter (``.venv-bqemulator/bin/python``), never aeroflow's: the
emulator pins its own duckdb and sqlglot. Arguments are those of ``bqemulator start``.

bqemulator insists on ``INSTALL spatial`` at start-up, which downloads a DuckDB extension and so
fails on machines without that network access. aeroflow stores no GEOGRAPHY, so the spatial
loading is turned into a no-op before the server starts; ``ST_*`` functions are then unavailable.
"""

from __future__ import annotations

import os
import sys


def _skip_spatial() -> None:
    from bqemulator.storage.engine import DuckDBEngine

    def _no_spatial(self: DuckDBEngine) -> None:
        return None

    DuckDBEngine._load_spatial = _no_spatial  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    # Its Avro loader is best-effort but still tries the same download at start-up; aeroflow
    # loads NDJSON only, so skip the attempt (and its network timeout).
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    _skip_spatial()
    from bqemulator.cli import main as cli

    cli.main(args=["start", *argv], prog_name="bqemulator", standalone_mode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
