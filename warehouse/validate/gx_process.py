"""The build's side of the Great Expectations worker (``gx_worker.py``): start it when a build is due, ask it to
check suites and to render Data Docs, fall back to doing either in this process when it fails.

One worker per process at a time (``start_worker`` is idempotent); its answers come in the order of the requests.
A worker that dies, or says nothing for ``TIMEOUT_S``, is killed, and the caller does the job here (GX imported
then, as before this worker existed): the same checks and the same site either way, only slower.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from warehouse.validate import gx_worker
from warehouse.validate.expectations import dumps

log = logging.getLogger(__name__)
TIMEOUT_S = 120.0  # an answer takes GX's import (3-8 s on a busy machine) plus a render (1-4 s, not growing with rows)
WORKER_SCRIPT = Path(gx_worker.__file__)
_CHECKED: dict[str, str | None] = {}  # a suite's JSON digest -> GX's verdict (None: taken), for this process
_LABELS: dict[str, str] = {}  # a suite's JSON digest -> what names it in a message (its file)
_DEFERRED: list[tuple[str, dict[str, dict]]] = []  # (request tag, digest -> suite) whose verdicts are to be taken


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Let a pipe hold ``size`` bytes (Linux; up to /proc/sys/fs/pipe-max-size, 1 MB by default): a build's suite
    checks (~100 KB for the demo) and its Data Docs request (~320 KB) are then written while the worker is still
    importing GX, where the default 64 KB made the build wait ~1 s for the import. Elsewhere, a no-op."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError):
        pass


class GxWorker:
    """A running ``gx_worker.py``: requests go to its stdin, answers come back on its stdout, in order."""

    def __init__(self, defer_checks: bool = False) -> None:
        self.defer_checks = defer_checks  # a build's worker: checks are asked without waiting (check_suites)
        env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "PYTHONDONTWRITEBYTECODE": "1"}
        # -P: the script's folder (warehouse/validate: core.py, steps.py ...) is not put first on sys.path
        self.proc = subprocess.Popen([sys.executable, "-P", str(WORKER_SCRIPT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self.pending: list[str] = []  # what each answer still to come is for, in order
        widen_pipe(self.proc.stdin.fileno())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any], tag: str, timeout: float = TIMEOUT_S) -> None:
        """Write one request; TimeoutError when the worker does not take it in time (a request is larger than the
        pipe's buffer, and a worker stuck in its import would leave a blocking write hanging)."""
        body = dumps(message)
        data = memoryview(gx_worker.HEADER.pack(len(body)) + body)
        fd = self.proc.stdin.fileno()
        deadline = time.monotonic() + timeout
        while data:
            _, ready, _ = select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"the GX worker took no request in {timeout:.0f} s")
            os.set_blocking(fd, False)
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                written = 0
            finally:
                os.set_blocking(fd, True)
            data = data[written:]
        self.pending.append(tag)

    def receive(self, tag: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """The answer to the request tagged ``tag`` (answers before it, nobody waits for, are dropped)."""
        if tag not in self.pending:
            raise KeyError(tag)
        deadline = time.monotonic() + timeout
        while True:
            head = self._read(gx_worker.HEADER.size, deadline)
            (size,) = gx_worker.HEADER.unpack(head)
            answer = json.loads(self._read(size, deadline))
            if self.pending.pop(0) == tag:
                return answer

    def _read(self, size: int, deadline: float) -> bytes:
        out = self.proc.stdout
        chunks, got = [], 0
        fd = out.fileno()
        while got < size:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no answer from the GX worker in {TIMEOUT_S:.0f} s")
            chunk = os.read(fd, size - got)
            if not chunk:
                raise EOFError(f"the GX worker ended (exit status {self.proc.wait()})")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def stop(self, kill: bool = False) -> None:
        """Close its input (it ends) or kill it; reap it either way."""
        if kill and self.alive:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


_WORKER: list[GxWorker] = []


def start_worker(defer_checks: bool = False) -> GxWorker | None:
    """The process's GX worker, started now if none runs (it imports GX at once, on the second core). None on a
    system where it cannot start; callers then do the work here. ``defer_checks``: a build's worker (see
    ``check_suites``)."""
    if _WORKER and _WORKER[0].alive:
        _WORKER[0].defer_checks = _WORKER[0].defer_checks or defer_checks
        return _WORKER[0]
    stop_worker()
    try:
        _WORKER.append(GxWorker(defer_checks))
    except OSError as e:
        log.warning("GX worker not started (%s): GX runs in the build's process", e)
        return None
    return _WORKER[0]


def current_worker() -> GxWorker | None:
    return _WORKER[0] if _WORKER and _WORKER[0].alive else None


def stop_worker(kill: bool = False) -> None:
    """Stop the worker. Checks it was asked and did not answer stay pending: ``confirm_checks`` then judges them
    in this process."""
    while _WORKER:
        _WORKER.pop().stop(kill=kill)


def forget_checks() -> None:
    """The end of a build: checks asked and never confirmed (the build failed first) are asked again next time."""
    _DEFERRED.clear()


atexit.register(stop_worker, True)


def post(message: dict[str, Any], tag: str) -> bool:
    """Send one request to the running worker, its answer to be taken by ``collect(tag)``; False when no worker
    runs or it failed (then stopped)."""
    worker = current_worker()
    if worker is None:
        return False
    try:
        worker.send(message, tag)
        return True
    except (OSError, TimeoutError) as e:
        _failed(e)
        return False


def collect(tag: str) -> dict[str, Any] | None:
    """The worker's answer to the request posted as ``tag``, or None when the worker is gone or failed (then
    stopped): the caller does the job here."""
    worker = current_worker()
    if worker is None or tag not in worker.pending:
        return None
    try:
        return worker.receive(tag)
    except (OSError, EOFError, TimeoutError, ValueError) as e:
        _failed(e)
        return None


def _failed(error: Exception) -> None:
    log.warning("GX worker failed (%s): GX runs in the build's process", error)
    stop_worker(kill=True)


def ask(message: dict[str, Any], tag: str) -> dict[str, Any] | None:
    """The running worker's answer to one request, or None when no worker runs or it failed (then stopped)."""
    return collect(tag) if post(message, tag) else None


def check_suites(suites: list[tuple[str, dict[str, Any]]]) -> None:
    """GX's verdict on suites (label, suite dict): ValueError naming each one GX refuses (its label: the file) and
    GX's reason. Each suite is judged once per process, by the worker when one runs, else by GX imported here.

    A worker started for a build (``start_worker(defer_checks=True)``) is asked without waiting: validation goes
    on meanwhile (its own process imports GX for seconds), and the build takes the verdicts once its results are in
    (``confirm_checks``), before anything is published or recorded, or at once when validation fails."""
    keys = [hashlib.sha256(dumps(d)).hexdigest() for _, d in suites]
    _LABELS.update(zip(keys, (label for label, _ in suites)))
    asked = _asked()
    todo = {k: d for k, (_, d) in zip(keys, suites) if k not in _CHECKED and k not in asked}
    worker = current_worker()
    tag = f"check-{time.monotonic_ns()}"
    if todo and worker is not None and worker.defer_checks and post({"op": "check", "suites": list(todo.values())},
                                                                    tag):
        _DEFERRED.append((tag, todo))
        _raise_refused([k for k in keys if k in _CHECKED])  # refusals already on record: now
        return
    if todo:
        _judged(todo, ask({"op": "check", "suites": list(todo.values())}, tag))
    _raise_refused([k for k in keys if k in _CHECKED])


def confirm_checks() -> None:
    """The verdicts of the checks a build's worker was asked without waiting (see ``check_suites``): ValueError
    for the suites GX refuses. Nothing to do when none is pending."""
    pending, _DEFERRED[:] = list(_DEFERRED), []
    for tag, todo in pending:
        _judged(todo, collect(tag))  # without the worker's answer: judged here
    _raise_refused([k for _, todo in pending for k in todo])


def _asked() -> set[str]:
    """The suites asked of a build's worker whose verdicts are not taken yet."""
    return {k for _, todo in _DEFERRED for k in todo}


def _judged(todo: dict[str, dict[str, Any]], answer: dict[str, Any] | None) -> None:
    errors = answer.get("errors") if answer else None
    if errors is None:  # no worker, or it failed: GX here
        errors = gx_worker.check_suites([json.loads(dumps(d)) for d in todo.values()])
    _CHECKED.update(zip(todo, errors))


def _raise_refused(keys: list[str]) -> None:
    refused = [f"{_LABELS.get(k, '?')}: {_CHECKED[k]}" for k in keys if _CHECKED.get(k)]
    if refused:
        raise ValueError("Great Expectations refuses suite(s): " + "; ".join(refused))
