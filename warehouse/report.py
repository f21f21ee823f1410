"""The validation report of a build, for the data manager: one self-contained HTML page (open it from disk or mail
it), the findings listing of each site as CSV and XLSX, and Great Expectations Data Docs.

    reports/<build_id>/validation.html      summary by stage and suite, trend against the previous build, findings
                                            filterable by site, form, severity and status
    reports/<build_id>/sites/<site>.csv     open findings of one site, columns a site can act on (and .xlsx)
    reports/<build_id>/data_docs/index.html GX Data Docs of the build's validation results
    reports/validation.html                 a copy of the published build's page (made at publish)

The page makes no network request: its style and script are inline, it links only to files beside it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

FINDINGS_SHOWN = 5000

SITE_COLUMNS: list[tuple[str, str]] = [  # (history column, header a site reads)
    ("subject_id", "subject"),
    ("event", "event"),
    ("repeat_instance", "instance"),
    ("form", "form"),
    ("field", "field"),
    ("value", "value"),
    ("message", "query"),
    ("rule", "rule"),
    ("severity", "severity"),
    ("first_seen", "first seen"),
    ("finding_id", "finding id"),
]
NO_SITE = "no_site"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}.error{color:#a00;font-weight:600}.warning{color:#a60}
.ok{color:#070}.filters select{margin-right:1em}.up{color:#a00}.down{color:#070}.muted{color:#777}
#findings td:nth-child(11),#findings td:nth-child(12){max-width:32em}
"""

_SCRIPT = """
function applyFilters(){
  var f={site:document.getElementById('f-site').value, form:document.getElementById('f-form').value,
         severity:document.getElementById('f-severity').value, stage:document.getElementById('f-stage').value,
         status:document.getElementById('f-status').value}, shown=0;
  document.querySelectorAll('#findings tbody tr').forEach(function(r){
    var ok=true;
    for(var k in f){ if(f[k] && r.dataset[k]!==f[k]){ ok=false; } }
    r.style.display=ok?'':'none'; if(ok){shown++;}
  });
  document.getElementById('shown').textContent=shown;
}
document.querySelectorAll('.filters select').forEach(function(s){s.addEventListener('change',applyFilters);});
applyFilters();
"""


def esc(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def options(values: list[str]) -> str:
    return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in sorted(set(values)) if v)


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


def _write_xlsx(frame: pl.DataFrame, path: Path, site: str, build_id: str) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path))
    try:
        ws = wb.add_worksheet("findings")
        head = wb.add_format({"bold": True, "bg_color": "#F3F3F3", "border": 1})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        widths = {"subject": 12, "event": 18, "instance": 9, "form": 16, "field": 18, "value": 16, "query": 60,
                  "rule": 45, "severity": 9, "first seen": 30, "finding id": 18}
        for j, name in enumerate(frame.columns):
            ws.write(0, j, name, head)
            ws.set_column(j, j, widths.get(name, 14), wrap if name in ("query", "rule") else top)
        for i, row in enumerate(frame.iter_rows(), start=1):
            for j, v in enumerate(row):
                ws.write_string(i, j, "" if v is None else str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(frame.height, 1), frame.width - 1)
        wb.set_properties({"title": f"Open data queries, site {site}", "subject": f"build {build_id}"})
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
        _write_xlsx(listing, xlsx_path, site or NO_SITE, build_id)
        paths += [csv_path, xlsx_path]
    return sorted(paths)


# --------------------------------------------------------------------------------------------- the page


