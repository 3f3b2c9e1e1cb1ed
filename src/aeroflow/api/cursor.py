"""Opaque, signed pagination cursors.

A cursor carries the keyset of the last row served (scheduled_departure, flight_id), the sort
order and a fingerprint of the filters it was issued for, signed with HMAC-SHA256. Clients
cannot forge a position, and a cursor replayed with other filters or another sort order is
refused rather than silently paging through a different result set.

Wire format: base64url (unpadded) of ``payload || tag`` where payload is compact JSON
``[version, sort, departure_epoch_microseconds, flight_id, filter_fingerprint]`` and tag is the
32-byte HMAC of the payload under a key derived from ``settings.cursor_secret``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import orjson

from aeroflow.domain.events import FLIGHT_ID_RE
from aeroflow.storage.port import FlightFilter, Keyset, SortOrder

_VERSION = 1
_TAG_BYTES = 32
# Real cursors are ~140 characters; anything much longer is junk and not worth decoding.
MAX_CURSOR_CHARS = 512
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY_PURPOSE = b"aeroflow/api/cursor/v1"


class InvalidCursorError(ValueError):
    """The cursor is malformed, forged, or was issued for another query."""


def filter_fingerprint(flight_filter: FlightFilter, sort: SortOrder) -> str:
    """Stable digest of everything that defines a result set's order and membership."""
    canonical = orjson.dumps(
        [
            flight_filter.carrier,
            flight_filter.origin,
            flight_filter.destination,
            flight_filter.status,
            _iso(flight_filter.departure_from),
            _iso(flight_filter.departure_to),
            flight_filter.min_dep_delay,
            sort,
        ]
    )
    return _b64(hashlib.sha256(canonical).digest()[:12])


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("cursor secret must not be empty")
        # A purpose-bound subkey: the configured secret may one day sign other things too.
        self._key = hmac.new(secret, _KEY_PURPOSE, hashlib.sha256).digest()

    def encode(self, keyset: Keyset, sort: SortOrder, flight_filter: FlightFilter) -> str:
        offset = keyset.scheduled_departure.astimezone(UTC) - _EPOCH
        micros = (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
        payload = orjson.dumps(
            [
                _VERSION,
                sort.value,
                micros,
                keyset.flight_id,
                filter_fingerprint(flight_filter, sort),
            ]
        )
        return _b64(payload + self._tag(payload))

    def decode(self, token: str, sort: SortOrder, flight_filter: FlightFilter) -> Keyset:
        """The keyset a cursor points after; InvalidCursorError unless it is ours and fits."""
        if len(token) > MAX_CURSOR_CHARS or not _TOKEN_RE.fullmatch(token):
            raise InvalidCursorError("malformed cursor")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursorError("malformed cursor") from exc
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not payload or not hmac.compare_digest(tag, self._tag(payload)):
            raise InvalidCursorError("cursor signature does not match")
        version, cursor_sort, micros, flight_id, fingerprint = _parse_payload(payload)
        if version != _VERSION:
            raise InvalidCursorError("unsupported cursor version")
        if cursor_sort != sort.value:
            raise InvalidCursorError("cursor was issued for another sort order")
        if fingerprint != filter_fingerprint(flight_filter, sort):
            raise InvalidCursorError("cursor was issued for other filters")
        try:
            departure = _EPOCH + timedelta(microseconds=micros)
        except OverflowError as exc:
            raise InvalidCursorError("cursor position out of range") from exc
        return Keyset(scheduled_departure=departure, flight_id=flight_id)

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _parse_payload(payload: bytes) -> tuple[int, str, int, str, str]:
    try:
        parts = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidCursorError("malformed cursor") from exc
    if not isinstance(parts, list) or len(parts) != 5:
        raise InvalidCursorError("malformed cursor")
    version, sort, micros, flight_id, fingerprint = parts
    # bool is an int subclass; a signed payload never holds one, but be exact anyway.
    if not (
        type(version) is int
        and isinstance(sort, str)
        and type(micros) is int
        and isinstance(flight_id, str)
        and FLIGHT_ID_RE.fullmatch(flight_id)
        and isinstance(fingerprint, str)
    ):
        raise InvalidCursorError("malformed cursor")
    return version, sort, micros, flight_id, fingerprint


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
