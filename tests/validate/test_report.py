"""The data manager's report of a build: the page (in a real headless browser), the trend against the previous
build, the site listings (CSV, XLSX), GX Data Docs, and the orchestrator artifacts."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
from cdp import browser  # noqa: F401 - the module's headless Chromium (a fixture)

from warehouse.validate.report import SITE_COLUMNS, render_validation_report, write_site_listings, write_validation_report
from warehouse.validate import (
    FINDINGS_COLUMNS,
    StageValidation,
    finding_id,
    findings_markdown,
    findings_table_rows,
    update_findings_history,
)
from warehouse.validate.core import RESULTS_SCHEMA

SITE_HEADERS = [h for _, h in SITE_COLUMNS]


def report_dir(build) -> Path:
    return build.data_dir / "reports" / build.build_id


# --------------------------------------------------------------------------------------------- in the browser


def test_report_page_in_a_headless_browser(browser, injected_build):
    page_path = report_dir(injected_build) / "validation.html"
    page = browser.open(page_path)
    assert page.requests == [page_path.resolve().as_uri()]  # the page itself, nothing else
    assert page.errors == []
    ev = page.evaluate
    assert ev("document.querySelector('#verdict').textContent").startswith("Publishing blocked")
    # summary by stage and suite, shown
    assert ev("document.querySelectorAll('#summary tbody tr').length") > 10
    assert ev("[...new Set([...document.querySelectorAll('#summary tbody tr')].map(r => r.dataset.stage))].sort()"
              ) == ["marts", "raw", "staging"]
    assert ev("document.querySelector('#summary').getBoundingClientRect().height") > 0
    # the findings table, shown, every row visible with no filter
    n = ev("document.querySelectorAll('#findings tbody tr').length")
    assert n == min(injected_build.findings.height, 5000)
    assert ev("document.querySelector('#shown').textContent") == str(n)
    # choosing a site hides the other sites' rows
    site = ev("document.querySelector('#f-site option:nth-child(2)').value")
    ev(f"var s=document.querySelector('#f-site'); s.value={json.dumps(site)}; s.dispatchEvent(new Event('change'))")
    visible = ev("[...document.querySelectorAll('#findings tbody tr')].filter(r => r.offsetParent !== null)"
                 ".map(r => r.dataset.site)")
    expected = injected_build.findings.filter(pl.col("site_id") == site).height
    assert len(visible) == expected > 0 and set(visible) == {site}
    assert ev("document.querySelector('#shown').textContent") == str(expected)
    # and a form on top of it narrows further; back to all sites shows every row again
    form = (injected_build.findings.filter(pl.col("site_id") == site).group_by("form").len()
            .sort(["len", "form"], descending=[True, False]).item(0, "form"))  # a form with findings at that site
    ev(f"var f=document.querySelector('#f-form'); f.value={json.dumps(form)}; f.dispatchEvent(new Event('change'))")
    shown = ev("[...document.querySelectorAll('#findings tbody tr')].filter(r => r.offsetParent !== null)"
               ".map(r => [r.dataset.site, r.dataset.form])")
    in_form = injected_build.findings.filter((pl.col("site_id") == site) & (pl.col("form") == form)).height
    assert len(shown) == min(in_form, n) > 0 and {tuple(x) for x in shown} == {(site, form)}
    ev("for (const id of ['#f-site', '#f-form']) { const s=document.querySelector(id); s.value='';"
       " s.dispatchEvent(new Event('change')); }")
    assert ev("[...document.querySelectorAll('#findings tbody tr')].filter(r => r.offsetParent !== null).length") == n
    # links to the Data Docs and the site listings resolve to files beside the page
    hrefs = ev("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert "data_docs/index.html" in hrefs and f"sites/{site}.xlsx" in hrefs
    assert all((page_path.parent / h).is_file() for h in hrefs)
    page.settle(0.2)
    assert page.requests == [page_path.resolve().as_uri()] and page.errors == []


def test_report_without_findings_in_a_headless_browser(browser, clean_build):
    page_path = clean_build.data_dir / "reports" / "validation.html"  # the latest copy
    page = browser.open(page_path)
    assert page.requests == [page_path.resolve().as_uri()] and page.errors == []
    assert page.evaluate("document.querySelector('#verdict').textContent").startswith("No error finding")
    assert page.evaluate("document.querySelectorAll('#summary tbody tr').length") > 10
    hrefs = page.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert f"{clean_build.build_id}/data_docs/index.html" in hrefs
    assert all((page_path.parent / h).is_file() for h in hrefs)


# --------------------------------------------------------------------------------------------- files


def test_site_listings(injected_build):
    b = injected_build
    sites_dir = report_dir(b) / "sites"
    open_ = b.history.filter(pl.col("status") == "open")
    sites = sorted({s or "no_site" for s in open_["site_id"].to_list()})
    assert sorted(p.name for p in sites_dir.iterdir()) == sorted([f"{s}.csv" for s in sites] + [f"{s}.xlsx" for s in sites])
    site = next(s for s in sites if s != "no_site")
    with open(sites_dir / f"{site}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == SITE_HEADERS
    mine = open_.filter(pl.col("site_id") == site)
    assert sorted(r["finding id"] for r in rows) == sorted(mine["finding_id"].to_list())
    # demo subjects are numbered by site: 01-003 (eCRF record id), ADRESS-01-003 (USUBJID, mart findings)
    assert {r["subject"].split("-")[-2] for r in rows} == {site[-2:]}
    assert all(r["query"] and r["severity"] in ("error", "warning") and b.build_id in r["first seen"] for r in rows)
    # the XLSX holds the same rows: one sheet, a header row and one row per finding
    with zipfile.ZipFile(sites_dir / f"{site}.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        strings = z.read("xl/sharedStrings.xml").decode()
    assert len(re.findall(r"<row ", sheet)) == len(rows) + 1
    assert all(h in strings for h in SITE_HEADERS) and rows[0]["finding id"] in strings


def test_site_listings_of_nothing_open(tmp_path):
    assert write_site_listings(tmp_path, "b1", pl.DataFrame()) == []


def test_data_docs(injected_build):
    docs = report_dir(injected_build) / "data_docs"
    assert (docs / "index.html").is_file()
    pages = list((docs / "validations").rglob("*.html"))
    assert {p.relative_to(docs / "validations").parts[0] for p in pages} >= {"raw", "staging", "marts"}
    assert list((docs / "expectations").rglob("*.html"))  # a page per suite


# --------------------------------------------------------------------------------------------- trend


def finding(subject: str, field: str = "hr", severity: str = "error", site: str = "site_01") -> dict:
    r = {"stage": "staging", "suite": "t", "rule": f"{field} plausible", "expectation_type": "expect_x",
         "severity": severity, "subject_id": subject, "site_id": site, "event": "day_1", "repeat_instance": None,
         "form": "vitals", "field": field, "value": "1", "message": f"{subject} {field}"}
    r["finding_id"] = finding_id("staging", r["rule"], subject, "day_1", None, "vitals", field)
    return r


def validation(rows: list[dict]) -> StageValidation:
    findings = pl.DataFrame(rows, schema={c: pl.Utf8 for c in FINDINGS_COLUMNS}).select(FINDINGS_COLUMNS)
    results = pl.DataFrame([{"stage": "staging", "suite": "t", "table": "vitals", "expectation_type": "expect_x",
                             "column": "hr", "severity": "error", "success": not rows, "element_count": 10,
                             "unexpected_count": len(rows), "rule": "hr plausible",
                             "status": "failed" if rows else "passed", "note": None}], schema=RESULTS_SCHEMA)
    return StageValidation(stage="staging", results=results, findings=findings)


def test_trend_against_the_previous_build(tmp_path):
    """Build 1: A, B open; build 2: B still open, C new, A closed. The page counts them against build 1's record
    and marks each row new or still open; the closed finding is listed."""
    reports, builds = tmp_path / "reports", tmp_path / "builds"
    builds.mkdir()
    t1, t2 = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 8, tzinfo=timezone.utc)
    v1 = validation([finding("01-001"), finding("01-002", site="site_02")])
    h1 = update_findings_history(None, v1.findings, "20240101T000000Z-aa", t1)
    (builds / "20240101T000000Z-aa.json").write_text(json.dumps(
        {"build_id": "20240101T000000Z-aa", "status": "blocked", "errors": 2, "warnings": 0}))
    with duckdb.connect(str(builds / "20240101T000000Z-aa.duckdb")) as con:
        con.register("f", v1.findings.to_arrow())
        con.execute("create table main.findings as select * from f")
    v2 = validation([finding("01-002", site="site_02"), finding("01-003", field="temp", severity="warning")])
    h2 = update_findings_history(h1, v2.findings, "20240108T000000Z-bb", t2)
    page = write_validation_report(reports, "20240108T000000Z-bb", [v2], h2).read_text()
    assert "Previous build <code>20240101T000000Z-aa</code> (blocked)" in page
    assert "<span class=up>1 new</span>, 1 still open, <span class=down>1 closed</span>" in page
    # error findings 1 now vs 2 before
    assert re.search(r"<td>error findings</td><td class=n>1</td><td class=n>2</td><td class='n down'>-1</td>", page)
    statuses = dict(re.findall(r"<tr data-site='[^']*' data-form='vitals' data-severity='\w+' data-stage='staging' "
                               r"data-status='(\w+)'><td[^>]*>\w+</td><td[^>]*>\w+</td><td[^>]*>staging</td>"
                               r"<td[^>]*>[^<]*</td><td[^>]*>([^<]+)</td>", page))
    assert {v: k for k, v in statuses.items()} == {"01-002": "open", "01-003": "new"}
    closed = page[page.index("<details id=closed>"):]
    assert "01-001" in closed[:closed.index("</details>")]
    # without the previous build's file (pruned) the history gives the same trend
    (builds / "20240101T000000Z-aa.duckdb").unlink()
    again = write_validation_report(reports, "20240108T000000Z-bb", [v2], h2).read_text()
    assert "<span class=up>1 new</span>, 1 still open, <span class=down>1 closed</span>" in again


def test_first_build_has_no_previous(tmp_path):
    v = validation([finding("01-001")])
    h = update_findings_history(None, v.findings, "b1", datetime(2024, 1, 1, tzinfo=timezone.utc))
    page = render_validation_report("b1", [v], h)
    assert "No earlier build" in page and "<span class=up>1 new</span>, 0 still open" in page


# --------------------------------------------------------------------------------------------- artifacts


def test_prefect_artifacts_are_plain_data(injected_build):
    b = injected_build
    v = StageValidation(stage="staging", results=b.results.filter(pl.col("stage") == "staging"),
                        findings=b.findings.filter(pl.col("stage") == "staging"))
    md = findings_markdown([v], b.build_id)
    assert md.startswith(f"# Validation of build `{b.build_id}`") and "**Publishing blocked**" in md
    assert f"| staging | FAILED | {v.errors} | {v.warnings} | {v.findings.height} | {v.skipped} |" in md
    assert "## Failed rules" in md and "## Findings by site" in md and "| site_01 |" in md
    rows = findings_table_rows(b.findings, limit=50)
    assert len(rows) == 50 and all(isinstance(x, str) for r in rows for x in r.values())
    assert rows[0]["severity"] == "error" and set(rows[0]) >= {"site_id", "subject_id", "form", "field", "message"}
    sev = [r["severity"] for r in findings_table_rows(b.findings, limit=10_000)]
    assert sev == sorted(sev) and len(sev) == b.findings.height  # errors first, all of them
    assert findings_table_rows(b.findings.head(0)) == []
    clean = findings_markdown([validation([])], "b0")
    assert "**Passed**" in clean and "Failed rules" not in clean
