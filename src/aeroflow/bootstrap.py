"""The composition root: settings -> adapters -> the app or the worker.

Only this module knows which storage adapter and which push authenticator run. Everything else
receives its collaborators as arguments.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, cast

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from aeroflow.api.app import create_app
from aeroflow.api.middleware.headers import SecurityHeadersMiddleware, with_security_headers
from aeroflow.api.middleware.lane import ReadLane
from aeroflow.api.routes.status import create_status_router
from aeroflow.ingest.auth import NoPushAuthentication, PushAuthenticator
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.push import PushEndpoint, PushFastPath, push_router
from aeroflow.observability.access_log import AccessLogMiddleware
from aeroflow.observability.logging import configure_logging
from aeroflow.observability.tracing import configure_tracing, shutdown_tracing
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore, StorageUnavailableError


class Role(StrEnum):
    """What one process serves: both halves locally, one half per Cloud Run service."""

    SERVE = "serve"  # read API + push ingest (local default)
    API = "api"  # read API only (Cloud Run service aeroflow-api)
    INGEST = "ingest"  # push ingest only (Cloud Run service aeroflow-ingest)


def build_store(settings: Settings, *, read_only: bool = False) -> FlightStore:
    """The configured store; ``read_only`` (DuckDB) serves an existing file as a snapshot that
    several processes may open at once (BigQuery is read-only by the service's IAM role)."""
    if settings.storage_backend == "bigquery":
        from aeroflow.storage.bigquery import BigQueryFlightStore, build_bigquery_client

        return BigQueryFlightStore.from_settings(settings, build_bigquery_client(settings))
    from aeroflow.storage.duckdb import DuckDBFlightStore

    return DuckDBFlightStore(
        settings.duckdb_path,
        threads=settings.duckdb_threads,
        memory_limit=settings.duckdb_memory_limit,
        read_model=settings.read_model,
        read_only=read_only,
    )


def read_only_store_problem(settings: Settings) -> str | None:
    """Why ``aeroflow api`` cannot serve its DuckDB file (missing, not an aeroflow store,
    held by a writer), or None: checked once without loading the read model, before the
    server or its workers start."""
    if settings.storage_backend != "duckdb":
        return None
    from aeroflow.storage.duckdb import DuckDBFlightStore, NotAStoreError

    try:
        DuckDBFlightStore(
            settings.duckdb_path,
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
            read_model=False,
            read_only=True,
        ).close()
    except (NotAStoreError, StorageUnavailableError) as exc:
        return str(exc)
    return None


def build_push_authenticator(settings: Settings) -> PushAuthenticator:
    """How push requests are authenticated; only called where the push endpoint is mounted."""
    if settings.push_oidc_enabled:
        from aeroflow.ingest.oidc import OidcPushAuthenticator

        return OidcPushAuthenticator.from_settings(settings)
    # On Cloud Run the push URL is reachable through Google's front end: without token
    # verification anyone who learns it could write flight events. A service without the
    # endpoint (aeroflow api) never gets here, so it starts without the push settings.
    if settings.cloud_run_service:
        raise ValueError(
            "AEROFLOW_PUSH_OIDC_ENABLED=true is mandatory on Cloud Run for a service that"
            f" receives Pub/Sub pushes (K_SERVICE={settings.cloud_run_service})"
        )
    return NoPushAuthentication()


def build_committer(settings: Settings, store: FlightStore) -> GroupCommitter:
    return GroupCommitter(
        store,
        max_batch=settings.ingest_max_batch_messages,
        max_wait_seconds=settings.ingest_max_batch_wait_ms / 1000,
    )


def configure_observability(settings: Settings) -> None:
    """Process-wide logging and tracing; called once by each CLI entry point."""
    configure_logging(settings.log_level, settings.log_json, project_id=settings.gcp_project)
    configure_tracing(settings)


def _freeze_startup_objects() -> None:
    """Keep what startup built (modules, the app, the store and its read model, ~130 k objects)
    out of every later full garbage collection, which would otherwise walk all of it: measured
    on the sample, 20-105 ms pauses that set the p99 of point lookups; none after the freeze."""
    gc.collect()
    gc.freeze()


def build_app(
    settings: Settings, role: Role = Role.SERVE, *, subscription: str | None = None
) -> FastAPI:
    """The HTTP app for ``role``; with ``subscription`` (serve only) it also pulls from Pub/Sub.

    DuckDB allows one writing process, so locally the pull worker shares the serving process
    and its group committer; with BigQuery the worker runs as its own process (``aeroflow
    worker``). POST /pubsub/push is answered ahead of the app's own middleware (PushFastPath).
    """
    app, push_fast_path = _compose(settings, role, subscription)
    if push_fast_path is not None:
        app.add_middleware(PushFastPath, **push_fast_path)
    return app


def build_server_app(
    settings: Settings,
    role: Role = Role.SERVE,
    *,
    subscription: str | None = None,
    read_lane: bool = True,
) -> ASGIApp:
    """What uvicorn runs (with its ``proxy_headers`` off): ``build_app``'s app behind uvicorn's
    proxy-headers layer, and POST /pubsub/push answered ahead of both.

    As a middleware of the app, a push request still passes FastAPI's built-in error,
    telemetry and body-limit layers and the proxy-headers rewrite: about a sixth of the
    server's CPU per push message (measured: 245 -> 202 µs). The fast path reads
    X-Forwarded-For itself for its access log. Plain flight reads are answered ahead of
    everything by the read lane (aeroflow.api.middleware.lane); ``read_lane=False`` leaves
    it out (its differential test compares both).
    """
    app, push_fast_path = _compose(settings, role, subscription)
    # uvicorn's ASGI type aliases differ from Starlette's; the callables are the same.
    served = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts="*"))
    if push_fast_path is not None:
        served = PushFastPath(served, **push_fast_path)
    parts = app.state.read_lane
    if read_lane and parts is not None:
        served = ReadLane(served, parts=parts, trace_requests=settings.tracing_exporter != "none")
    return served


