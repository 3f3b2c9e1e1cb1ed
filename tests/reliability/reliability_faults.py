"""Real storage faults for a running aeroflow process: its disk fills up, or it may not write.

A DuckDB database that is already open cannot be made unavailable with file permissions or
locks: the process holds the file descriptors and the lock from the moment it opened the file
(chmod and a second process's lock attempt change nothing for it). What does make its writes
fail is the kernel refusing them, which is what these two faults do; DuckDB's own write path
(the commit's write-ahead-log append) then fails exactly as on a full production disk:

* ``DiskFull``: the database lives on a tmpfs of its own; the fault fills that file system to
  the last page with a filler file (writes fail with ENOSPC), healing deletes the filler. Needs
  the right to mount (root with CAP_SYS_ADMIN, as in the dev container); skipped otherwise.
* ``FileSizeLimit``: lowers the server's RLIMIT_FSIZE to 1 byte with prlimit(2), so every write
  of that process past the first byte of any file fails with EFBIG (CPython ignores SIGXFSZ, so
  the process lives on), healing restores the limit. Works unprivileged on any Linux: the limit
  of one's own processes may be lowered and raised back up to the hard limit.

Reads keep working under both, as they would on a full disk: DuckDB serves them from the file
and its buffer pool.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
from pathlib import Path
from typing import Final, Protocol

import pytest

_CHUNK: Final = 1024 * 1024
_PAGE: Final = 4096


class StorageFault(Protocol):
    name: str

    def database_dir(self) -> Path:
        """Where the DuckDB file must live for this fault to reach it."""
        ...

    def inject(self, pid: int) -> None: ...

    def heal(self, pid: int) -> None: ...

    def cleanup(self) -> None: ...


class DiskFull:
    name = "disk-full"

    def __init__(self, mountpoint: Path, size_mb: int = 64) -> None:
        self._mountpoint = mountpoint
        self._filler = mountpoint / "filler"
        mountpoint.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("disk-full fault: mounting a tmpfs needs root")
        mount = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size_mb}m,mode=0700",
                "aeroflow-rel",
                str(mountpoint),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if mount.returncode != 0:
            pytest.skip(f"disk-full fault: cannot mount a tmpfs here: {mount.stderr.strip()}")
        self._mounted = True

    def database_dir(self) -> Path:
        return self._mountpoint / "data"

    def inject(self, pid: int) -> None:
        with self._filler.open("ab", buffering=0) as filler:
            for size in (_CHUNK, _PAGE):  # big blocks, then the last pages
                block = b"\0" * size
                while True:
                    try:
                        filler.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        stats = os.statvfs(self._mountpoint)
        assert stats.f_bavail == 0, "the tmpfs still has free blocks"

    def heal(self, pid: int) -> None:
        self._filler.unlink()

    def cleanup(self) -> None:
        if self._mounted:
            # Lazy: a process of a failed test may still hold a file open in it.
            subprocess.run(["umount", "-l", str(self._mountpoint)], check=False)
            self._mounted = False


class FileSizeLimit:
    name = "file-size-limit"

    def __init__(self, directory: Path) -> None:
        if not hasattr(resource, "prlimit"):
            pytest.skip("file-size-limit fault: prlimit(2) is Linux-only")
        self._directory = directory
        self._previous: tuple[int, int] | None = None
        self._pid: int | None = None

    def database_dir(self) -> Path:
        return self._directory / "data"

    def inject(self, pid: int) -> None:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
        self._previous, self._pid = (soft, hard), pid

    def heal(self, pid: int) -> None:
        assert self._previous is not None
        resource.prlimit(pid, resource.RLIMIT_FSIZE, self._previous)
        self._previous = None

    def cleanup(self) -> None:
        if self._previous is not None and self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(self._pid, resource.RLIMIT_FSIZE, self._previous)
