"""Process and load-generator plumbing shared by the benchmarks.

Everything here talks to 127.0.0.1 only. Servers are started as child processes, probed until
ready, measured through /proc (RSS of the whole process tree) and always stopped, even when a
benchmark fails halfway.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / ".data"
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
WRK_SCRIPT = BENCH / "wrk" / "requests.lua"
LOOPBACK = "127.0.0.1"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def wait_for_quiet(max_load: float = 2.0, timeout: float = 20.0) -> float:
    """Wait (bounded) until the 1-minute load average is low; returns the load seen.

    The machine is shared: a measurement taken while others run tests is still recorded,
    with the load next to it, rather than waiting forever.
    """
    deadline = time.monotonic() + timeout
    while True:
        one = load_average()[0]
        if one <= max_load or time.monotonic() >= deadline:
            if one > max_load:
                log(f"load average {one:.1f} (shared machine): measuring anyway")
            return one
        time.sleep(5)


# --- memory ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces, so split after the ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(_children(current))
    return tree


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB."""
    return sum(_status_kib(p, "VmRSS") for p in process_tree(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """High-water mark of resident memory (VmHWM) summed over the process tree, MiB."""
    return sum(_status_kib(p, "VmHWM") for p in process_tree(pid)) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree so far."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, *, busy: float = 0.15, timeout: float = 90.0) -> float:
    """Wait until a server stops working off a backlog (below ``busy`` cores); seconds waited.

    A slow system still runs the requests queued during the previous point after wrk has
    stopped; without this the next point would measure that backlog, not its own requests.
    """
    started = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        after = cpu_seconds(pid)
        if (after - before) / 0.5 < busy:
            break
        before = after
    return round(time.monotonic() - started, 1)


# --- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: Sequence[str]
    port: int
    ready_path: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            list(self.command),
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() can signal the whole group (workers too)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if http_get(self.base_url + self.ready_path, timeout=2)[0] < 500:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on {self.base_url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running(server: Server, timeout: float = 120.0) -> Iterator[Server]:
    server.start(timeout)
    try:
        yield server
    finally:
        server.stop()


def http_get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs built here
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def http_post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - loopback URLs built here
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


# --- wrk ---------------------------------------------------------------------------------


def write_request_list(path: Path, lines: Sequence[str]) -> Path:
    """One request per line: a path (GET) or "POST<TAB>path<TAB>body"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


_offsets: dict[Path, int] = {}


def run_wrk(
    base_url: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: float,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """One wrk run (one thread: the server needs the other core more than wrk does).

    Each run on a request file starts where the previous one stopped, so a server that keeps
    a response cache across runs is not handed URLs it has already answered.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    try:
        load_before = load_average()[0]
        subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                f"--timeout={timeout_seconds:g}s",
                "-s",
                str(WRK_SCRIPT),
                base_url,
            ],
            env={
                **os.environ,
                "WRK_REQUESTS": str(requests_file),
                "WRK_OUT": str(out_path),
                "WRK_OFFSET": str(_offsets.get(requests_file, 0)),
            },
            check=True,
            capture_output=True,
        )
        summary: dict[str, Any] = json.loads(out_path.read_text())
    finally:
        out_path.unlink(missing_ok=True)
    _offsets[requests_file] = _offsets.get(requests_file, 0) + int(summary["requests"])
    seconds_run = summary["duration_us"] / 1e6
    errors = summary["errors"]
    lat = summary["latency_us"]
    return {
        "connections": connections,
        "seconds": round(seconds_run, 2),
        "requests": summary["requests"],
        "rps": round(summary["requests"] / seconds_run, 1),
        "p50_ms": lat["p50"] / 1000,
        "p95_ms": lat["p95"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": round(lat["mean"] / 1000, 3),
        "errors": sum(errors.values()),
        "error_detail": errors,
        "mean_response_bytes": round(summary["bytes"] / max(summary["requests"], 1)),
        "load_1m_before": load_before,
    }


# --- reporting ---------------------------------------------------------------------------


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
        "wrk": (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip(),
        "packages": {
            name: _version(name)
            for name in ("duckdb", "fastapi", "starlette", "uvicorn", "granian", "orjson")
        },
    }


def save_json(name: str, payload: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path
