"""Great Expectations Data Docs of a build: GX's own static site (index, one page per suite and table run, one
per suite) rendered from the validation results of the build, into a folder of the build's reports.

A fresh ephemeral GX context per call (no project folder, nothing kept between builds); the results are put in its
in-memory validation results store and its SiteBuilder writes the site. Both engines' results render: the
DuckDB pushdown (``pushdown.py``) builds GX ``ExpectationValidationResult`` objects too.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public CDNs, and GX 1.x
ships none of them (its package has only its own CSS, fonts and images): offline, the pages are unstyled and the
index, which bootstrap-table fills in, is empty. We vendor nothing of them; the report page says so beside its link
(``DATA_DOCS_OFFLINE_NOTE``). Our own report page (``warehouse/report.py``) makes no network request.

GX's filesystem store refuses a relative ``base_directory`` (its root directory is unset in an ephemeral
context): the site folder is made absolute here, so a relative data directory (the default ``data``) works.

In a build the site is rendered by a forked child (``start_data_docs``) as soon as the validation results are
final, and joined where the report needs it (``build_data_docs``): rendering is ~1-3.5 s of pure Python that
would otherwise hold the build's interpreter, and the child, a copy of the process with GX already imported, runs
it on the second core while the build analyses and reports. A child that fails, or a system without ``fork``,
falls back to rendering in the build's process: the same files either way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)
CHILD_TIMEOUT_S = 120.0  # then killed, the site rendered in the build's process (it takes 1-4 s, not growing with rows)
_PENDING: dict[Path, tuple[int, int]] = {}  # site folder -> (child pid, read end of its pipe)
# Where GX's page templates load their scripts and styles from (a test checks this still holds for the pinned GX).
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com", "stackpath.bootstrapcdn.com",
             "maxcdn.bootstrapcdn.com", "unpkg.com")
DATA_DOCS_OFFLINE_NOTE = ("Data Docs need internet access for their styles and scripts (GX loads them from public "
                          "CDNs; offline their pages are unstyled and their index is empty); the findings above are "
                          "complete without them")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def start_data_docs(out_dir: Path, validations: list, run_name: str) -> bool:
    """Render the Data Docs of ``validations`` into ``out_dir`` in a forked child; ``build_data_docs`` with the
    same folder joins it. Call only once the results are final (the child renders its copy of them). False (and
    nothing started) without ``fork`` or without results."""
    if not hasattr(os, "fork") or not _runs(validations):
        return False
    out_dir = Path(out_dir).resolve()
    _reap(_PENDING.pop(out_dir, None))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: render, say how it went on the pipe, and leave without running the parent's code
        code = 1
        try:
            os.close(read)
            try:
                index, skipped = _render(out_dir, validations, run_name)
                payload, code = {"index": str(index) if index else None, "skipped": skipped}, 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent, which renders again
                payload = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write, data):]
        finally:
            os._exit(code)
    os.close(write)
    _PENDING[out_dir] = (pid, read)
    return True


def build_data_docs(out_dir: Path, validations: list, run_name: str) -> Path | None:
    """Write GX Data Docs for ``validations`` (StageValidation objects with ``gx_results``) under ``out_dir``;
    returns the index page, or None when there is nothing to render. When ``start_data_docs`` forked a child
    for this folder, its site is taken; if the child failed, the site is rendered here."""
    out_dir = Path(out_dir).resolve()
    pending = _PENDING.pop(out_dir, None)
    if pending is not None:
        outcome = _join(*pending)
        if "error" not in outcome:
            for name in outcome["skipped"]:
                log.warning("data docs: suite %s not added", name)
            return Path(outcome["index"]) if outcome["index"] else None
        log.warning("Data Docs child failed (%s): rendered in the build's process", outcome["error"])
        shutil.rmtree(out_dir, ignore_errors=True)
    if not _runs(validations):
        return None
    index, skipped = _render(out_dir, validations, run_name)
    for name in skipped:
        log.warning("data docs: suite %s not added", name)
    return index


def _runs(validations: list) -> list:
    return [(name, res) for v in validations for name, res in getattr(v, "gx_results", [])]


def _join(pid: int, read: int) -> dict:
    """The child's outcome ({"index", "skipped"} or {"error"}), read until it closes its pipe, then reaped."""
    chunks, deadline = [], time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                return {"error": f"no answer in {CHILD_TIMEOUT_S:.0f} s"}
            chunk = os.read(read, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    try:
        outcome = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        outcome = {}
    if not outcome or (os.waitstatus_to_exitcode(status) != 0 and "error" not in outcome):
        return {"error": f"exit status {os.waitstatus_to_exitcode(status)}"}
    return outcome


def _reap(pending: tuple[int, int] | None) -> None:
    """A child of an earlier build that was never joined (the build failed): stopped and reaped."""
    if pending is not None:
        pid, read = pending
        os.close(read)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def _render(out_dir: Path, validations: list, run_name: str) -> tuple[Path | None, list[str]]:
    """The site rendered into ``out_dir`` (absolute); returns its index page and the suites GX would not take."""
    runs = _runs(validations)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from warehouse.validate.suites import suite_to_gx

    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.add_data_docs_site("build", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    # the suites, so the site has a page per suite a data manager can read
    seen, skipped = set(), []
    for v in validations:
        for d in v.suites:
            if d["name"] in seen:
                continue
            seen.add(d["name"])
            try:
                ctx.suites.add(suite_to_gx(d))
            except Exception as e:  # noqa: BLE001 - a suite page is a nicety, the results are what count
                skipped.append(f"{d['name']} ({e})")
    run_id = RunIdentifier(run_name=run_name)
    for name, result in runs:
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=_safe(name)),
            run_id=run_id,
            batch_identifier=_safe(name.rsplit(".", 1)[-1]),
        )
        ctx.validation_results_store.set(key, result)
    ctx.build_data_docs(site_names=["build"])
    index = out_dir / "index.html"
    return (index if index.exists() else None), skipped
