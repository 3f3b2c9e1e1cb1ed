"""Which BigQuery failures are transient, and how they become ``StorageUnavailableError``.

Transient means "try again later and it may work": the service is down or overloaded, a rate or
concurrency quota is hit, the network failed, a job ran out of time, or two writers' transactions
collided. Those become ``StorageUnavailableError`` (push answers 503, the pull worker nacks, the
API answers 503). Everything else (a malformed query, a missing table, denied access, a query
over the bytes-billed cap) is a configuration or code problem that retrying will not fix, and
propagates unchanged so that it is seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud.bigquery.retry import DEFAULT_RETRY

from aeroflow.storage.port import StorageUnavailableError

_TRANSIENT_TYPES: Final = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.GatewayTimeout,
    api_exceptions.TooManyRequests,
    api_exceptions.DeadlineExceeded,
    api_exceptions.RetryError,  # a bounded retry of transient errors ran out of time
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,  # also concurrent.futures.TimeoutError: a job did not finish in time
)

# Reasons in BigQuery's error bodies that mean "later" although the HTTP status says 400/403.
_TRANSIENT_REASONS: Final = frozenset(
    {
        "backendError",
        "internalError",
        "jobBackendError",
        "jobInternalError",
        "jobRateLimitExceeded",
        "quotaExceeded",  # e.g. too many concurrent queries or DML statements queued on a table
        "rateLimitExceeded",
    }
)

# Two transactions (or DML statements) that touched the same table: one of them is aborted with
# a 400 whose only mark is its message.
_CONFLICT_MARKERS: Final = ("concurrent update", "could not serialize access")


def _reasons(exc: api_exceptions.GoogleAPICallError) -> set[str]:
    return {str(e.get("reason")) for e in exc.errors if isinstance(e, dict)}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        if _reasons(exc) & _TRANSIENT_REASONS:
            return True
        message = str(exc.message).lower()
        return any(marker in message for marker in _CONFLICT_MARKERS)
    return False


def api_retry(timeout_seconds: float) -> Retry:
    """The client's own retry of API calls (5xx, 429, connection errors), bounded by our
    timeout instead of its default ten minutes, so a dead endpoint fails fast."""
    retry: Retry = DEFAULT_RETRY.with_timeout(timeout_seconds)
    return retry


def job_retry(timeout_seconds: float) -> Retry:
    """Re-run a job that failed for a transient reason, including a transaction conflict with
    another writer. Safe for writes because they are idempotent by message id."""
    return Retry(predicate=is_transient, initial=0.5, maximum=8.0, timeout=timeout_seconds)


@contextlib.contextmanager
def unavailable_on_transient(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise StorageUnavailableError(f"BigQuery {what}: {exc}") from exc
        raise
