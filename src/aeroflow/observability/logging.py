"""Structured JSON logs in Cloud Logging's format, one line per request and per batch.

Cloud Run forwards each stdout line to Cloud Logging, which parses a JSON line into a
structured entry: ``severity``, ``message``, ``time``, ``httpRequest`` and the special
``logging.googleapis.com/{trace,spanId,trace_sampled}`` keys that link the entry to Cloud
Trace. The standard library's ``logging`` with a small formatter is enough: the format is one
flat JSON object, and orjson (already a dependency) does the encoding quickly.

Privacy: INFO lines carry no payload and no query values. A request's ``requestUrl`` is the
route template plus the *names* of its query parameters (``/v1/flights?carrier&limit``): it
joins with the metrics' ``route`` label, and no cursor, key or user text reaches the logs.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Final, cast

import orjson

from aeroflow.observability.tracing import TraceIds, current_trace_ids

TRACE_KEY: Final = "logging.googleapis.com/trace"
SPAN_KEY: Final = "logging.googleapis.com/spanId"
SAMPLED_KEY: Final = "logging.googleapis.com/trace_sampled"
SOURCE_KEY: Final = "logging.googleapis.com/sourceLocation"
# Structured fields travel on the LogRecord under this attribute (``extra={FIELDS: {...}}``).
FIELDS: Final = "json_fields"
# A TraceIds under this key in FIELDS overrides the active span's ids.
TRACE_IDS: Final = "trace_ids"

REQUEST_LOGGER: Final = "aeroflow.access"
BATCH_LOGGER: Final = "aeroflow.ingest.batch"

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
    FIELDS,
}
# Client libraries that log whole URLs (query strings included) at INFO.
_CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3", "google.auth")


# (second, "YYYY-MM-DDTHH:MM:SS") of the last line: one line per request shares its second with
# thousands of others, and formatting the date and time is most of a timestamp's cost.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _rfc3339(timestamp: float) -> str:
    """``datetime.fromtimestamp(timestamp, UTC)`` in RFC 3339 with microseconds and ``Z``."""
    global _last_second  # one tuple, replaced whole: safe across threads
    # Rounded to the microsecond as datetime.fromtimestamp rounds (half to even, carried).
    fraction, whole = math.modf(timestamp)
    second, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached = _last_second
    if cached[0] != second:
        stamp = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
        cached = _last_second = (second, stamp)
    return f"{cached[1]}.{micros:06d}Z"


def _trace_fields(ids: TraceIds, project_id: str | None) -> dict[str, Any]:
    # Without a project the bare id is still useful to grep; Cloud Logging links only the
    # full resource name.
    trace_name = f"projects/{project_id}/traces/{ids.trace_id}" if project_id else ids.trace_id
    fields: dict[str, Any] = {TRACE_KEY: trace_name, SAMPLED_KEY: ids.sampled}
    if ids.span_id:
        fields[SPAN_KEY] = ids.span_id
    return fields


def _bare_request_record(record: logging.LogRecord) -> bool:
    """A request line's own record with nothing added since (by a filter, say): it has no
    ``extra`` keys, so the formatter need not look for them."""
    return (
        type(record) is _RequestRecord
        and len(record.__dict__) == _RequestRecord.SIZE
        and record.levelno == logging.INFO
    )


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, in Cloud Logging's structured shape."""

    def __init__(self, *, project_id: str | None = None) -> None:
        super().__init__()
        self._project_id = project_id

    def format(self, record: logging.LogRecord) -> str:
        if _bare_request_record(record):
            return self.format_request(record.args, getattr(record, FIELDS), record.created)
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        fields = getattr(record, FIELDS, None)
        ids: object = None
        if isinstance(fields, Mapping):
            fields = dict(fields)
            ids = fields.pop(TRACE_IDS, None)
            entry.update(fields)
        # Plain ``extra={...}`` keys are kept too, so third-party loggers lose nothing.
        extras = record.__dict__.keys() - _RESERVED
        for key in sorted(extras):
            if not key.startswith("_"):
                entry.setdefault(key, record.__dict__[key])
        if TRACE_KEY not in entry:
            if not isinstance(ids, TraceIds):
                ids = current_trace_ids()
            if isinstance(ids, TraceIds):
                entry.update(_trace_fields(ids, self._project_id))
        if record.levelno >= logging.WARNING:
            entry[SOURCE_KEY] = {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            }
        if record.exc_info:
            # Error Reporting picks up a stack trace in ``stack_trace``.
            entry["stack_trace"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()

    def format_request(self, args: Any, fields: Mapping[str, Any], created: float) -> str:
        """What :meth:`format` makes of an INFO request line's record, without the record:
        the same keys in the same order, for the fields :func:`log_request` builds."""
        entry: dict[str, Any] = {
            "severity": "INFO",
            "message": _REQUEST_MESSAGE % args,
            "time": _rfc3339(created),
            "logger": REQUEST_LOGGER,
        }
        ids = None
        for key, value in fields.items():
            if key == TRACE_IDS:
                ids = value
            else:
                entry[key] = value
        if not isinstance(ids, TraceIds):
            ids = current_trace_ids()
        if ids is not None:
            entry.update(_trace_fields(ids, self._project_id))
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """Human-readable lines for a terminal: time, level, logger, message, then key=value."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            flat = {k: v for k, v in fields.items() if k != TRACE_IDS}
            http = flat.pop("httpRequest", None)
            if isinstance(http, Mapping):
                flat = {**http, **flat}
            line += " " + " ".join(f"{k}={v}" for k, v in flat.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str = "INFO",
    json: bool = True,
    *,
    project_id: str | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Send every log record to one stream handler (stdout) in JSON or console format.

    Replaces the root logger's handlers, so calling it twice is harmless. uvicorn's own access
    log is silenced: :func:`log_request` writes the one line per request instead. HTTP client
    libraries are held at WARNING because they log full URLs, query strings included.
    """
    # Thread, process and multiprocessing names are never printed; looking them up costs every
    # record (one per request) a few microseconds.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stdout)
    formatter = CloudLoggingFormatter(project_id=project_id) if json else ConsoleFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


def request_url(route: str, query_keys: Iterable[str] = ()) -> str:
    """The loggable URL: route template plus sorted, de-duplicated query parameter names."""
    names = sorted({key for key in query_keys if key})
    return f"{route}?{'&'.join(names)}" if names else route


_REQUESTS: Final = logging.getLogger(REQUEST_LOGGER)
_REQUEST_MESSAGE: Final = "%s %s %d"
_REQUEST_FUNC: Final = "log_request"
_FILENAME: Final = os.path.basename(__file__)
_MODULE: Final = os.path.splitext(_FILENAME)[0]
_START_TIME: Final[float] = logging._startTime  # type: ignore[attr-defined]
# Python 3.12+ records name the asyncio task (``logAsyncioTasks``); 3.11 has no such field.
_TASK_NAMES: Final = hasattr(logging, "logAsyncioTasks")


def log_request(
    *,
    method: str,
    route: str,
    status: int,
    latency_seconds: float,
    query_keys: Iterable[str] = (),
    user_agent: str | None = None,
    remote_ip: str | None = None,
    request_size: int | None = None,
    response_size: int | None = None,
    protocol: str | None = None,
    trace_ids: TraceIds | None = None,
    api_client: str | None = None,
) -> None:
    """Write the one access-log line of a request (INFO; ERROR when the status is 5xx).

    ``route`` is the matched route template (``/v1/flights/{flight_id}``), never the raw path;
    ``query_keys`` are the parameter names only. ``trace_ids`` defaults to the active span.
    ``api_client`` is who called the read API: an API key's fingerprint, never the key.
    """
    http: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": request_url(route, query_keys),
        "status": status,
        "latency": f"{max(latency_seconds, 0.0):.6f}s",
    }
    if user_agent:
        http["userAgent"] = user_agent[:256]
    if remote_ip:
        http["remoteIp"] = remote_ip
    if request_size is not None:
        http["requestSize"] = str(request_size)
    if response_size is not None:
        http["responseSize"] = str(response_size)
    if protocol:
        http["protocol"] = protocol
    fields: dict[str, Any] = {"httpRequest": http, "route": route}
    if api_client:
        fields["apiClient"] = api_client
    if trace_ids is not None:
        fields[TRACE_IDS] = trace_ids
    level = logging.ERROR if status >= 500 else logging.INFO
    if not _REQUESTS.isEnabledFor(level):
        return
    args = (method, route, status)
    if level >= logging.WARNING:
        # Only these lines carry a sourceLocation, worth the caller lookup's stack walk.
        _REQUESTS.log(level, _REQUEST_MESSAGE, *args, extra={FIELDS: fields})
        return
    # One line per request on the hot path. Configured as configure_logging leaves it, the
    # line goes straight to the one stream handler, formatted from the fields: exactly what
    # the logging machinery would write, at a third of its cost.
    plain = _plain_records()
    handler = _sole_json_handler() if plain else None
    if handler is not None:
        _write(handler, args, fields)
        return
    # Otherwise (another handler, a filter: pytest's capture, say) a record goes through
    # logging, built without the stack walk ``Logger.log`` does to find the caller, which INFO
    # lines never print, and without LogRecord's per-call path splitting.
    if plain:
        record: logging.LogRecord = _RequestRecord(level, args, fields)
    else:
        record = _REQUESTS.makeRecord(
            REQUEST_LOGGER,
            level,
            __file__,
            0,
            _REQUEST_MESSAGE,
            args,
            None,
            func=_REQUEST_FUNC,
            extra={FIELDS: fields},
        )
    _REQUESTS.handle(record)


