"""The validation report of a build, for the data manager: one self-contained HTML page (open it from disk or mail
it), the findings listing of each site as CSV and XLSX, and Great Expectations Data Docs.

    reports/<build_id>/validation.html      summary by stage and suite, trend against the previous build, findings
                                            filterable by site, form, severity and status
    reports/<build_id>/sites/<site>.csv     open findings of one site, columns a site can act on (and .xlsx)
    reports/<build_id>/data_docs/index.html GX Data Docs of the build's validation results
    reports/validation.html                 a copy of the published build's page (made at publish)

The page (templates/validation.html.j2) makes no network request: its style and script are inline, it links only
to files beside it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

FINDINGS_SHOWN = 5000

# where a site finds the value in its eCRF: the first columns of every sheet a site is sent (listings, queries)
RECORD_COLUMNS: list[tuple[str, str]] = [  # (column, header a site reads)
    ("subject_id", "subject"),
    ("event", "event"),
    ("repeat_instance", "instance"),
    ("form", "form"),
    ("field", "field"),
    ("value", "value"),
]
SITE_COLUMNS: list[tuple[str, str]] = [  # (history column, header a site reads)
    *RECORD_COLUMNS,
    ("message", "query"),
    ("rule", "rule"),
    ("severity", "severity"),
    ("first_seen", "first seen"),
    ("finding_id", "finding id"),
]
NO_SITE = "no_site"

def site_file_name(site: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", site) if site else NO_SITE


# --------------------------------------------------------------------------------------------- frames


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.width]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def open_findings(history: pl.DataFrame) -> pl.DataFrame:
    """Open findings of the history with a ``first_seen`` text (date and build)."""
    if history.height == 0:
        return pl.DataFrame(schema={c: pl.Utf8 for c, _ in SITE_COLUMNS} | {"site_id": pl.Utf8, "status": pl.Utf8})
    return history.filter(pl.col("status") == "open").with_columns(
        first_seen=pl.col("first_seen_at").dt.strftime("%Y-%m-%d %H:%M UTC") + pl.lit(" (build ")
        + pl.col("first_seen_build") + pl.lit(")")
    )


def previous_record(reports_dir: Path, build_id: str) -> dict | None:
    """The build record (builds/<id>.json beside reports/) of the latest build before ``build_id`` that finished
    (published or blocked)."""
    builds = Path(reports_dir).parent / "builds"
    best = None
    for path in builds.glob("*.json") if builds.is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        bid = str(rec.get("build_id", ""))
        if (bid and bid < build_id and rec.get("status") in ("published", "blocked")
                and (best is None or bid > best["build_id"])):
            best = rec
    return best


def previous_build_findings(reports_dir: Path, build_id: str | None) -> pl.DataFrame | None:
    """The findings table of a previous build's file (builds/<id>.duckdb), None when it is gone (pruned)."""
    if not build_id:
        return None
    path = Path(reports_dir).parent / "builds" / f"{build_id}.duckdb"
    if not path.is_file():
        return None
    try:
        import duckdb

        with duckdb.connect(str(path), read_only=True) as con:
            return con.sql("select * from main.findings").pl()
    except Exception as e:  # noqa: BLE001 - a trend is a nicety; the page must be written
        log.warning("findings of the previous build %s not read: %s", build_id, e)
        return None


def findings_trend(current: pl.DataFrame, previous: pl.DataFrame | None, history: pl.DataFrame, build_id: str,
                   stages: list[str] | None = None) -> dict:
    """Findings of this build against the previous build: ``new`` / ``still_open`` / ``closed`` counts, the ids
    seen before (``seen_before``), the closed findings (``closed_rows``) and what was compared (``basis``).

    Compared with the previous build's own findings when its file is there, else with the findings history (the
    last published warehouse): first seen in this build = new; closed by this build = closed. Only the stages this
    build validated can close findings."""
    cur_ids = set(current.get_column("finding_id").to_list()) if current.height else set()
    if previous is not None:
        prev = previous if stages is None or previous.height == 0 else previous.filter(pl.col("stage").is_in(stages))
        seen_before = set(prev.get_column("finding_id").to_list()) if prev.height else set()
        closed_rows = prev.filter(~pl.col("finding_id").is_in(list(cur_ids))) if prev.height else prev
        basis, before = "previous build", len(seen_before)
    elif history.height:
        basis = "findings history of the published warehouse"
        seen_before = set(history.filter(pl.col("first_seen_build") != build_id).get_column("finding_id").to_list())
        closed_rows = history.filter(pl.col("closed_build") == build_id)
        before = history.filter((pl.col("first_seen_build") != build_id)
                                & ((pl.col("status") == "open") | (pl.col("closed_build") == build_id))).height
    else:
        basis, seen_before, closed_rows, before = "nothing (first build)", set(), pl.DataFrame(), 0
    new = len(cur_ids - seen_before)
    return {"new": new, "still_open": len(cur_ids) - new, "closed": closed_rows.height, "open": len(cur_ids),
            "open_before": before, "seen_before": seen_before, "closed_rows": closed_rows, "basis": basis}


