"""Great Expectations Data Docs of a build: GX's own static site (index, one page per suite and table run, one
per suite) rendered from the validation results of the build, into a folder of the build's reports.

A fresh ephemeral GX context per render (no project folder, nothing kept between builds); the results are put in
its in-memory validation results store and its SiteBuilder writes the site (``gx_worker.render_site``). The
results are ``expectations.SuiteResult`` objects (both engines), sent as GX's JSON.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public CDNs, and GX 1.x
ships none of them (its package has only its own CSS, fonts and images): offline, the pages are unstyled and the
index, which bootstrap-table fills in, is empty. We vendor nothing of them; the report page says so beside its link
(``DATA_DOCS_OFFLINE_NOTE``). Our own report page (``warehouse/report.py``) makes no network request.

GX's filesystem store refuses a relative ``base_directory`` (its root directory is unset in an ephemeral
context): the site folder is made absolute here, so a relative data directory (the default ``data``) works.

In a build the site is rendered by the build's GX worker (``gx_process``, a process of its own, which imported GX
while the build staged and transformed): ``start_data_docs`` sends it the results as soon as they are final, and
``build_data_docs`` takes its answer where the report needs it. Rendering is ~1-3.5 s of pure Python, on the
second core meanwhile. A worker that fails or says nothing in time, or none at all, and the site is rendered in
the build's process (GX imported then): the same files either way.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from warehouse.validate import gx_process
from warehouse.validate.expectations import dumps
from warehouse.validate.gx_worker import render_site

log = logging.getLogger(__name__)
_PENDING: dict[Path, str] = {}  # site folder -> the tag of its render request to the GX worker
# Where GX's page templates load their scripts and styles from (a test checks this still holds for the pinned GX).
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com", "stackpath.bootstrapcdn.com",
             "maxcdn.bootstrapcdn.com", "unpkg.com")
DATA_DOCS_OFFLINE_NOTE = ("Data Docs need internet access for their styles and scripts (GX loads them from public "
                          "CDNs; offline their pages are unstyled and their index is empty); the findings above are "
                          "complete without them")


def start_data_docs(out_dir: Path, validations: list, run_name: str) -> bool:
    """Send the Data Docs of ``validations`` to the GX worker (started now if none runs) to render into
    ``out_dir``; ``build_data_docs`` with the same folder takes its answer. Call only once the results are final
    (the worker renders what it was sent). False (and nothing sent) without results or without a worker."""
    if not _runs(validations):
        return False
    out_dir = Path(out_dir).resolve()
    _PENDING.pop(out_dir, None)
    tag = f"render:{out_dir}"
    if gx_process.start_worker() is None or not gx_process.post(_render_request(out_dir, validations, run_name),
                                                                  tag):
        return False
    _PENDING[out_dir] = tag
    return True


def build_data_docs(out_dir: Path, validations: list, run_name: str) -> Path | None:
    """Write GX Data Docs for ``validations`` (StageValidation objects with ``gx_results``) under ``out_dir``;
    returns the index page, or None when there is nothing to render. When ``start_data_docs`` sent them to the GX
    worker, its site is taken; if the worker failed, the site is rendered here."""
    out_dir = Path(out_dir).resolve()
    tag = _PENDING.pop(out_dir, None)
    outcome = None
    if tag is not None:
        outcome = gx_process.collect(tag) or {"error": "the GX worker ended"}
        gx_process.stop_worker()  # its last job in this build: GX's memory goes with it
        if "error" in outcome:
            log.warning("Data Docs by the GX worker failed (%s): rendered in the build's process", outcome["error"])
            shutil.rmtree(out_dir, ignore_errors=True)
            outcome = None
    if outcome is None:
        if not _runs(validations):
            return None
        request = json.loads(dumps(_render_request(out_dir, validations, run_name)))  # what the worker would get
        outcome = render_site(request["out_dir"], request["run_name"], request["suites"], request["runs"])
    for name in outcome.get("skipped") or []:
        log.warning("data docs: suite %s not added", name)
    return Path(outcome["index"]) if outcome.get("index") else None


def _render_request(out_dir: Path, validations: list, run_name: str) -> dict:
    return {"op": "render", "out_dir": str(out_dir), "run_name": run_name,
            "suites": [d for v in validations for d in v.suites],
            "runs": [[name, result.to_json_dict()] for name, result in _runs(validations)]}


def _runs(validations: list) -> list:
    return [(name, res) for v in validations for name, res in getattr(v, "gx_results", [])]