def _sole_json_handler() -> logging.StreamHandler[Any] | None:
    """The handler a request line reaches when it is the only one, a plain stream handler with
    the JSON formatter and no filters (configure_logging's setup); None in any other setup."""
    if _REQUESTS.filters:
        return None
    found: logging.Handler | None = None
    logger: logging.Logger | None = _REQUESTS
    while logger is not None:
        for handler in logger.handlers:
            if found is not None:
                return None
            found = handler
        logger = logger.parent if logger.propagate else None
    if (
        type(found) is not logging.StreamHandler
        or found.filters
        or found.level > logging.INFO
        or type(found.formatter) is not CloudLoggingFormatter
    ):
        return None
    return found


def _write(
    handler: logging.StreamHandler[Any], args: tuple[str, str, int], fields: dict[str, Any]
) -> None:
    """``handler.handle(record)`` for the request line, as StreamHandler.emit writes it."""
    created = time.time()
    formatter = cast(CloudLoggingFormatter, handler.formatter)
    handler.acquire()
    try:
        line = formatter.format_request(args, fields, created)
        handler.stream.write(line + handler.terminator)
        handler.flush()
    except RecursionError:
        raise
    except Exception:
        record = _RequestRecord(logging.INFO, args, fields)
        record.created = created
        handler.handleError(record)
    finally:
        handler.release()


