"""How each system under test is started: aeroflow, Datasette, ROAPI and the raw ASGI ceiling.

Peers live in their own venvs under ``bench/.venvs`` (``ensure_peer_venvs``), so their pins
never meet aeroflow's. Every listener binds 127.0.0.1, ROAPI's Postgres and FlightSQL
endpoints included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import BENCH, DATA, VENV_BIN, VENVS, Server, free_port, log

PEER_PACKAGES = {"datasette": "datasette==0.65.5", "roapi": "roapi==0.12.7"}


def ensure_peer_venvs() -> None:
    for name, requirement in PEER_PACKAGES.items():
        venv = VENVS / name
        marker = venv / f".installed-{requirement}"
        if marker.exists():
            continue
        log(f"installing {requirement} into {venv.relative_to(BENCH.parent)}")
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", requirement], check=True)
        marker.touch()


def aeroflow(db: Path, *, server: str = "default", **env: str) -> Server:
    """``aeroflow serve`` as a user runs it; extra AEROFLOW_* settings through ``env``."""
    port = free_port()
    log_path = DATA / "logs" / f"aeroflow-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return Server(
        name="aeroflow",
        command=[str(VENV_BIN / "aeroflow"), "serve", "--port", str(port), "--db", str(db)],
        port=port,
        ready_path="/readyz",
        # The JSON access log (one line per request, INFO) stays on, as it is by default; its
        # lines go to a file that is kept only when something fails.
        env={"AEROFLOW_ENVIRONMENT": "development", **env},
        log_path=log_path,
    )


def aeroflow_api(db: Path, *, workers: int, **env: str) -> Server:
    """``aeroflow api --workers N``: the read-only role on N processes, each with its own
    read model, over the same file (opened read-only: the file is never written)."""
    port = free_port()
    log_path = DATA / "logs" / f"aeroflow-api-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return Server(
        name=f"aeroflow-workers{workers}",
        command=[
            str(VENV_BIN / "aeroflow"),
            "api",
            "--port",
            str(port),
            "--db",
            str(db),
            "--workers",
            str(workers),
        ],
        port=port,
        ready_path="/readyz",
        env={"AEROFLOW_ENVIRONMENT": "development", **env},
        log_path=log_path,
    )


def datasette(sqlite_file: Path) -> Server:
    port = free_port()
    return Server(
        name="datasette",
        command=[
            str(VENVS / "datasette" / "bin" / "datasette"),
            "serve",
            "--immutable",  # read-only data: no locking, counts cached (its fastest mode)
            str(sqlite_file),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--setting",
            "sql_time_limit_ms",
            "20000",
            "--setting",
            "suggest_facets",
            "off",
            "--setting",
            "allow_facet",
            "off",
        ],
        port=port,
        ready_path="/-/versions.json",
    )


def roapi(parquet_file: Path) -> Server:
    port = free_port()
    return Server(
        name="roapi",
        command=[
            str(VENVS / "roapi" / "bin" / "roapi"),
            "--addr-http",
            f"127.0.0.1:{port}",
            "--addr-postgres",
            f"127.0.0.1:{free_port()}",
            "--addr-flight-sql",
            f"127.0.0.1:{free_port()}",
            "--table",
            f"flights={parquet_file}",
        ],
        port=port,
        ready_path="/api/schema",
        env={"RUST_LOG": "error"},
    )


def raw_asgi(bodies_file: Path) -> Server:
    """The ceiling, under the same HTTP server stack as ``aeroflow serve`` (uvicorn with
    uvloop and httptools)."""
    port = free_port()
    return Server(
        name="raw-asgi",
        command=[
            str(VENV_BIN / "uvicorn"),
            "--app-dir",
            str(BENCH),
            "raw_asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        port=port,
        ready_path="/",
        env={"RAW_ASGI_BODIES": str(bodies_file)},
    )
