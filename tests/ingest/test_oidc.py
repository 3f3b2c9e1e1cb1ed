"""OIDC verification of push requests, with tokens signed offline by a local RSA key.

The one thing replaced is Google's certificate endpoint (https://www.googleapis.com/oauth2/v1/
certs), a network boundary this machine cannot reach: ``LocalCertsEndpoint`` is a google-auth
transport that answers that URL with the X.509 certificate of a key generated here, in the same
``{"kid": "PEM"}`` shape and with the same ``Cache-Control: max-age`` Google sends. Everything
else is real: google-auth parses, checks signatures, expiry and issuer; our authenticator checks
audience, email and email_verified.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from google.auth import crypt, jwt, transport
from google.auth import exceptions as auth_exceptions

from aeroflow.api.app import create_app
from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.auth import PushAuthError
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.oidc import CachingRequest, OidcPushAuthenticator
from aeroflow.ingest.publisher import OutgoingMessage, event_message, push_envelope, rfc3339_now
from aeroflow.ingest.push import PUSH_PATH, create_push_router
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from loopback_server import serve

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
AUDIENCE = "https://aeroflow-ingest-abc123-ew.a.run.app/pubsub/push"
PUSH_SA = "pubsub-push@aeroflow-prod.iam.gserviceaccount.com"


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_pem: bytes
    certificate_pem: bytes

    def sign(self, claims: Mapping[str, Any]) -> str:
        signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            self.private_pem, self.key_id
        )
        token: bytes = jwt.encode(signer, dict(claims))  # type: ignore[no-untyped-call]
        return token.decode()


def make_key(key_id: str) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(key_id, private_pem, cert.public_bytes(serialization.Encoding.PEM))


class _Response(transport.Response):
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class LocalCertsEndpoint(transport.Request):
    """Stands in for Google's certificate endpoint (see the module docstring)."""

    def __init__(self, *keys: SigningKey, max_age: int = 20000) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.requests: list[str] = []
        self.down = False

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> _Response:
        self.requests.append(url)
        assert url == GOOGLE_CERTS_URL
        assert method == "GET"
        if self.down:
            raise auth_exceptions.TransportError("connection refused")  # type: ignore[no-untyped-call]
        body = json.dumps({k.key_id: k.certificate_pem.decode() for k in self.keys}).encode()
        cache_control = f"public, max-age={self.max_age}, must-revalidate, no-transform"
        return _Response(200, {"Cache-Control": cache_control}, body)


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return make_key("google-key-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return make_key("google-key-1")  # same key id, different key: a forged token


@pytest.fixture
def certs(google_key: SigningKey) -> LocalCertsEndpoint:
    return LocalCertsEndpoint(google_key)


@pytest.fixture
def authenticator(certs: LocalCertsEndpoint) -> OidcPushAuthenticator:
    return OidcPushAuthenticator(AUDIENCE, PUSH_SA, request=CachingRequest(certs))


def claims(**overrides: Any) -> dict[str, Any]:
    """What Pub/Sub puts in a push token (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "email": PUSH_SA,
        "email_verified": True,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(authenticator: OidcPushAuthenticator, header: str | None) -> int:
    with pytest.raises(PushAuthError) as info:
        authenticator.authenticate(header)
    return info.value.status_code


def test_a_valid_push_token_passes(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    authenticator.authenticate(f"Bearer {google_key.sign(claims())}")


def test_both_google_issuer_spellings_pass(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    authenticator.authenticate(f"Bearer {google_key.sign(claims(iss='accounts.google.com'))}")


def test_email_is_compared_case_insensitively(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    authenticator.authenticate(f"Bearer {google_key.sign(claims(email=PUSH_SA.upper()))}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer " + "x" * 9000 + ".y.z",
        "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.",  # alg none, unsigned
    ],
)
def test_missing_or_garbage_credentials_are_401(
    authenticator: OidcPushAuthenticator, header: str | None
) -> None:
    assert refused(authenticator, header) == 401


def test_token_signed_by_another_key_is_401(
    authenticator: OidcPushAuthenticator, other_key: SigningKey
) -> None:
    assert refused(authenticator, f"Bearer {other_key.sign(claims())}") == 401


def test_token_of_an_unknown_key_id_is_401(authenticator: OidcPushAuthenticator) -> None:
    stranger = make_key("not-published")
    assert refused(authenticator, f"Bearer {stranger.sign(claims())}") == 401


def test_expired_token_is_401(authenticator: OidcPushAuthenticator, google_key: SigningKey) -> None:
    now = int(time.time())
    token = google_key.sign(claims(iat=now - 7200, exp=now - 3600))
    assert refused(authenticator, f"Bearer {token}") == 401


def test_token_without_expiry_is_401(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    token = google_key.sign({k: v for k, v in claims().items() if k != "exp"})
    assert refused(authenticator, f"Bearer {token}") == 401


def test_token_of_another_issuer_is_401(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    token = google_key.sign(claims(iss="https://evil.example.com"))
    assert refused(authenticator, f"Bearer {token}") == 401


def test_unverified_email_is_401(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    token = google_key.sign(claims(email_verified=False))
    assert refused(authenticator, f"Bearer {token}") == 401
    token = google_key.sign(claims(email_verified="true"))  # a string is not a verified flag
    assert refused(authenticator, f"Bearer {token}") == 401


def test_token_of_another_service_account_is_403(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    token = google_key.sign(claims(email="someone-else@aeroflow-prod.iam.gserviceaccount.com"))
    assert refused(authenticator, f"Bearer {token}") == 403
    token = google_key.sign(claims(email=None))
    assert refused(authenticator, f"Bearer {token}") == 403


def test_token_for_another_audience_is_403(
    authenticator: OidcPushAuthenticator, google_key: SigningKey
) -> None:
    token = google_key.sign(claims(aud="https://some-other-service.a.run.app/"))
    assert refused(authenticator, f"Bearer {token}") == 403


def test_certificates_are_fetched_once_and_cached(
    authenticator: OidcPushAuthenticator, certs: LocalCertsEndpoint, google_key: SigningKey
) -> None:
    for _ in range(20):
        authenticator.authenticate(f"Bearer {google_key.sign(claims())}")
    assert certs.requests == [GOOGLE_CERTS_URL]


def test_cache_expires_after_max_age_and_survives_a_failed_refresh(
    google_key: SigningKey,
) -> None:
    now = [1000.0]
    certs = LocalCertsEndpoint(google_key, max_age=60)
    request = CachingRequest(certs, clock=lambda: now[0], stale_grace=600)
    authenticator = OidcPushAuthenticator(AUDIENCE, PUSH_SA, request=request)
    token = f"Bearer {google_key.sign(claims())}"

    authenticator.authenticate(token)
    now[0] += 59
    authenticator.authenticate(token)
    assert len(certs.requests) == 1
    now[0] += 2  # past max-age: refetched
    authenticator.authenticate(token)
    assert len(certs.requests) == 2

    certs.down = True
    now[0] += 61  # stale, refresh fails, the last good copy still verifies
    authenticator.authenticate(token)
    assert len(certs.requests) == 3
    now[0] += 700  # beyond the grace period: nothing to verify against
    assert refused(authenticator, token) == 401


def test_rotated_keys_are_picked_up_on_refresh(google_key: SigningKey) -> None:
    now = [0.0]
    certs = LocalCertsEndpoint(google_key, max_age=60)
    authenticator = OidcPushAuthenticator(
        AUDIENCE, PUSH_SA, request=CachingRequest(certs, clock=lambda: now[0])
    )
    authenticator.authenticate(f"Bearer {google_key.sign(claims())}")
    new_key = make_key("google-key-2")
    certs.keys.append(new_key)
    token = f"Bearer {new_key.sign(claims())}"
    assert refused(authenticator, token) == 401  # not yet published to us
    now[0] += 61
    authenticator.authenticate(token)


def test_requires_audience_and_service_account() -> None:
    with pytest.raises(ValueError, match="required"):
        OidcPushAuthenticator("", PUSH_SA, request=LocalCertsEndpoint())
    with pytest.raises(ValueError, match="required"):
        OidcPushAuthenticator(AUDIENCE, "", request=LocalCertsEndpoint())


# --- through the real push endpoint ---------------------------------------------------------


def test_push_endpoint_stores_nothing_for_refused_tokens(
    google_key: SigningKey, other_key: SigningKey, tmp_path: Path
) -> None:
    """A real app on uvicorn (127.0.0.1) with OIDC on and DuckDB: refused requests are 401/403
    with the error body, and nothing reaches the store; the valid token's message is stored."""
    settings = Settings(environment="test", duckdb_path=tmp_path / "aeroflow.duckdb")
    store = DuckDBFlightStore(settings.duckdb_path)
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.001)
    authenticator = OidcPushAuthenticator(
        AUDIENCE, PUSH_SA, request=CachingRequest(LocalCertsEndpoint(google_key))
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        committer.start()
        yield
        committer.drain(5)
        store.close()

    router = create_push_router(committer, authenticator, max_body_bytes=1 << 20)
    app = create_app(settings, store, routers=[router], lifespan=lifespan)
    now = int(time.time())
    refused_tokens = {
        "wrong key": (other_key.sign(claims()), 401),
        "expired": (google_key.sign(claims(iat=now - 7200, exp=now - 3600)), 401),
        "unverified email": (google_key.sign(claims(email_verified=False)), 401),
        "wrong service account": (
            google_key.sign(claims(email="x@y.iam.gserviceaccount.com")),
            403,
        ),
        "wrong audience": (google_key.sign(claims(aud="https://elsewhere.example/")), 403),
        "garbage": ("garbage.garbage.garbage", 401),
    }
    with serve(app) as base_url, httpx.Client(base_url=base_url) as client:
        for number, (name, (token, status)) in enumerate(refused_tokens.items()):
            body = _envelope(f"refused-{number}")
            response = client.post(
                PUSH_PATH, content=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == status, name
            assert response.json()["error"]["code"] in {"unauthenticated", "forbidden"}
        response = client.post(PUSH_PATH, content=_envelope("no-token"))
        assert response.status_code == 401
        assert client.get("/v1/flights").json()["data"] == []

        valid = {"Authorization": f"Bearer {google_key.sign(claims())}"}
        assert (
            client.post(PUSH_PATH, content=_envelope("accepted"), headers=valid).status_code == 204
        )
        assert [f["flight_id"] for f in client.get("/v1/flights").json()["data"]] == [
            "UA1545-EWR-20130101"
        ]


def _envelope(message_id: str) -> bytes:
    event = FlightEvent.model_validate(
        {
            "carrier": "UA",
            "flight_number": 1545,
            "origin": "EWR",
            "destination": "IAH",
            "scheduled_departure": "2013-01-01T05:15:00-05:00",
            "scheduled_arrival": "2013-01-01T08:19:00-06:00",
            "status": "scheduled",
            "distance_miles": 1400,
            "event_time": "2012-12-31T05:15:00-05:00",
        },
        strict=False,
    )
    message = event_message(event)
    message = OutgoingMessage(message.data, message.attributes, message.ordering_key, message_id)
    return orjson.dumps(push_envelope(message, rfc3339_now()))