def _plain_records() -> bool:
    """True while records are LogRecords with no thread or process names looked up (as
    :func:`configure_logging` sets it up), which :class:`_RequestRecord` reproduces."""
    return (
        logging.getLogRecordFactory() is logging.LogRecord
        and not logging.logThreads
        and not logging.logProcesses
        and not logging.logMultiprocessing
        and not getattr(logging, "logAsyncioTasks", False)
    )


class _RequestRecord(logging.LogRecord):
    """The record ``makeRecord`` would build for a request line, attribute for attribute, set
    directly: ``LogRecord.__init__`` splits the source path and checks its arguments on every
    call. Only used when :func:`_plain_records` holds."""

    SIZE: ClassVar[int] = 0  # attributes of a fresh record, set below the class

    def __init__(self, level: int, args: tuple[str, str, int], fields: dict[str, Any]) -> None:
        created = time.time()
        self.name = REQUEST_LOGGER
        self.msg = _REQUEST_MESSAGE
        self.args = args
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = __file__
        self.filename = _FILENAME
        self.module = _MODULE
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = 0
        self.funcName = _REQUEST_FUNC
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - _START_TIME) * 1000
        self.thread = None
        self.threadName = None
        self.processName = None
        self.process = None
        if _TASK_NAMES:
            self.taskName = None
        setattr(self, FIELDS, fields)


_RequestRecord.SIZE = len(_RequestRecord(logging.INFO, ("GET", "/", 200), {}).__dict__)


def log_batch(
    *,
    source: str,
    messages: int,
    stored: int,
    duplicate: int,
    rejected: int,
    duration_seconds: float,
    error: BaseException | None = None,
) -> None:
    """Write the one line of a group-committed batch: counts and timing, never payloads.

    A failed batch (``error`` set) logs at ERROR with the exception's type and message.
    """
    fields: dict[str, Any] = {
        "batch": {
            "source": source,
            "messages": messages,
            "stored": stored,
            "duplicate": duplicate,
            "rejected": rejected,
            "duration_seconds": round(duration_seconds, 6),
        }
    }
    logger = logging.getLogger(BATCH_LOGGER)
    if error is None:
        logger.info(
            "batch committed: %d messages in %.1f ms",
            messages,
            duration_seconds * 1000,
            extra={FIELDS: fields},
        )
        return
    fields["error"] = {"type": type(error).__name__, "message": str(error)[:1000]}
    logger.error(
        "batch failed: %d messages not stored (%s)",
        messages,
        type(error).__name__,
        extra={FIELDS: fields},
    )
