"""aeroflow's JSON logging, configured as a process configures it, into a string the test reads.

Tests import it by rootdir (``from json_log_capture import ...``). ``configure_logging`` replaces
the root logger's handlers; they and its level are put back afterwards, so pytest's own log
capture works again for the next test.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from aeroflow.observability.logging import configure_logging


@contextmanager
def captured_json_logs(
    level: str = "INFO", *, project_id: str | None = None
) -> Iterator[io.StringIO]:
    """Every record logged inside the block, one JSON object a line, in the stream yielded."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(level, json=True, project_id=project_id, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def json_lines(stream: io.StringIO, logger: str | None = None) -> list[dict[str, Any]]:
    """The lines written so far, parsed; only those of ``logger`` when given."""
    parsed = [orjson.loads(line) for line in stream.getvalue().splitlines() if line]
    return [entry for entry in parsed if logger is None or entry["logger"] == logger]