def summary_table(results: pl.DataFrame) -> str:
    if results.height == 0:
        return "<p>No expectations ran.</p>"
    failed = pl.col("success") == False  # noqa: E712
    summary = (
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
    )
    rows = "".join(
        f"<tr data-stage='{esc(r['stage'])}'><td>{esc(r['stage'])}</td><td>{esc(r['suite'])}</td>"
        f"<td>{esc(r['tables'])}</td><td class=n>{r['expectations']}</td>"
        f"<td class='n{' error' if r['errors'] else ''}'>{r['errors']}</td>"
        f"<td class='n{' warning' if r['warnings'] else ''}'>{r['warnings']}</td>"
        f"<td class='n{' muted' if r['skipped'] else ''}'>{r['skipped']}</td>"
        f"<td class=n>{r['failing_rows']}</td></tr>"
        for r in summary.iter_rows(named=True)
    )
    return (
        "<table id=summary><thead><tr><th>stage</th><th>suite</th><th>tables</th><th>expectations run</th>"
        "<th>failed (error)</th><th>failed (warning)</th><th>skipped</th><th>failing rows</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def stage_table(validations: list) -> str:
    rows = "".join(
        f"<tr><td>{esc(v.stage)}</td><td class='{'ok' if v.success else 'error'}'>{'passed' if v.success else 'FAILED'}"
        f"</td><td class=n>{v.errors}</td><td class=n>{v.warnings}</td><td class=n>{v.findings.height}</td>"
        f"<td class=n>{v.skipped}</td></tr>"
        for v in validations
    )
    return ("<table id=stages><thead><tr><th>stage</th><th>result</th><th>failed (error)</th><th>failed (warning)</th>"
            f"<th>findings</th><th>skipped</th></tr></thead><tbody>{rows}</tbody></table>")


def _delta(now: int, before: int | None) -> str:
    if before is None:
        return "<td class=muted>–</td>"
    d = now - before
    cls = "up" if d > 0 else "down" if d < 0 else "muted"
    return f"<td class='n {cls}'>{'+' if d > 0 else ''}{d}</td>"


def trend_section(trend: dict, previous: dict | None, errors: int, warnings: int) -> str:
    """Counts against the previous build's record, and new / still open / closed findings."""
    intro = (f"<p>Previous build <code>{esc(previous['build_id'])}</code> ({esc(previous.get('status'))}); findings "
             f"compared with the {esc(trend['basis'])}.</p>" if previous
             else f"<p>No earlier build in this data directory; findings compared with the {esc(trend['basis'])}.</p>")
    rows = [
        ("error findings", errors, previous.get("errors") if previous else None),
        ("warning findings", warnings, previous.get("warnings") if previous else None),
        ("findings", trend["open"], trend["open_before"] if previous else None),
    ]
    body = "".join(f"<tr><td>{esc(k)}</td><td class=n>{now}</td>"
                   f"<td class=n>{'' if before is None else before}</td>{_delta(now, before)}</tr>"
                   for k, now, before in rows)
    closed = trend["closed_rows"]
    closed_table = ""
    if closed.height:
        cols = [c for c in ("severity", "stage", "site_id", "subject_id", "event", "form", "field", "rule")
                if c in closed.columns]
        shown = closed.head(200)
        closed_table = (
            "<details id=closed><summary>Findings closed by this build"
            f"{' (first 200)' if closed.height > 200 else ''}</summary><table><thead><tr>"
            + "".join(f"<th>{c}</th>" for c in cols) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{esc(r.get(c))}</td>" for c in cols) + "</tr>"
                      for r in shown.iter_rows(named=True))
            + "</tbody></table></details>"
        )
    return (
        f"{intro}<table id=trend><thead><tr><th></th><th>this build</th><th>previous</th><th>change</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
        f"<p id=trend-findings><span class=up>{trend['new']} new</span>, {trend['still_open']} still open, "
        f"<span class=down>{trend['closed']} closed</span> (fixed since the previous build).</p>{closed_table}"
    )


def findings_table(findings: pl.DataFrame, build_id: str) -> str:
    columns = ["status", "severity", "stage", "site_id", "subject_id", "event", "repeat_instance", "form", "field",
               "value", "rule", "message", "first_seen"]
    if findings.height == 0:
        return (f"{_filters(findings)}<p id=no-findings>No findings.</p>"
                "<table id=findings><thead></thead><tbody></tbody></table>")
    shown = findings.head(FINDINGS_SHOWN)
    body = "".join(
        f"<tr data-site='{esc(r.get('site_id'))}' data-form='{esc(r.get('form'))}' "
        f"data-severity='{esc(r.get('severity'))}' data-stage='{esc(r.get('stage'))}' "
        f"data-status='{esc(r.get('status'))}'>"
        + "".join(f"<td class='{esc(r.get('severity')) if c == 'severity' else ''}'>{esc(r.get(c))}</td>"
                  for c in columns)
        + "</tr>"
        for r in shown.iter_rows(named=True)
    )
    head = "".join(f"<th>{c}</th>" for c in columns)
    note = (f"<p>Showing the first {FINDINGS_SHOWN} of {findings.height} findings (errors first); all are in the "
            "warehouse table <code>findings</code> and in the site listings.</p>" if findings.height > FINDINGS_SHOWN else "")
    return f"{_filters(findings)}{note}<table id=findings><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _filters(findings: pl.DataFrame) -> str:
    def values(c):
        return [str(v) for v in findings.get_column(c).to_list() if v] if c in findings.columns else []

    return (
        "<div class=filters>site <select id=f-site><option value=''>all</option>"
        f"{options(values('site_id'))}</select>"
        "form <select id=f-form><option value=''>all</option>"
        f"{options(values('form'))}</select>"
        "severity <select id=f-severity><option value=''>all</option>"
        "<option>error</option><option>warning</option></select>"
        "stage <select id=f-stage><option value=''>all</option>"
        "<option>raw</option><option>staging</option><option>marts</option></select>"
        "status <select id=f-status><option value=''>all</option>"
        "<option value=new>new</option><option value=open>still open</option></select>"
        "<span id=shown></span> shown</div>"
    )


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


