"""Choose a response media type from the ``Accept`` header (RFC 9110, section 12.5.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

JSON = "application/json"
CSV = "text/csv"
# An Accept header of absurd length is not worth parsing range by range.
_MAX_RANGES = 32


def negotiate(accept: str | None, offered: Sequence[str]) -> str | None:
    """The offered type with the highest quality; ties go to the earlier offer.

    No header (or an empty one) accepts anything. Returns None when nothing offered is
    acceptable, which the caller answers with 406.
    """
    if accept is None or not accept.strip():
        return offered[0]
    ranges = [_parse_range(part) for part in accept.split(",", _MAX_RANGES)[:_MAX_RANGES]]
    best: str | None = None
    best_quality = 0.0
    for media_type in offered:
        quality = _quality(media_type, ranges)
        if quality > best_quality:
            best, best_quality = media_type, quality
    return best


def _parse_range(part: str) -> tuple[str, float]:
    media_range, *params = part.split(";")
    quality = 1.0
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                parsed = float(value.strip())
            except ValueError:
                parsed = 0.0
            quality = min(max(parsed, 0.0), 1.0) if math.isfinite(parsed) else 0.0
    return media_range.strip().lower(), quality


def _quality(media_type: str, ranges: Sequence[tuple[str, float]]) -> float:
    """Quality of the most specific range matching media_type (exact > type/* > */*)."""
    main_type = media_type.split("/", 1)[0]
    best_specificity, quality = -1, 0.0
    for media_range, range_quality in ranges:
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{main_type}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, quality = specificity, range_quality
    return quality
