"""Stopping a child tool by its process group: real processes, no emulator needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aeroflow.devtools.child_process import stop_process_group, tail

# A leader that starts a grandchild, says its PID, and waits: as a launcher script does.
LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""
# A leader that ignores SIGTERM, as a wedged emulator would.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def start(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    # The orphaned grandchild is reaped by init, asynchronously.
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_stopping_the_group_stops_what_the_leader_started() -> None:
    leader = start(LEADER)
    assert leader.stdout is not None
    grandchild = int(leader.stdout.readline())
    try:
        assert os.getpgid(grandchild) == leader.pid  # in the leader's group, not ours
        stop_process_group(leader)
        assert leader.returncode == -signal.SIGTERM
        assert wait_gone(grandchild), "the leader's child survived its group being stopped"
    finally:
        if running(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_group_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    leader = start(STUBBORN)
    assert leader.stdout is not None
    assert leader.stdout.readline().strip() == b"ready"  # SIGTERM is ignored from here on
    stop_process_group(leader, timeout=0.5)
    assert leader.returncode == -signal.SIGKILL


def test_a_child_that_already_exited_is_left_alone() -> None:
    leader = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    leader.wait(timeout=30)
    stop_process_group(leader)  # no signal to a group that is gone (its id may be reused)
    assert leader.returncode == 0


def test_tail_gives_the_end_of_a_log_or_says_there_is_none(tmp_path: Path) -> None:
    log = tmp_path / "tool.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, lines=2) == "line 98\nline 99"
    assert tail(tmp_path / "missing.log") == "(no log)"


@pytest.mark.emulator
def test_the_bigquery_emulator_runs_in_a_session_of_its_own(tmp_path: Path) -> None:
    from aeroflow.devtools.bigquery_emulator import emulator_python, running_emulator

    if not emulator_python().exists():
        pytest.skip(f"BigQuery emulator not installed: {emulator_python()} is missing")
    with running_emulator("aeroflow-session-test", tmp_path / "bqemulator.log") as emulator:
        # A terminal's Ctrl-C goes to its foreground process group: not this one.
        assert os.getsid(emulator.pid) == emulator.pid
        assert os.getpgid(emulator.pid) != os.getpgid(0)
    with pytest.raises(ProcessLookupError):
        os.killpg(emulator.pid, 0)  # the whole group is gone
