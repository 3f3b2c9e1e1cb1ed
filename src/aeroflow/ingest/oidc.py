"""Verify the OIDC token Pub/Sub attaches to every push request (mandatory on Cloud Run).

A push subscription configured with ``oidc_token {service_account_email, audience}`` sends
``Authorization: Bearer <JWT>``, a Google-signed ID token whose ``email`` is that service
account and whose ``aud`` is that audience. A signature check alone proves only that *some*
Google identity asked for *some* audience, so every claim that names us is checked too:

* signature against Google's published certificates, ``exp``/``iat``, issuer
  ``accounts.google.com`` — by ``google.oauth2.id_token.verify_oauth2_token``;
* ``aud`` equals our audience (passed to the same call, then classified, see below);
* ``email_verified`` is true and ``email`` is the push subscription's service account.

401 means we cannot tell who is calling (no token, garbage, bad signature, expired, wrong
issuer, unverified email); 403 means a genuine Google token of the wrong caller (another
service account) or meant for another service (another audience).

``verify_oauth2_token`` fetches the certificates on every call, so the transport given to it is
wrapped in ``CachingRequest``, which keeps the response for the ``max-age`` Google sends
(hours) and keeps serving the last good copy for a while if a refresh fails.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from google.auth import exceptions as auth_exceptions
from google.auth import transport
from google.oauth2 import id_token

from aeroflow.ingest.auth import PushAuthError

if TYPE_CHECKING:
    from aeroflow.settings import Settings

log = logging.getLogger(__name__)

# Google's ID tokens are ~1 KB; anything far larger is not one and is not worth parsing.
_MAX_TOKEN_CHARS: Final = 8192
_MAX_AGE_RE: Final = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


class _CachedResponse(transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = dict(headers)
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


@dataclass(slots=True)
class _Entry:
    response: _CachedResponse
    fresh_until: float
    usable_until: float  # stale copies are still served up to here when a refresh fails


class CachingRequest(transport.Request):
    """A google-auth transport that caches successful GETs (Google's certificate lists).

    Fresh for the response's ``Cache-Control: max-age`` (``default_ttl`` without one, at most
    ``max_ttl``). When a refresh fails, the previous copy is served for ``stale_grace`` more
    seconds: Google publishes a new key long before signing with it, so yesterday's list keeps
    verifying today's tokens, and a blip at googleapis.com does not stop ingest.
    """

    def __init__(
        self,
        inner: transport.Request,
        *,
        timeout_seconds: float = 5.0,
        default_ttl: float = 300.0,
        max_ttl: float = 24 * 3600.0,
        stale_grace: float = 6 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._timeout = timeout_seconds
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._stale_grace = stale_grace
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # upstream requests made; tests and metrics read it

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> transport.Response:
        if method != "GET" or body is not None:
            passed: transport.Response = self._inner(
                url, method=method, body=body, headers=headers, timeout=timeout
            )
            return passed
        # One fetch at a time: concurrent misses would all hit Google for the same document.
        with self._lock:
            now = self._clock()
            entry = self._entries.get(url)
            if entry is not None and now < entry.fresh_until:
                return entry.response
            try:
                self.fetches += 1
                response = self._inner(
                    url, method="GET", headers=headers, timeout=timeout or self._timeout
                )
                if response.status != 200:
                    raise auth_exceptions.TransportError(  # type: ignore[no-untyped-call]
                        f"HTTP {response.status} from {url}"
                    )
                cached = _CachedResponse(response.status, response.headers, response.data)
            except auth_exceptions.TransportError:
                if entry is not None and now < entry.usable_until:
                    log.warning("refreshing %s failed; serving the cached copy", url)
                    return entry.response
                raise
            ttl = min(self._ttl(cached.headers), self._max_ttl)
            self._entries[url] = _Entry(cached, now + ttl, now + ttl + self._stale_grace)
            return cached

    def _ttl(self, headers: Mapping[str, str]) -> float:
        cache_control = next(
            (value for key, value in headers.items() if key.lower() == "cache-control"), ""
        )
        if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
            return 0.0
        match = _MAX_AGE_RE.search(cache_control)
        return float(match.group(1)) if match else self._default_ttl


def default_request() -> CachingRequest:
    # Imported here: the requests transport is only needed when OIDC is on.
    from google.auth.transport.requests import Request

    return CachingRequest(Request())


class OidcPushAuthenticator:
    """``ingest.auth.PushAuthenticator`` for push subscriptions with an OIDC token."""

    def __init__(
        self,
        audience: str,
        service_account_email: str,
        *,
        request: transport.Request | None = None,
        clock_skew_seconds: int = 10,
    ) -> None:
        if not audience or not service_account_email:
            raise ValueError("audience and service_account_email are required")
        self._audience = audience
        self._service_account = service_account_email.lower()
        self._request = request if request is not None else default_request()
        self._clock_skew = clock_skew_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcPushAuthenticator:
        if not settings.push_oidc_audience or not settings.push_service_account:
            raise ValueError("push OIDC needs push_oidc_audience and push_service_account")
        return cls(settings.push_oidc_audience, settings.push_service_account)

    def authenticate(self, authorization: str | None) -> None:
        claims = self._verified_claims(_bearer_token(authorization))
        if claims.get("email_verified") is not True:
            raise PushAuthError(401, "token email is not verified")
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != self._service_account:
            log.warning("push token of %r refused: not the push service account", email)
            raise PushAuthError(403, "token is not from the push subscription's service account")

    def _verified_claims(self, token: str) -> Mapping[str, Any]:
        try:
            return self._verify(token, self._audience)
        except auth_exceptions.TransportError as exc:
            # No certificates at all (never fetched, and the fetch fails). Pub/Sub retries any
            # non-2xx, so refusing loses nothing; the log says it is our side.
            log.error("cannot fetch Google's token certificates: %s", exc)
            raise PushAuthError(401, "token cannot be verified right now") from None
        except Exception as exc:  # attacker-controlled input: any failure is a refusal
            first_error = exc
        # Failed with our audience: is it a genuine Google token for some other audience? Then
        # the caller is known and is refused (403); otherwise it is not a valid token (401).
        try:
            self._verify(token, None)
        except Exception:
            log.info("push token refused: %s", first_error)
            raise PushAuthError(401, "invalid or expired token") from None
        log.warning("push token refused: %s", first_error)
        raise PushAuthError(403, "token audience is not this service")

    def _verify(self, token: str, audience: str | None) -> Mapping[str, Any]:
        claims: Mapping[str, Any] = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, self._request, audience=audience, clock_skew_in_seconds=self._clock_skew
        )
        return claims


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise PushAuthError(401, "missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PushAuthError(401, "Authorization must be 'Bearer <token>'")
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 2:
        raise PushAuthError(401, "malformed bearer token")
    return token