# --------------------------------------------------------------------------------------------- site listings


def site_listing(findings: pl.DataFrame) -> pl.DataFrame:
    """One site's open findings with the columns a site acts on, ordered by subject, event, form, field."""
    cols = [c for c, _ in SITE_COLUMNS]
    frame = findings.with_columns([pl.lit(None, dtype=pl.Utf8).alias(c) for c in cols if c not in findings.columns])
    return (frame.sort(["subject_id", "event", "repeat_instance", "form", "field"], nulls_last=True)
            .select([pl.col(c).cast(pl.Utf8).alias(h) for c, h in SITE_COLUMNS]))


LISTING_WIDTHS = {"query id": 10, "subject": 12, "event": 18, "instance": 9, "form": 16, "field": 18, "value": 16,
                  "query": 60, "queried at": 22, "rule": 45, "severity": 9, "first seen": 30, "finding id": 18}


def write_sheet_xlsx(frame: pl.DataFrame, target, sheet_name: str, title: str, subject: str) -> None:
    """A site's sheet as an XLSX workbook at ``target`` (a path or a binary buffer): every value as text, the
    header bold and frozen, a filter on every column, long texts wrapped (the site listings and the review's
    query sheets)."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(target if not isinstance(target, Path) else str(target), {"in_memory": True})
    try:
        ws = wb.add_worksheet(sheet_name)
        head = wb.add_format({"bold": True, "bg_color": "#F3F3F3", "border": 1})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        for j, name in enumerate(frame.columns):
            ws.write(0, j, name, head)
            ws.set_column(j, j, LISTING_WIDTHS.get(name, 14), wrap if name in ("query", "rule") else top)
        for i, row in enumerate(frame.iter_rows(), start=1):
            for j, v in enumerate(row):
                ws.write_string(i, j, "" if v is None else str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(frame.height, 1), frame.width - 1)
        wb.set_properties({"title": title, "subject": subject})
    finally:
        wb.close()


def write_site_listings(reports_dir: Path, build_id: str, findings_history: pl.DataFrame) -> list[Path]:
    """reports/<build_id>/sites/<site>.csv and .xlsx: each site's open findings (findings without a site go to
    ``no_site``). Returns the files written (none when nothing is open)."""
    out = Path(reports_dir) / build_id / "sites"
    findings = open_findings(findings_history)
    paths: list[Path] = []
    if findings.height == 0:
        return paths
    out.mkdir(parents=True, exist_ok=True)
    for (site,), part in findings.group_by("site_id", maintain_order=True):
        listing = site_listing(part)
        name = site_file_name(site)
        csv_path, xlsx_path = out / f"{name}.csv", out / f"{name}.xlsx"
        listing.write_csv(csv_path)
        write_sheet_xlsx(listing, xlsx_path, "findings", f"Open data queries, site {site or NO_SITE}",
                         f"build {build_id}")
        paths += [csv_path, xlsx_path]
    return sorted(paths)


# --------------------------------------------------------------------------------------------- the page
# What the template (templates/validation.html.j2) shows, as plain values: it escapes them.


def summary_rows(results: pl.DataFrame) -> list[dict] | None:
    """Expectations run, failed and skipped by stage and suite (None when nothing ran)."""
    if results.height == 0:
        return None
    failed = pl.col("success") == False  # noqa: E712
    return (
        results.group_by("stage", "suite")
        .agg(
            pl.col("table").drop_nulls().unique().sort().str.join(", ").alias("tables"),
            (pl.col("status") != "skipped").sum().alias("expectations"),
            (failed & (pl.col("severity") == "error")).sum().alias("errors"),
            (failed & (pl.col("severity") == "warning")).sum().alias("warnings"),
            (pl.col("status") == "skipped").sum().alias("skipped"),
            pl.col("unexpected_count").fill_null(0).sum().alias("failing_rows"),
        )
        .with_columns(_s=pl.col("stage").replace_strict({"raw": 0, "staging": 1, "marts": 2}, default=3))
        .sort("_s", "suite")
        .drop("_s")
        .to_dicts()
    )


def stage_rows(validations: list) -> list[dict]:
    return [{"stage": v.stage, "success": v.success, "errors": v.errors, "warnings": v.warnings,
             "findings": v.findings.height, "skipped": v.skipped} for v in validations]


CLOSED_SHOWN = 200
CLOSED_COLUMNS = ("severity", "stage", "site_id", "subject_id", "event", "form", "field", "rule")


def closed_listing(closed: pl.DataFrame) -> dict:
    """The findings closed by this build (the first CLOSED_SHOWN), with the columns the page lists."""
    columns = [c for c in CLOSED_COLUMNS if c in closed.columns]
    return {"columns": columns, "more": closed.height > CLOSED_SHOWN,
            "rows": closed.head(CLOSED_SHOWN).select(columns).to_dicts() if closed.height else []}


FINDINGS_PAGE_COLUMNS = ["status", "severity", "stage", "site_id", "subject_id", "event", "repeat_instance", "form",
                         "field", "value", "rule", "message", "first_seen"]


def findings_listing(findings: pl.DataFrame) -> dict:
    """The findings rows the page shows (the first FINDINGS_SHOWN) and their total."""
    keys = list(dict.fromkeys(FINDINGS_PAGE_COLUMNS + ["site_id", "form", "severity", "stage", "status"]))
    rows = [{k: r.get(k) for k in keys} for r in findings.head(FINDINGS_SHOWN).iter_rows(named=True)]
    return {"columns": FINDINGS_PAGE_COLUMNS, "rows": rows, "total": findings.height}


def filter_values(findings: pl.DataFrame) -> dict[str, list[str]]:
    """The choices of the site and form filters: the values present, sorted."""
    def values(c: str) -> list[str]:
        return sorted({str(v) for v in findings.get_column(c).to_list() if v} if c in findings.columns else set())

    return {"site_id": values("site_id"), "form": values("form")}


def _page_findings(findings: pl.DataFrame, history: pl.DataFrame, trend: dict) -> pl.DataFrame:
    """This build's findings with their status against the previous build (new / open) and first seen."""
    if findings.height == 0:
        return findings
    if history.height:
        findings = findings.join(history.select("finding_id", "first_seen_at"), on="finding_id", how="left")
    else:
        findings = findings.with_columns(first_seen_at=pl.lit(None, dtype=pl.Datetime("us", "UTC")))
    return (
        findings.with_columns(
            status=pl.when(pl.col("finding_id").is_in(list(trend["seen_before"]))).then(pl.lit("open"))
            .otherwise(pl.lit("new")),
            first_seen=pl.coalesce(pl.col("first_seen_at").dt.strftime("%Y-%m-%d %H:%M"), pl.lit("")),
            _o=pl.col("severity").replace_strict({"error": 0, "warning": 1}, default=2),
        )
        .sort(["_o", "site_id", "subject_id", "form", "event", "field"], nulls_last=True)
        .drop("_o")
    )


