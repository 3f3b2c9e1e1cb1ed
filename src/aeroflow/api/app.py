"""The FastAPI app factory. No globals: every collaborator arrives as an argument.

``create_app`` wires the read API (flights, stats), operations endpoints (health, readiness,
metrics), local docs, the error model and the middleware. The composition root
(``aeroflow.bootstrap``) adds the push-ingest router and a lifespan that starts and drains the
group committer; the caller also owns the store and closes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from aeroflow import __version__
from aeroflow.api.cursor import CursorCodec
from aeroflow.api.docs import install_docs
from aeroflow.api.errors import install_error_handlers
from aeroflow.api.fast_reads import FastReads
from aeroflow.api.middleware.access import ApiAccessMiddleware, leaf_routes, open_access
from aeroflow.api.middleware.cache import ResponseCache, ResponseCacheMiddleware
from aeroflow.api.middleware.errors import InternalErrorMiddleware
from aeroflow.api.middleware.header_limit import MAX_HEADER_BYTES, HeaderSizeLimitMiddleware
from aeroflow.api.middleware.headers import SecurityHeadersMiddleware
from aeroflow.api.middleware.lane import LaneParts
from aeroflow.api.middleware.limits import QueryStringLimitMiddleware
from aeroflow.api.middleware.metrics import MetricsMiddleware
from aeroflow.api.middleware.timeout import Deadlines, RequestTimeoutMiddleware
from aeroflow.api.routes import flights, health, stats
from aeroflow.api.routes.health import ReadinessCheck
from aeroflow.api.security import access_policy, cors_options, document_security
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore

OPENAPI_URL = "/openapi.json"

_DESCRIPTION = """\
Current status of airline flights, fed by flight status events.

* Times are RFC 3339 in UTC (`Z`); `scheduled_departure_local` is the origin's wall clock.
* Lists are keyset-paginated: follow `next_cursor` (or the `Link: rel="next"` header).
* Errors always have the shape `{"error": {"code", "message", "details"}}`.
"""


def create_app(
    settings: Settings,
    store: FlightStore,
    *,
    routers: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    read_api: bool = True,
    readiness_checks: Sequence[ReadinessCheck] = (),
) -> FastAPI:
    """The HTTP app. ``read_api=False`` leaves out /v1 (an ingest-only service).

    ``readiness_checks`` run after the store's ping on ``/readyz``; each returns None when
    healthy or a short reason (e.g. the ingest committer's last write failed).

    Raises ``AccessConfigError`` for unusable key or rate-limit settings, so that a
    misconfigured instance never starts serving.
    """
    access = access_policy(settings, read_api=read_api)
    app = FastAPI(
        title="aeroflow",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by install_docs from local assets
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # /v1/flights/ is not /v1/flights: a strict API answers 404 rather than redirecting.
        redirect_slashes=False,
        # Server spans, HTTP metrics and access logs are aeroflow's own (observability,
        # api.middleware). FastAPI's native OpenTelemetry (0.142+) would add a second, unlinked
        # root span per request once a tracing SDK is installed, and checks the providers on
        # every request (~3 us) even when none is. Older FastAPI keeps this in app.extra.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.store = store
    app.state.readiness_checks = tuple(readiness_checks)
    app.state.cursor_codec = CursorCodec(settings.cursor_secret.get_secret_value().encode())

    install_error_handlers(app)
    app.include_router(health.router)
    if read_api:
        app.include_router(flights.router)
        app.include_router(stats.router)
    for router in routers:
        app.include_router(router)
    install_docs(app, openapi_url=OPENAPI_URL)
    document_security(app, access)

    # Added innermost first: metrics see every response, including the ones produced by the
    # middleware below them; every response gets the security headers.
    # Shared with the read lane (aeroflow.api.middleware.lane), which the server puts ahead of
    # the whole app: the same entries, the same deadline timer.
    cache = ResponseCache(store, max_bytes=settings.response_cache_mib * 1024**2)
    deadlines = Deadlines(settings.api_request_timeout_seconds)
    app.state.read_lane = None
    if read_api:
        routes = list(leaf_routes(app.router.routes))
        # Innermost, inside the cache: plainly valid flight reads skip FastAPI's routing and
        # validation; everything else reaches the routes.
        app.add_middleware(FastReads, store=store, codec=app.state.cursor_codec, routes=routes)
        cors = cors_options(settings)
        app.state.read_lane = LaneParts(
            reads=FastReads(
                _answers_only, store=store, codec=app.state.cursor_codec, routes=routes
            ),
            cache=cache,
            deadlines=deadlines,
            store=store,
            max_query_bytes=settings.max_query_string_bytes,
            max_header_bytes=MAX_HEADER_BYTES,
            plain_access=cors is None and open_access(access),
        )
    # Innermost: a cached answer still passes the key check, limits, metrics and headers.
    app.add_middleware(ResponseCacheMiddleware, store=store, cache=cache)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(
        RequestTimeoutMiddleware, seconds=settings.api_request_timeout_seconds, deadlines=deadlines
    )
    # Keys and rate limits (aeroflow.api.security) after the cheap query-string check.
    app.add_middleware(ApiAccessMiddleware, policy=access, routes=app.router.routes)
    app.add_middleware(QueryStringLimitMiddleware, max_bytes=settings.max_query_string_bytes)
    app.add_middleware(HeaderSizeLimitMiddleware, max_bytes=MAX_HEADER_BYTES)
    app.add_middleware(SecurityHeadersMiddleware)
    # Outside the key check: preflights carry no key, and refusals need CORS headers too.
    if (cors := cors_options(settings)) is not None:
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(MetricsMiddleware)
    return app


async def _answers_only(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the read lane's FastReads, which only ever asks it for answers."""
    raise RuntimeError("the read lane's FastReads passes nothing on")
