"""Flight ids as order-preserving int64 keys.

A flight id is ``{carrier:2}{number:04d}-{origin:3}-{YYYYMMDD}`` (``domain.events.flight_id``):
fixed width, fixed separators, so byte order equals the order of the tuple (carrier characters,
number, origin letters, year, month, day). Packing that tuple in mixed radix keeps the order, so
comparing keys compares ids exactly as DuckDB compares the VARCHARs, in 8 bytes instead of 19
plus a string object. Ids that do not have this shape have no key (``None``); the domain never
makes one, and the model refuses a store that holds one rather than answer differently.
"""

from __future__ import annotations

import operator
import re
import string
from typing import Final

import numpy as np
import numpy.typing as npt

from aeroflow.storage.read_model.memo import Memo

ID_LENGTH: Final = 19
_SHAPE: Final = re.compile(r"([A-Z0-9]{2})([0-9]{4})-([A-Z]{3})-([0-9]{4})([0-9]{2})([0-9]{2})")
_CARRIER_CHARS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # byte order
_CHAR_RANK: Final = {c: i for i, c in enumerate(_CARRIER_CHARS)}
# Radixes, most significant first: carrier char, carrier char, number, origin letter x3, and
# a date as (year * 12 + month - 1) * 31 + day - 1, which is monotonic for valid month/day.
_NUMBERS: Final = 10_000
_LETTERS: Final = 26
_DATES: Final = 10_000 * 12 * 31
DATES: Final = _DATES  # keys divided by this leave the date part
# 36 * 36 * 10_000 * 26**3 * _DATES ~ 8.5e17 < 2**63: every key fits an int64.

Int64Array = npt.NDArray[np.int64]


def _date_code(year: int, month: int, day: int) -> int:
    return (year * 12 + month - 1) * 31 + day - 1


def encode(flight_id: str) -> int | None:
    """The key of one id, or None when it is not in the domain's shape."""
    match = _SHAPE.fullmatch(flight_id)
    if match is None:
        return None
    carrier, number, origin, year, month, day = match.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return None
    key = _CHAR_RANK[carrier[0]] * 36 + _CHAR_RANK[carrier[1]]
    key = key * _NUMBERS + int(number)
    for letter in origin:
        key = key * _LETTERS + ord(letter) - ord("A")
    return key * _DATES + _date_code(int(year), int(month), int(day))


def decode(key: int) -> str:
    rest, date = divmod(key, _DATES)
    return _PREFIXES.one(rest) + _DATES_TEXT.one(date)


def decode_many(keys: list[int]) -> list[str]:
    return decode_column(np.array(keys, np.int64))


def decode_column(keys: Int64Array) -> list[str]:
    """The ids of ``keys``: one vectorised split, then ``decode_parts``."""
    rest, date = np.divmod(keys, DATES)
    return decode_parts(rest.tolist(), date.tolist())


def decode_halves(
    keys: Int64Array, prefixes: Memo[int, str] | None = None
) -> tuple[list[str], list[str]]:
    """The ids of ``keys`` in two halves, ``{carrier}{number}-{origin}-`` and the date: one id
    is the two side by side (what a text written in pieces needs, without joining them).
    ``prefixes``: a ``prefix_memo`` to take the first halves from."""
    rest, date = np.divmod(keys, DATES)
    first = _PREFIXES if prefixes is None else prefixes
    return first.many(rest.tolist()), _DATES_TEXT.many(date.tolist())


def prefix_memo(opening: str) -> Memo[int, str]:
    """A memo of ``opening`` and an id's first half, by the key without its date (the
    ``divmod(key, DATES)`` quotient), as ``decode_halves`` takes them."""
    return Memo(lambda rest: opening + _PREFIXES.one(rest), 1 << 16)


def decode_parts(prefixes: list[int], dates: list[int]) -> list[str]:
    """The ids of keys split as ``divmod(key, DATES)``: memoised texts joined in C."""
    return list(map(operator.add, _PREFIXES.many(prefixes), _DATES_TEXT.many(dates)))


# Lookup tables: decoding runs once per flight of every page served.
_ORIGINS: Final = _LETTERS**3
_PAIRS: Final = [a + b for a in _CARRIER_CHARS for b in _CARRIER_CHARS]
_ORIGIN_TEXT: Final = [
    a + b + c
    for a in string.ascii_uppercase
    for b in string.ascii_uppercase
    for c in string.ascii_uppercase
]


def _prefix(rest: int) -> str:
    """``{carrier}{number:04d}-{origin}-`` of a key without its date."""
    rest, origin = divmod(rest, _ORIGINS)
    pair, number = divmod(rest, _NUMBERS)
    return f"{_PAIRS[pair]}{number:04d}-{_ORIGIN_TEXT[origin]}-"


def _date_text(date: int) -> str:
    ym, day = divmod(date, 31)
    year, month = divmod(ym, 12)
    return f"{year:04d}{month + 1:02d}{day + 1:02d}"


# Schedules repeat: a carrier's flight numbers from an airport, and the days of a few years,
# are tens of thousands of texts, each built once instead of once per row served.
_PREFIXES: Final = Memo(_prefix, 1 << 16)
_DATES_TEXT: Final = Memo(_date_text, 1 << 16)


def encode_many(data: bytes | memoryview, count: int) -> Int64Array | None:
    """Keys of ``count`` ids laid end to end in ``data`` (19 ASCII bytes each, as Arrow holds a
    column of equal-length strings), or None when any of them is not in the domain's shape."""
    chars = np.frombuffer(data, dtype=np.uint8, count=count * ID_LENGTH).reshape(count, ID_LENGTH)
    digit = (chars >= ord("0")) & (chars <= ord("9"))
    upper = (chars >= ord("A")) & (chars <= ord("Z"))
    shaped = (
        (digit[:, :2] | upper[:, :2]).all(axis=1)
        & digit[:, 2:6].all(axis=1)
        & (chars[:, 6] == ord("-"))
        & upper[:, 7:10].all(axis=1)
        & (chars[:, 10] == ord("-"))
        & digit[:, 11:].all(axis=1)
    )
    if not shaped.all():
        return None
    values = chars.astype(np.int64)
    # Rank in byte order: digits 0-9, then letters 10-35.
    rank = np.where(values[:, :2] >= ord("A"), values[:, :2] - ord("A") + 10, values[:, :2] - 48)
    digits = values - ord("0")

    def number(first: int, last: int) -> Int64Array:
        result = np.zeros(count, dtype=np.int64)
        for column in range(first, last):
            result = result * 10 + digits[:, column]
        return result

    month, day = number(15, 17), number(17, 19)
    if count and not (((month >= 1) & (month <= 12)).all() and ((day >= 1) & (day <= 31)).all()):
        return None
    keys = rank[:, 0] * 36 + rank[:, 1]
    keys = keys * _NUMBERS + number(2, 6)
    for column in (7, 8, 9):
        keys = keys * _LETTERS + values[:, column] - ord("A")
    dates = (number(11, 15) * 12 + month - 1) * 31 + day - 1
    result: Int64Array = keys * _DATES + dates
    return result
