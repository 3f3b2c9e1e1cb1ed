"""Who may read: the access policy built from settings, and how OpenAPI documents it.

Which paths need what (docs/security.md has the reasoning):

* ``/v1/...`` (the data): an API key when auth is required, otherwise optional; rate limited
  per key, and per client address for requests without a valid key. A wrong key is always a
  401, never a silent downgrade to anonymous.
* ``/metrics``: open to the instance itself (a loopback peer with no X-Forwarded-For, as
  Managed Prometheus' sidecar scrapes it), otherwise a key when auth is required: it shows
  per-key traffic.
* ``/healthz``, ``/readyz`` (Cloud Run's probes carry no credentials), ``/status``, ``/docs``,
  ``/redoc``, ``/openapi.json`` and their assets: open. ``/pubsub/push`` has its own OIDC check.

Production refuses to serve ``/v1`` without keys unless ``public_read`` says so explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import FastAPI
from limits import RateLimitItem

from aeroflow.api.auth import ApiKeyVerifier, parse_api_keys
from aeroflow.api.ratelimit import RateLimiter, describe, parse_rate_limits
from aeroflow.settings import Settings

API_PREFIX: Final = "/v1"
METRICS_PATH: Final = "/metrics"
API_KEY_HEADER: Final = "X-API-Key"
# Anonymous clients in production when AEROFLOW_RATE_LIMIT_PER_IP is unset.
PRODUCTION_PER_IP_LIMIT: Final = "10/second;300/minute"
CORS_MAX_AGE_SECONDS: Final = 600

_ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorOut"}


class AccessConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AccessPolicy:
    verifier: ApiKeyVerifier
    auth_required: bool
    per_key: tuple[RateLimitItem, ...]
    per_ip: tuple[RateLimitItem, ...]
    limiter: RateLimiter
    proxy_hops: int
    # Key entries that carry their own limit, by fingerprint.
    key_limits: Mapping[str, tuple[RateLimitItem, ...]] = field(default_factory=dict)

    def limits_for_key(self, fingerprint: str) -> tuple[RateLimitItem, ...]:
        return self.key_limits.get(fingerprint, self.per_key)

    @property
    def rate_limited(self) -> bool:
        return bool(self.per_key or self.per_ip or self.key_limits)


def access_policy(settings: Settings, *, read_api: bool = True) -> AccessPolicy:
    """The policy, or AccessConfigError naming the setting to fix (the app refuses to start)."""
    try:
        entries = parse_api_keys(settings.api_keys.get_secret_value())
        per_key = parse_rate_limits(settings.rate_limit_per_key)
        per_ip_text = settings.rate_limit_per_ip
        if per_ip_text is None:
            per_ip_text = PRODUCTION_PER_IP_LIMIT if settings.environment == "production" else ""
        per_ip = parse_rate_limits(per_ip_text)
        key_limits = {
            entry.fingerprint: parse_rate_limits(entry.rate_limit)
            for entry in entries
            if entry.rate_limit is not None
        }
        limiter = RateLimiter(settings.rate_limit_storage_uri)
    except ValueError as exc:
        raise AccessConfigError(str(exc)) from None

    required = settings.api_auth_required
    if required is None:
        required = bool(entries) and not settings.public_read
    if required and settings.public_read:
        raise AccessConfigError(
            "AEROFLOW_API_AUTH_REQUIRED=true contradicts AEROFLOW_PUBLIC_READ=true"
        )
    if required and not entries:
        raise AccessConfigError(
            "API keys are required but AEROFLOW_API_KEYS holds none (aeroflow keys new NAME)"
        )
    if (
        read_api
        and settings.environment == "production"
        and not required
        and not settings.public_read
    ):
        raise AccessConfigError(
            "production serves /v1 only behind API keys (AEROFLOW_API_KEYS) or, on purpose,"
            " publicly with AEROFLOW_PUBLIC_READ=true"
        )
    return AccessPolicy(
        verifier=ApiKeyVerifier(entries),
        auth_required=required,
        per_key=per_key,
        per_ip=per_ip,
        limiter=limiter,
        proxy_hops=settings.client_ip_proxy_hops,
        key_limits=key_limits,
    )


def cors_options(settings: Settings) -> dict[str, Any] | None:
    """CORSMiddleware arguments, or None (no CORS headers at all) when no origin is set.

    No credentials mode: keys travel in a header the page's script sets, never in cookies.
    """
    if not settings.cors_allow_origins:
        return None
    return {
        "allow_origins": list(settings.cors_allow_origins),
        "allow_methods": ["GET", "HEAD"],
        "allow_headers": [API_KEY_HEADER, "Authorization", "Accept"],
        "expose_headers": ["Link", "Retry-After"],
        "allow_credentials": False,
        "max_age": CORS_MAX_AGE_SECONDS,
    }


def document_security(app: FastAPI, policy: AccessPolicy) -> None:
    """Add the key schemes and the 401/429 answers to the app's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # caches itself in app.openapi_schema; amended in place
        _amend(schema, policy)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _amend(schema: dict[str, Any], policy: AccessPolicy) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            "ApiKey": {
                "type": "apiKey",
                "in": "header",
                "name": API_KEY_HEADER,
                "description": "An API key (`afk_...`) issued by the operator.",
            },
            "BearerApiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The same API key as `Authorization: Bearer <key>`.",
            },
        }
    )
    with_key: list[dict[str, list[str]]] = [{"ApiKey": []}, {"BearerApiKey": []}]
    for path, operations in schema.get("paths", {}).items():
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            security = with_key if policy.auth_required else [*with_key, {}]
            limits = policy.per_key if policy.auth_required else policy.per_ip
            for operation in operations.values():
                operation["security"] = security
                responses = operation.setdefault("responses", {})
                responses["401"] = _unauthenticated_response()
                if policy.rate_limited:
                    responses["429"] = _rate_limited_response(describe(limits))
        elif path == METRICS_PATH and policy.auth_required:
            for operation in operations.values():
                operation["security"] = with_key
                operation["description"] = (
                    "Open to the instance itself (loopback, no proxy); a key otherwise."
                )
                operation.setdefault("responses", {})["401"] = _unauthenticated_response()


def _unauthenticated_response() -> dict[str, Any]:
    return {
        "description": "Missing or invalid API key (`unauthenticated`).",
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge."}
        },
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def _rate_limited_response(limits: str) -> dict[str, Any]:
    per = f" ({limits} by default)" if limits else ""
    return {
        "description": f"Rate limit exceeded (`rate_limited`){per}; see Retry-After.",
        "headers": {
            "Retry-After": {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds until a request can succeed again.",
            }
        },
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
