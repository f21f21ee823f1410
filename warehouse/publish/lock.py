"""The build lock: one build per data directory at a time (`flock` on DIR/.build.lock), released by the kernel
when its holder dies, its wait bounded by WAREHOUSE_LOCK_TIMEOUT.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from warehouse.publish.paths import LOCK_FILE, LOCK_TIMEOUT_ENV, utc_now


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine is alive (a folder or lock named after it may be reclaimed when not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BuildLocked(Exception):
    """Another build of this study (same data directory) holds the lock and the wait timed out."""


def lock_holder(data_dir: Path) -> dict | None:
    """Who holds the build lock of `data_dir` (pid, host, since), or None when no build runs."""
    path = Path(data_dir) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(path.read_text(encoding="utf-8") or "{}")
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def build_lock(
    data_dir: Path,
    timeout: float | None = None,
    on_wait: Callable[[dict], None] | None = None,
    poll_seconds: float = 0.2,
) -> Iterator[Path]:
    """Hold the build lock of `data_dir` (exclusive `flock` on DIR/.build.lock) for the whole build.

    One build per data directory (one study's warehouse, blinded and unblinded roots alike) at a time. The kernel
    drops the lock when the holder dies, even by SIGKILL, so a crashed build never blocks the next one. Waits for
    a running build (calling `on_wait` once with the holder's pid/host/since); `timeout` seconds (default: the
    WAREHOUSE_LOCK_TIMEOUT environment variable, else wait forever) then BuildLocked. `flock` locks are per open
    file, so two threads of one process exclude each other too. Not reliable on NFS: see docs/operations.md.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if timeout is None and os.environ.get(LOCK_TIMEOUT_ENV):
        timeout = float(os.environ[LOCK_TIMEOUT_ENV])
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    try:
                        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
                    except ValueError:
                        holder = {}
                    on_wait(holder)
                waited = True
                if deadline is not None and time.monotonic() >= deadline:
                    holder = lock_holder(data_dir) or {}
                    raise BuildLocked(
                        f"another build of {data_dir} is running (pid {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')} since {holder.get('since', '?')}); waited {timeout:g} s"
                    ) from None
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": utc_now().isoformat(timespec="seconds")}).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
