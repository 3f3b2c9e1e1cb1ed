"""Process settings, read from ``AEROFLOW_*`` environment variables and ``.env``.

One ``Settings`` object is built at the composition root (``aeroflow.bootstrap``) and handed
down; nothing else reads the environment.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Only good for local runs: production refuses to start with it (see _refuse_unsafe_defaults).
_DEV_CURSOR_SECRET = "aeroflow-development-cursor-secret"  # noqa: S105 - documented dev default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AEROFLOW_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"

    # --- storage -------------------------------------------------------------------------
    storage_backend: Literal["duckdb", "bigquery"] = "duckdb"
    duckdb_path: Path = Path("data/aeroflow.duckdb")
    duckdb_threads: int = Field(default=2, ge=1, le=64)
    # DuckDB's buffer pool (e.g. "512MB", "2GB"); docs/performance.md has the measurements.
    duckdb_memory_limit: str = Field(default="512MB", pattern=r"^[0-9]+(\.[0-9]+)?\s*[KMGT]i?B$")
    # DuckDB only: flights held in memory too (storage/read_model), so pages and lookups are
    # answered in microseconds without a SQL query; docs/performance.md has the figures.
    read_model: bool = True

    gcp_project: str | None = None
    bigquery_dataset: str = "aeroflow"
    bigquery_location: str = "EU"
    bigquery_api_endpoint: str | None = None  # e.g. a local emulator; None = real BigQuery
    bigquery_max_bytes_billed: int = Field(default=10 * 1024**3, ge=10 * 1024**2)
    bigquery_job_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- HTTP ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    cursor_secret: SecretStr = SecretStr(_DEV_CURSOR_SECRET)
    max_query_string_bytes: int = Field(default=4096, ge=256)
    # `aeroflow api` only: processes serving the read API on one port, each with its own
    # read-only store and read model (so its memory); about one per CPU. docs/operations.md.
    api_workers: int = Field(default=1, ge=1, le=64)
    # In-process cache of read responses, never stale (invalidated by the store's write
    # version; stores without one, like BigQuery, get none). 0 turns it off.
    response_cache_mib: int = Field(default=64, ge=0)
    # A /v1 request still running after this long is answered 503 (storage calls included);
    # below Cloud Run's request timeout (30 s), so clients get our error rather than its 504.
    api_request_timeout_seconds: float = Field(default=25.0, gt=0)
    # Browser origins that may call the API (JSON list or comma-separated); empty = no CORS.
    cors_allow_origins: Annotated[list[str], NoDecode] = []

    # --- read API access: keys and rate limits (docs/security.md) -------------------------
    # SHA-256 hashes of the API keys, never the keys: "name:sha256hex[:rate-limit]" entries,
    # comma or newline separated (`aeroflow keys new NAME` prints one). Secret Manager in GCP.
    api_keys: SecretStr = SecretStr("")
    # Unset: keys are required whenever some are configured and public_read is off.
    api_auth_required: bool | None = None
    # Anonymous reads on purpose; production refuses to serve /v1 without keys otherwise.
    public_read: bool = False
    # `limits` notation, "" = none. Per API key (an entry may carry its own) ...
    rate_limit_per_key: str = "100/second;3000/minute"
    # ... and per client address for requests without a valid key. Unset: 10/second;300/minute
    # in production, none elsewhere (a local server's one client is its developer; tests and
    # benchmarks send thousands of requests from one address).
    rate_limit_per_ip: str | None = None
    rate_limit_storage_uri: str = "async+memory://"
    # Proxies in front of us appending to X-Forwarded-For: Cloud Run's front end 1, behind an
    # external HTTPS load balancer 2; 0 = the TCP peer is the client.
    client_ip_proxy_hops: int = Field(default=1, ge=0, le=8)

    # --- ingest --------------------------------------------------------------------------
    push_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    ingest_max_batch_messages: int = Field(default=2000, ge=1)
    ingest_max_batch_wait_ms: float = Field(default=10.0, ge=0)
    ingest_drain_timeout_seconds: float = Field(default=8.0, gt=0)
    # Share of successful (2xx) push requests that get an access-log line; errors always do.
    # One line per message would be thousands per second, and Cloud Run's request log has
    # every request anyway. 1.0 logs them all.
    push_access_log_sample_rate: float = Field(default=0.01, ge=0.0, le=1.0)

    # --- Pub/Sub (docs/pubsub.md) ----------------------------------------------------------
    # Push requests carry a Google-signed OIDC token; verifying it is mandatory on Cloud Run
    # wherever the push endpoint is served (aeroflow.bootstrap checks it: it knows the role).
    push_oidc_enabled: bool = False
    push_oidc_audience: str | None = None  # the push subscription's audience (its URL)
    push_service_account: str | None = None  # email of the push subscription's identity
    # Cloud Run sets K_SERVICE in every container; it is how we know we run there.
    cloud_run_service: str | None = Field(default=None, validation_alias="K_SERVICE")
    pubsub_project: str | None = None  # defaults to gcp_project
    pubsub_topic: str = "flight-events"
    pubsub_subscription: str = "flight-events-pull"
    pubsub_message_ordering: bool = True  # ordering key = flight_id
    # Publisher: batching and a bound on messages/bytes not yet acknowledged by Pub/Sub.
    pubsub_publish_batch_max_messages: int = Field(default=1000, ge=1, le=1000)
    pubsub_publish_batch_max_latency_ms: float = Field(default=10.0, ge=0)
    pubsub_publish_max_in_flight_messages: int = Field(default=10_000, ge=1)
    pubsub_publish_max_in_flight_bytes: int = Field(default=64 * 1024**2, ge=1024**2)
    pubsub_publish_timeout_seconds: float = Field(default=60.0, gt=0)
    # Streaming pull: messages and bytes leased but not yet acked (client-side flow control).
    pubsub_pull_max_messages: int = Field(default=4000, ge=1)
    pubsub_pull_max_bytes: int = Field(default=64 * 1024**2, ge=1024)
    pubsub_pull_max_lease_seconds: int = Field(default=600, ge=10)
    # Longest single lease extension; 0 = the client's adaptive default (<= 60 s). Smaller
    # values return a crashed worker's messages sooner at the cost of more modack calls.
    pubsub_pull_lease_extension_seconds: int = Field(default=0, ge=0, le=600)

    # --- observability -------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    status_sample_interval_seconds: float = Field(default=10.0, gt=0)
    # Tracing: "none" keeps only W3C context propagation (no SDK, no export); "otlp" posts
    # spans over OTLP/HTTP; "gcp" sends them to Cloud Trace's OTLP endpoint.
    tracing_exporter: Literal["none", "otlp", "gcp"] = "none"
    tracing_otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    tracing_sample_ratio: float = Field(default=0.05, ge=0.0, le=1.0)
    tracing_service_name: str = "aeroflow"

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if (
            self.environment == "production"
            and self.cursor_secret.get_secret_value() == _DEV_CURSOR_SECRET
        ):
            raise ValueError("AEROFLOW_CURSOR_SECRET must be set in production")
        if self.storage_backend == "bigquery" and not self.gcp_project:
            raise ValueError("AEROFLOW_GCP_PROJECT is required with the bigquery backend")
        if self.push_oidc_enabled and not (self.push_oidc_audience and self.push_service_account):
            raise ValueError(
                "AEROFLOW_PUSH_OIDC_AUDIENCE and AEROFLOW_PUSH_SERVICE_ACCOUNT are required"
                " when push OIDC verification is on"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
