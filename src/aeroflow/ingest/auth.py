"""Who may POST push envelopes. The OIDC implementation for Cloud Run is in ``ingest/oidc.py``."""

from __future__ import annotations

from typing import Literal, Protocol


class PushAuthError(Exception):
    def __init__(self, status_code: Literal[401, 403], message: str) -> None:
        super().__init__(message)
        self.status_code: Literal[401, 403] = status_code
        self.message = message


class PushAuthenticator(Protocol):
    def authenticate(self, authorization: str | None) -> None:
        """Accept the ``Authorization`` header value or raise PushAuthError.

        401: missing or unverifiable credentials; 403: valid, but not an allowed caller.
        Called on the event loop for every push request before anything else, so it must
        be quick: verify signatures against cached keys, never fetch per request.
        """
        ...


class NoPushAuthentication:
    """Local default: the ingest endpoint is bound to 127.0.0.1 and trusts its callers."""

    def authenticate(self, authorization: str | None) -> None:
        return None