def _compose(
    settings: Settings, role: Role, subscription: str | None
) -> tuple[FastAPI, dict[str, Any] | None]:
    """The app, and the options of its PushFastPath when it mounts the push endpoint."""
    if subscription is not None and role is not Role.SERVE:
        raise ValueError("only `serve` runs the pull worker in-process")
    # Before the store: a refused configuration must not open (or lock) storage first.
    mounts_push = role in (Role.SERVE, Role.INGEST)
    authenticator = build_push_authenticator(settings) if mounts_push else None
    # The read-only role serves a published file: it never writes, and its workers (and any
    # other reader) may open the file together.
    store = build_store(settings, read_only=role is Role.API)
    routers: list[APIRouter] = [
        create_status_router(sample_interval_seconds=settings.status_sample_interval_seconds)
    ]
    committer: GroupCommitter | None = None
    push: PushEndpoint | None = None
    if authenticator is not None:
        committer = build_committer(settings, store)
        push = PushEndpoint(committer, authenticator, max_body_bytes=settings.push_max_body_bytes)
        routers.append(push_router(push))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if committer is not None:
            committer.start()
        _freeze_startup_objects()
        try:
            if committer is not None and subscription is not None:
                from aeroflow.ingest.worker import PullWorker

                worker = PullWorker.from_settings(settings, committer, subscription)
                # Left before the committer drains, so every pulled message is acked or nacked.
                async with worker.running(settings.ingest_drain_timeout_seconds / 2):
                    yield
            else:
                yield
        finally:
            # SIGTERM: uvicorn stops accepting, finishes in-flight requests, then we flush
            # whatever is still queued before Cloud Run's grace period ends.
            if committer is not None:
                committer.drain(settings.ingest_drain_timeout_seconds)
            store.close()
            shutdown_tracing()
            gc.unfreeze()  # what startup built may be garbage now (tests start many apps)

    app = create_app(
        settings,
        store,
        routers=routers,
        lifespan=lifespan,
        read_api=role is not Role.INGEST,
        readiness_checks=() if committer is None else (committer.write_health,),
    )
    # Outermost, so the access log times everything, error handlers included.
    app.add_middleware(AccessLogMiddleware, trace_requests=settings.tracing_exporter != "none")
    if push is None:
        return app, None
    # POST /pubsub/push skips the middleware above (a third of its CPU per message) and
    # records its own metrics, sampled access log and span (aeroflow.ingest.push).
    return app, {
        "endpoint": SecurityHeadersMiddleware(push),
        # For PushHttpProtocol: the bare endpoint and the headers its wrapping adds.
        "lane": (push, with_security_headers(())),
        "access_log_sample_rate": settings.push_access_log_sample_rate,
        "trace_requests": settings.tracing_exporter != "none",
    }


def api_worker_app() -> ASGIApp:
    """uvicorn's app factory in each worker process of ``aeroflow api --workers N``
    (``aeroflow.api_workers``): settings from the environment the supervisor passed on, the
    metrics merged across workers, logging and tracing of this process, the API's app over
    its own read-only store and read model."""
    from aeroflow.api_workers import exit_with_supervisor
    from aeroflow.observability.multiprocess_metrics import report_every_worker

    exit_with_supervisor()
    report_every_worker()
    settings = Settings()
    configure_observability(settings)
    return build_server_app(settings, Role.API)
