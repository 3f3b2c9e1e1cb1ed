"""The ``aeroflow`` command: serve | api | ingest | worker | publish | demo | schema."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aeroflow.api.middleware.one_write import OneWriteResponses
from aeroflow.api.middleware.read_protocol import ReadLaneResponses
from aeroflow.bootstrap import (
    Role,
    build_server_app,
    configure_observability,
    read_only_store_problem,
)
from aeroflow.devtools.child_process import ChildExitedError, serve_command, wait_ready
from aeroflow.ingest.push_protocol import PushHttpProtocol
from aeroflow.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
schema_app = typer.Typer(no_args_is_help=True, help="The generated schema files.")
app.add_typer(schema_app, name="schema")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the read API (docs/security.md).")
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)

HostOption = Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")]
PortOption = Annotated[int | None, typer.Option(envvar="PORT", help="Port (Cloud Run sets $PORT).")]
DbOption = Annotated[Path | None, typer.Option(help="DuckDB file (duckdb backend).")]
# Requests in flight while publishing. The server's group commit can only batch what is in
# flight, and about half of it is waiting for the previous batch at any time: 512 keeps its
# batches near 250 messages, where DuckDB's fixed cost per transaction stops dominating.
PUBLISH_CONCURRENCY = 512


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


class ServerHttpProtocol(ReadLaneResponses, OneWriteResponses, PushHttpProtocol):
    """uvicorn's httptools protocol as every server role runs it: plain flight reads and plain
    push requests answered without an ASGI cycle, every other response's head written with
    its body (aeroflow.api.middleware.read_protocol, .one_write, aeroflow.ingest.push_protocol)."""


def _server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn ``Config`` options of every server role, one process or several."""
    return {
        "log_config": None,  # our JSON logging, not uvicorn's
        "access_log": False,
        "proxy_headers": False,  # applied by build_server_app, behind the push fast path
        "server_header": False,
        # uvicorn's httptools protocol, plain reads and push requests answered by their lanes,
        # each other response's head written with its body.
        "http": ServerHttpProtocol,
        # Cloud Run sends SIGTERM and allows 10 s; drain requests, then the committer.
        "timeout_graceful_shutdown": max(1, int(settings.ingest_drain_timeout_seconds // 2)),
    }


def _run_server(role: Role, settings: Settings, subscription: str | None = None) -> None:
    configure_observability(settings)
    config = uvicorn.Config(
        build_server_app(settings, role, subscription=subscription),
        host=settings.host,
        port=settings.port,
        **_server_options(settings),
    )
    uvicorn.Server(config).run()


SubscriptionOption = Annotated[
    str | None,
    typer.Option(help="Pub/Sub subscription (name or projects/P/subscriptions/S) to pull from."),
]


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    db: DbOption = None,
    subscription: SubscriptionOption = None,
) -> None:
    """Read API and push ingest in one process (the local default); --subscription also pulls."""
    _run_server(Role.SERVE, _settings(host=host, port=port, duckdb_path=db), subscription)


@app.command()
def worker(subscription: SubscriptionOption = None, db: DbOption = None) -> None:
    """Streaming-pull worker: store what the subscription delivers, ack after the write."""
    from aeroflow.bootstrap import build_store
    from aeroflow.ingest.worker import run_worker

    settings = _settings(duckdb_path=db)
    configure_observability(settings)
    store = build_store(settings)
    try:
        code = run_worker(settings, store, subscription=subscription)
    finally:
        store.close()
    raise typer.Exit(code)


WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=64,
        help="Processes serving the API on one port (default AEROFLOW_API_WORKERS, 1); each"
        " holds its own read model in memory.",
    ),
]


@app.command()
def api(
    host: HostOption = None,
    port: PortOption = None,
    db: DbOption = None,
    workers: WorkersOption = None,
) -> None:
    """Read API only (Cloud Run service aeroflow-api), over a DuckDB file opened read-only."""
    settings = _settings(host=host, port=port, duckdb_path=db, api_workers=workers)
    if settings.api_workers == 1:
        _refuse_unservable_store(read_only_store_problem(settings))
        _run_server(Role.API, settings)
        return
    from aeroflow.api_workers import serve_workers, store_problem_in_child

    # Before any worker starts: a missing, locked or foreign file is one clear line, not a
    # traceback per worker.
    _refuse_unservable_store(store_problem_in_child(settings))
    configure_observability(settings)
    raise typer.Exit(serve_workers(settings, **_server_options(settings)))


def _refuse_unservable_store(problem: str | None) -> None:
    if problem is not None:
        console.print(f"[red]aeroflow api cannot serve the store: {problem}[/red]")
        raise typer.Exit(1)


@app.command()
def ingest(host: HostOption = None, port: PortOption = None, db: DbOption = None) -> None:
    """Pub/Sub push endpoint only (Cloud Run service aeroflow-ingest)."""
    _run_server(Role.INGEST, _settings(host=host, port=port, duckdb_path=db))


@app.command()
def publish(
    sample: Annotated[
        str | None, typer.Option(help="Built-in sample to publish: nycflights13.")
    ] = None,
    file: Annotated[Path | None, typer.Option(help="NDJSON file of FlightEvents.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Publish at most N rows.")] = None,
    target: Annotated[
        str, typer.Option(help="Push endpoint of a running aeroflow.")
    ] = "http://127.0.0.1:8080/pubsub/push",
    concurrency: Annotated[
        int, typer.Option(min=1, max=1024, help="Requests in flight (= the server's batch sizes).")
    ] = PUBLISH_CONCURRENCY,
    topic: Annotated[
        str | None,
        typer.Option(
            help="Publish to this Pub/Sub topic (name or projects/P/topics/T) instead of pushing"
            " to --target; honours PUBSUB_EMULATOR_HOST and AEROFLOW_PUBSUB_* settings."
        ),
    ] = None,
) -> None:
    """Publish flight events through the real ingestion path."""
    if (sample is None) == (file is None):
        raise typer.BadParameter("give exactly one of --sample or --file")
    if sample is not None and sample != "nycflights13":
        raise typer.BadParameter("the only built-in sample is nycflights13")
    failed = asyncio.run(_publish(sample, file, limit, target, concurrency, topic=topic))
    if failed:
        console.print(f"[red]{failed} messages could not be delivered[/red]")
        raise typer.Exit(1)