def _links(build_dir: Path, site_files: list[Path], data_docs: Path | None, data_docs_note: str | None) -> dict:
    """What the page links to: the Data Docs index (relative to the page) or why it is missing, the site listings."""
    from warehouse.validate.datadocs import DATA_DOCS_OFFLINE_NOTE

    href = None
    if data_docs is not None:
        href = Path(data_docs).resolve().relative_to(Path(build_dir).resolve()).as_posix()  # GX's path is absolute
    return {"data_docs": href, "offline_note": DATA_DOCS_OFFLINE_NOTE, "data_docs_note": data_docs_note,
            "sites": sorted({p.stem for p in site_files})}


def render_validation_report(build_id: str, validations: list, history: pl.DataFrame, *,
                             previous: dict | None = None, previous_findings: pl.DataFrame | None = None,
                             links: dict | None = None, blocked: bool = False) -> str:
    """The page. ``previous``: the previous build's record; ``previous_findings``: its findings table (else the
    trend is read from ``history``); ``links``: what `_links` found beside the page; ``blocked``: the banner of a
    build that is not published, first thing in the body."""
    from warehouse.templates import render

    results = _concat([v.results for v in validations])
    current = _concat([v.findings for v in validations])
    trend = findings_trend(current, previous_findings, history, build_id, stages=[v.stage for v in validations])
    findings = _page_findings(current, history, trend)
    n_err = findings.filter(pl.col("severity") == "error").height if findings.height else 0
    n_warn = findings.filter(pl.col("severity") == "warning").height if findings.height else 0
    trend_rows = [  # (what, this build, the previous build's count or None)
        ("error findings", n_err, previous.get("errors") if previous else None),
        ("warning findings", n_warn, previous.get("warnings") if previous else None),
        ("findings", trend["open"], trend["open_before"] if previous else None),
    ]
    from warehouse.review.report import review_section

    return render(
        "validation.html.j2", build_id=build_id, blocked=blocked, failed_errors=sum(v.errors for v in validations),
        review=review_section(history),
        n_err=n_err, n_warn=n_warn, links=links, stages=stage_rows(validations), previous=previous, trend=trend,
        trend_rows=trend_rows, closed=closed_listing(trend["closed_rows"]), summary=summary_rows(results),
        filters=filter_values(findings), findings=findings_listing(findings))


