"""The HTML pages' Jinja2 templates: one environment, values escaped, a missing value blank, the blocked banner first
thing in the body, and the links that promote_reports rewrites when it copies a published build's page up."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from warehouse.validate.report import _links, mark_blocked, promote_reports, render_validation_report
from warehouse.templates import Markup, environment, render
from warehouse.validate import FINDINGS_COLUMNS, StageValidation, finding_id, update_findings_history
from warehouse.validate.core import RESULTS_SCHEMA

BANNER_START = "<div class='blocked' style='background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold'>"


def validation(value: str, site: str | None = "site_01") -> StageValidation:
    r = {"stage": "staging", "suite": "t", "rule": "hr < 300 & 'plausible'", "expectation_type": "expect_x",
         "severity": "error", "subject_id": "01-001", "site_id": site, "event": "day_1", "repeat_instance": None,
         "form": "vitals", "field": "hr", "value": value, "message": "hr out of range"}
    r["finding_id"] = finding_id("staging", r["rule"], "01-001", "day_1", None, "vitals", "hr")
    findings = pl.DataFrame([r], schema={c: pl.Utf8 for c in FINDINGS_COLUMNS}).select(FINDINGS_COLUMNS)
    results = pl.DataFrame([{"stage": "staging", "suite": "t", "table": "vitals", "expectation_type": "expect_x",
                             "column": "hr", "severity": "error", "success": False, "element_count": 10,
                             "unexpected_count": 1, "rule": r["rule"], "status": "failed", "note": None}],
                           schema=RESULTS_SCHEMA)
    return StageValidation(stage="staging", results=results, findings=findings)


def page_of(v: StageValidation, **kwargs) -> str:
    history = update_findings_history(None, v.findings, "b1", datetime(2024, 1, 1, tzinfo=timezone.utc))
    return render_validation_report("b1", [v], history, **kwargs)


def test_one_environment_autoescaping_and_strict():
    env = environment()
    assert env is environment() and env.autoescape is True
    assert render("_blocked.html.j2").startswith(BANNER_START)
    template = env.from_string("<p title='{{ a }}'>{{ b }}|{{ c }}|{{ d }}</p>")
    assert template.render(a="x' onclick='y", b="<b>&", c=None, d=Markup("<i>ok</i>")) == (
        "<p title='x&#39; onclick=&#39;y'>&lt;b&gt;&amp;||<i>ok</i></p>")
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ nothing }}").render()


def test_values_on_the_validation_page_are_escaped():
    page = page_of(validation("<script>alert('x')</script>", site="a'b"))
    body = page.split("</style>", 1)[1]
    assert "<script>alert" not in body and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body
    assert "data-site='a&#39;b'" in body and "hr &lt; 300 &amp; &#39;plausible&#39;" in body
    # a finding without a site: an empty attribute and cell, never the text "None"
    assert "data-site=''" in page_of(validation("1", site=None)) and ">None<" not in page_of(validation("1", site=None))


def test_blocked_banner_first_thing_in_the_body():
    v = validation("400")
    blocked = page_of(v, blocked=True)
    assert blocked.split("<body>", 1)[1].lstrip().startswith(BANNER_START)
    assert blocked.count("class='blocked'") == 1
    plain = page_of(v)
    assert "class='blocked'" not in plain
    marked = mark_blocked(plain)  # as analyse_build marks a page rendered without the flag
    assert marked.split("<body>", 1)[1].startswith(BANNER_START)
    assert mark_blocked(marked) == marked and mark_blocked(blocked) == blocked  # once only


def test_promote_reports_points_the_copy_into_the_build_folder(tmp_path):
    reports = tmp_path / "reports"
    build_dir = reports / "b1"
    (build_dir / "sites").mkdir(parents=True)
    (build_dir / "data_docs").mkdir()
    for name in ("site_01.csv", "site_01.xlsx"):
        (build_dir / "sites" / name).write_text("x")
    (build_dir / "data_docs" / "index.html").write_text("x")
    links = _links(build_dir, [build_dir / "sites" / "site_01.csv"], build_dir / "data_docs" / "index.html", None)
    (build_dir / "validation.html").write_text(page_of(validation("400"), links=links), encoding="utf-8")
    promote_reports(reports, "b1")
    top = (reports / "validation.html").read_text(encoding="utf-8")
    hrefs = re.findall(r"href='([^']+)'", top)
    assert hrefs == ["b1/data_docs/index.html", "b1/sites/site_01.csv", "b1/sites/site_01.xlsx"]
    assert all((reports / h).is_file() for h in hrefs)


def test_templates_are_package_files():
    folder = Path(environment().loader.get_source(environment(), "validation.html.j2")[1]).parent
    assert {p.name for p in folder.glob("*.html.j2")} >= {"validation.html.j2", "analysis.html.j2",
                                                          "catalog.html.j2", "_blocked.html.j2"}