async def _publish(
    sample: str | None,
    file: Path | None,
    limit: int | None,
    target: str,
    concurrency: int,
    *,
    topic: str | None = None,
) -> int:
    from aeroflow.ingest.publisher import OutgoingMessage, Publisher, PushPublisher, raw_message
    from aeroflow.ingest.pubsub_publisher import PubSubPublisher
    from aeroflow.ingest.samples import (
        nycflights13_event_count,
        nycflights13_messages,
        read_ndjson_events,
    )

    # A generator, not a list: messages are made while earlier ones are in flight.
    messages: Iterator[OutgoingMessage]
    if sample is not None:
        total = nycflights13_event_count(limit)
        messages = nycflights13_messages(limit)
    else:
        assert file is not None  # noqa: S101 - checked by the caller
        lines = sum(1 for _ in read_ndjson_events(file))
        total = lines if limit is None else min(lines, limit)
        messages = (raw_message(data) for data in islice(read_ndjson_events(file), total))
    publisher: Publisher
    if topic is None:
        publisher = PushPublisher(target, concurrency=concurrency)
    else:
        publisher = PubSubPublisher.from_settings(Settings(), topic=topic)
    started = time.perf_counter()
    with Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} msg/s"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("publish", total=total, rate=0.0)

        def advance(n: int) -> None:
            done = progress.tasks[task].completed + n
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=n, rate=rate)

        try:
            report = await publisher.publish(messages, progress=advance)
        finally:
            if isinstance(publisher, PubSubPublisher):
                publisher.close()
    elapsed = time.perf_counter() - started
    console.print(
        f"published {report.published:,} messages in {elapsed:.1f} s "
        f"({report.published / max(elapsed, 1e-9):,.0f} msg/s), {report.failed} failed"
    )
    return report.failed


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8080,
    db: Annotated[Path, typer.Option(help="DuckDB file.")] = Path("data/aeroflow.duckdb"),
    limit: Annotated[int | None, typer.Option(min=1, help="Load only N sample rows.")] = None,
) -> None:
    """Serve on 127.0.0.1, load the nycflights13 sample through push ingest, keep serving."""
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        serve_command(port, "--db", str(db)),
        # A person watches this terminal: readable warnings, not a JSON line per request
        # (either can still be chosen through the environment).
        env={"AEROFLOW_LOG_JSON": "false", "AEROFLOW_LOG_LEVEL": "WARNING", **os.environ},
    )

    def stop(signum: int, _frame: object) -> None:
        server.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        _wait_ready(base, server)
        console.print(f"aeroflow is serving on {base} (DuckDB file {db})")
        failed = asyncio.run(
            _publish("nycflights13", None, limit, f"{base}/pubsub/push", PUBLISH_CONCURRENCY)
        )
        if failed:
            console.print(f"[red]{failed} messages failed; rerun `make demo` to retry them[/red]")
        _print_tour(base)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    try:
        wait_ready(base, server, timeout)
    except ChildExitedError as exc:
        raise typer.Exit(exc.returncode or 1) from None
    except TimeoutError:
        console.print(f"[red]aeroflow did not become ready on {base} within {timeout:.0f} s[/red]")
        server.terminate()
        raise typer.Exit(1) from None


def _print_tour(base: str) -> None:
    console.print(
        "\nTry:\n"
        f"  curl '{base}/v1/flights?carrier=UA&destination=IAH&limit=5'\n"
        f"  curl '{base}/v1/flights/UA1545-EWR-20130101'\n"
        f"  curl '{base}/v1/stats/delays?group_by=carrier'\n"
        f"API docs: {base}/docs   metrics: {base}/metrics   (Ctrl-C stops)"
    )


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="Who the key is for, e.g. partner-a.")],
) -> None:
    """Print a fresh API key and the AEROFLOW_API_KEYS entry (its hash) to configure."""
    from aeroflow.api.auth import ApiKeyConfigError, new_api_key

    try:
        made = new_api_key(name)
    except ApiKeyConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    # stdout only: the key is shown once and never stored by aeroflow.
    typer.echo(f"key:         {made.key}")
    typer.echo(f"entry:       {made.config_line}")
    typer.echo(f"fingerprint: {made.entry.fingerprint}")
    console.print(
        f"Give the key to {name} over a secure channel. Append the entry to AEROFLOW_API_KEYS"
        " (comma or newline separated; in GCP a new version of the aeroflow-api-keys secret)."
        " Logs and metrics show the fingerprint."
    )


@schema_app.command("export")
def schema_export(
    root: Annotated[Path, typer.Option(help="Repository root.")] = Path("."),
    check: Annotated[bool, typer.Option(help="Fail if files differ; write nothing.")] = False,
) -> None:
    """Write the BigQuery and Pub/Sub schema files generated from aeroflow.domain.schema."""
    from aeroflow.domain.schema import generated_files

    stale: list[str] = []
    for relative, content in generated_files().items():
        path = root / relative
        if path.exists() and path.read_text() == content:
            continue
        stale.append(relative)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for relative in stale:
        console.print(f"{'stale' if check else 'wrote'} {relative}")
    if check and stale:
        raise typer.Exit(1)