def _links(build_dir: Path, site_files: list[Path], data_docs: Path | None, data_docs_note: str | None) -> str:
    from warehouse.validate.datadocs import DATA_DOCS_OFFLINE_NOTE

    items = []
    if data_docs is not None:
        href = Path(data_docs).resolve().relative_to(Path(build_dir).resolve()).as_posix()  # GX's path is absolute
        items.append(f"<li><a id=data-docs href='{esc(href)}'>Great Expectations "
                     f"Data Docs</a> (every suite and result). <span id=data-docs-offline>{esc(DATA_DOCS_OFFLINE_NOTE)}"
                     ".</span></li>")
    elif data_docs_note:
        items.append(f"<li class=muted>Data Docs not written: {esc(data_docs_note)}</li>")
    sites = sorted({p.stem for p in site_files})
    if sites:
        links = ", ".join(
            f"{esc(s)} (<a href='sites/{esc(s)}.csv'>CSV</a>, <a href='sites/{esc(s)}.xlsx'>XLSX</a>)" for s in sites)
        items.append(f"<li id=site-listings>Open findings by site, to send to sites: {links}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def render_validation_report(build_id: str, validations: list, history: pl.DataFrame, *,
                             previous: dict | None = None, previous_findings: pl.DataFrame | None = None,
                             links: str = "") -> str:
    """The page. ``previous``: the previous build's record; ``previous_findings``: its findings table (else the
    trend is read from ``history``)."""
    results = _concat([v.results for v in validations])
    current = _concat([v.findings for v in validations])
    trend = findings_trend(current, previous_findings, history, build_id, stages=[v.stage for v in validations])
    findings = _page_findings(current, history, trend)
    failed_errors = sum(v.errors for v in validations)
    n_err = findings.filter(pl.col("severity") == "error").height if findings.height else 0
    n_warn = findings.filter(pl.col("severity") == "warning").height if findings.height else 0
    status = (f"<p class=error id=verdict>Publishing blocked: {n_err} error finding(s) from {failed_errors} failed "
              "rule(s); the previous warehouse stays published.</p>" if failed_errors
              else "<p class=ok id=verdict>No error finding: the build publishes.</p>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Validation report {esc(build_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Validation report</h1><p>Build <code>{esc(build_id)}</code></p>{status}"
        f"<p id=counts>{n_err} error finding(s), {n_warn} warning finding(s) in this build; "
        f"{trend['new']} new, {trend['closed']} closed since the previous build.</p>{links}"
        f"<h2>Summary by stage</h2>{stage_table(validations)}"
        f"<h2>Trend against the previous build</h2>{trend_section(trend, previous, n_err, n_warn)}"
        f"<h2>Summary by stage and suite</h2>{summary_table(results)}"
        f"<h2>Findings</h2>{findings_table(findings, build_id)}"
        f"<script>{_SCRIPT}</script></body></html>"
    )


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
        links=_links(build_dir, site_files, data_docs, note))
    target = build_dir / "validation.html"
    target.write_text(mark_blocked(page) if blocked else page, encoding="utf-8")
    return target


BLOCKED_BANNER = ("<div class='blocked' style='background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold'>"
                  "blocked: not published. Validation found errors in this build; the warehouse that analysts "
                  "query is the previous published build.</div>")


def mark_blocked(page: str) -> str:
    """A blocked build's page, with a banner first thing in its body: numbers nobody may take for published."""
    head, sep, body = page.partition("<body>")
    return head + sep + BLOCKED_BANNER + body if sep else BLOCKED_BANNER + page


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
