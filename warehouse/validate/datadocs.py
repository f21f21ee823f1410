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
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)
# Where GX's page templates load their scripts and styles from (a test checks this still holds for the pinned GX).
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com", "stackpath.bootstrapcdn.com",
             "maxcdn.bootstrapcdn.com", "unpkg.com")
DATA_DOCS_OFFLINE_NOTE = ("Data Docs need internet access for their styles and scripts (GX loads them from public "
                          "CDNs; offline their pages are unstyled and their index is empty); the findings above are "
                          "complete without them")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def build_data_docs(out_dir: Path, validations: list, run_name: str) -> Path | None:
    """Write GX Data Docs for ``validations`` (StageValidation objects with ``gx_results``) under ``out_dir``;
    returns the index page, or None when there is nothing to render."""
    runs = [(name, res) for v in validations for name, res in getattr(v, "gx_results", [])]
    if not runs:
        return None
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from warehouse.validate.suites import suite_to_gx

    out_dir = Path(out_dir).resolve()  # GX: "base_directory must be an absolute path" in an ephemeral context
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.add_data_docs_site("build", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    # the suites, so the site has a page per suite a data manager can read
    seen = set()
    for v in validations:
        for d in v.suites:
            if d["name"] in seen:
                continue
            seen.add(d["name"])
            try:
                ctx.suites.add(suite_to_gx(d))
            except Exception as e:  # noqa: BLE001 - a suite page is a nicety, the results are what count
                log.warning("data docs: suite %s not added (%s)", d["name"], e)
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
    return index if index.exists() else None