def write_validation_report(reports_dir: Path, build_id: str, validations: list, history: pl.DataFrame,
                            blocked: bool = False) -> Path:
    """Write the build's report page, its site listings and Data Docs (a blocked build's page says so at the top;
    the top-level copy, `reports/validation.html`, is made only when a build is published: see
    `promote_reports`). Returns the page. Data Docs that cannot be written are named on the page, they
    never fail the build."""
    reports_dir = Path(reports_dir)
    build_dir = reports_dir / build_id
    build_dir.mkdir(parents=True, exist_ok=True)
    site_files = write_site_listings(reports_dir, build_id, history)
    data_docs, note = None, None
    try:
        from warehouse.validate.datadocs import build_data_docs

        data_docs = build_data_docs(build_dir / "data_docs", validations, build_id)
    except Exception as e:  # noqa: BLE001 - the report page and the listings matter more than GX's site
        log.warning("Data Docs of build %s not written: %s", build_id, e)
        note = f"{type(e).__name__}: {e}".splitlines()[0]
    previous = previous_record(reports_dir, build_id)
    page = render_validation_report(
        build_id, validations, history, previous=previous,
        previous_findings=previous_build_findings(reports_dir, previous["build_id"] if previous else None),
        links=_links(build_dir, site_files, data_docs, note), blocked=blocked)
    target = build_dir / "validation.html"
    target.write_text(page, encoding="utf-8")
    return target


def blocked_banner() -> str:
    """The banner of a blocked build's pages (templates/_blocked.html.j2)."""
    from warehouse.templates import render

    return render("_blocked.html.j2")


def mark_blocked(page: str) -> str:
    """A blocked build's page, with a banner first thing in its body: numbers nobody may take for published.
    (The templates put it there themselves when rendered with ``blocked=True``; a page that has it is kept.)"""
    banner = blocked_banner()
    if banner in page:
        return page
    head, sep, body = page.partition("<body>")
    return head + sep + banner + body if sep else banner + page


def promote_reports(reports_dir: Path, build_id: str) -> None:
    """Make the published build's pages the top-level ones (`reports/validation.html`, `reports/analysis.html`),
    each by an atomic rename. Called only after a publish: the top level never shows a build that was blocked.
    The copies sit one folder up, so their links point into the build's folder."""
    reports_dir = Path(reports_dir)
    for name in ("validation.html", "analysis.html"):
        source = reports_dir / build_id / name
        if not source.is_file():
            continue
        page = source.read_text(encoding="utf-8")
        page = page.replace("href='sites/", f"href='{build_id}/sites/").replace(
            "href='data_docs/", f"href='{build_id}/data_docs/")
        tmp = reports_dir / f".{name}.tmp"
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(reports_dir / name)
