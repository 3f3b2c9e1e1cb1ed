"""API keys of the read API: their format, their stored hashes, and verification.

Keys are 256-bit random tokens made by :func:`new_api_key` (``aeroflow keys new NAME``). The
service only ever holds their SHA-256 hashes, one ``name:sha256hex`` entry per key in
``AEROFLOW_API_KEYS`` (Secret Manager in GCP), optionally ``name:sha256hex:rate-limit``:

    partner-a:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    partner-b:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752:10/second

Why a plain SHA-256, without salt or a slow KDF: both defend *guessable* secrets (a salt
defeats precomputed tables, a slow hash makes each guess expensive). A uniformly random
256-bit key cannot be guessed or looked up, so a leaked hash list reveals nothing usable,
while a deliberately slow hash would cost tens of milliseconds on every request of an API that
must serve thousands per second. A pepper (an HMAC key held elsewhere) would likewise only
protect weak keys. Keys are therefore only ever *generated* by this module, never chosen.

Verification hashes the presented key once and compares that digest with every configured
hash using ``hmac.compare_digest``, all of them every time, so neither the comparison nor the
position of the matching entry shows in the response time.

Keys appear in logs and metrics only as their *fingerprint*: the first 12 hex digits of their
hash (48 bits; the hash itself is not secret, and the fingerprint is what the operator finds
next to the name in the configuration). Unknown keys get no fingerprint at all, so that a
mistyped password sent as a key never leaves a hash prefix in the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

KEY_PREFIX: Final = "afk_"  # lets secret scanners (and people) recognise a leaked key
_KEY_BYTES: Final = 32
FINGERPRINT_HEX_DIGITS: Final = 12
# Real keys are 47 characters. Anything much longer is not worth hashing.
MAX_PRESENTED_KEY_CHARS: Final = 256

_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HASH_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_ENTRY_SEPARATORS: Final = re.compile(r"[,\s]+")


class ApiKeyConfigError(ValueError):
    """``AEROFLOW_API_KEYS`` is malformed; the message never contains a hash or a key."""


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    name: str
    digest: bytes  # SHA-256 of the key
    rate_limit: str | None = None  # `limits` notation; None = the service default

    @property
    def fingerprint(self) -> str:
        return self.digest.hex()[:FINGERPRINT_HEX_DIGITS]


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str
    entry: ApiKeyEntry

    @property
    def config_line(self) -> str:
        """The ``name:sha256hex`` entry that goes into AEROFLOW_API_KEYS."""
        return f"{self.entry.name}:{self.entry.digest.hex()}"


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def new_api_key(name: str) -> NewApiKey:
    if not _NAME_RE.fullmatch(name):
        raise ApiKeyConfigError(
            "a key name is 1-64 characters of letters, digits, '_', '.', '-',"
            " starting with a letter or digit"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    return NewApiKey(key=key, entry=ApiKeyEntry(name=name, digest=key_digest(key)))


def parse_api_keys(text: str) -> tuple[ApiKeyEntry, ...]:
    """Entries separated by commas or whitespace (newlines suit Secret Manager values)."""
    entries: list[ApiKeyEntry] = []
    seen_names: set[str] = set()
    seen_digests: set[bytes] = set()
    for position, raw in enumerate(
        (part for part in _ENTRY_SEPARATORS.split(text) if part), start=1
    ):
        entry = _parse_entry(raw, position)
        if entry.name in seen_names:
            raise ApiKeyConfigError(f"API key entry {position}: name {entry.name!r} repeated")
        if entry.digest in seen_digests:
            raise ApiKeyConfigError(f"API key entry {position}: the same hash appears twice")
        seen_names.add(entry.name)
        seen_digests.add(entry.digest)
        entries.append(entry)
    return tuple(entries)


def _parse_entry(raw: str, position: int) -> ApiKeyEntry:
    parts = raw.split(":", 2)
    if len(parts) < 2:
        raise ApiKeyConfigError(f"API key entry {position} is not name:sha256hex")
    name, hexdigest = parts[0], parts[1]
    if not _NAME_RE.fullmatch(name):
        raise ApiKeyConfigError(f"API key entry {position}: invalid name")
    if not _HASH_RE.fullmatch(hexdigest):
        # The usual mistake is pasting the key itself: say so without echoing it.
        hint = " (it looks like a key, not its hash)" if hexdigest.startswith(KEY_PREFIX) else ""
        raise ApiKeyConfigError(
            f"API key entry {position} ({name}): expected 64 hex digits of SHA-256{hint}"
        )
    rate_limit = parts[2] if len(parts) == 3 and parts[2] else None
    return ApiKeyEntry(name=name, digest=bytes.fromhex(hexdigest), rate_limit=rate_limit)


class ApiKeyVerifier:
    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._entries: Sequence[ApiKeyEntry] = tuple(entries)

    @property
    def entries(self) -> Sequence[ApiKeyEntry]:
        return self._entries

    def __bool__(self) -> bool:
        return bool(self._entries)

    def verify(self, presented: str) -> ApiKeyEntry | None:
        """The entry whose key this is, or None. Time independent of which entry matches."""
        if not presented or len(presented) > MAX_PRESENTED_KEY_CHARS:
            return None
        digest = key_digest(presented)
        found: ApiKeyEntry | None = None
        for entry in self._entries:  # no early exit: every entry is compared every time
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found


@dataclass(frozen=True, slots=True)
class Credentials:
    key: str | None  # the presented API key, if any
    malformed: bool = False  # an Authorization header we cannot use as a key


NO_CREDENTIALS: Final = Credentials(key=None)


def credentials_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Credentials:
    """The API key of a request: ``X-API-Key``, else ``Authorization: Bearer <key>``.

    A bearer token containing dots is a JWT (an ID token that Cloud Run's IAM check already
    verified, for instance), not one of our keys: it is ignored rather than refused. Other
    Authorization schemes are refused as malformed, so a client sending Basic credentials
    learns that they are not accepted instead of being served anonymously.
    """
    authorization: bytes | None = None
    for name, value in headers:
        if name == b"x-api-key":
            return Credentials(key=value.decode("latin-1").strip())
        if name == b"authorization":
            authorization = value
    if authorization is None:
        return NO_CREDENTIALS
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Credentials(key=None, malformed=True)
    if "." in token:
        return NO_CREDENTIALS
    return Credentials(key=token)
