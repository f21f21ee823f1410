"""The review in the validation report, in the Prefect artifacts and from `warehouse review`'s command (quick
tier: small hand-made findings, no build). Two findings of one failed error rule: 01-001's value accepted by
alice, 01-002's queried; a warning left open."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from warehouse.review.gate import Review, review_build
from warehouse.review.report import review_markdown, review_section
from warehouse.review.store import NewDecision, read_decisions, record, value_fingerprint
from warehouse.validate import FINDINGS_COLUMNS, StageValidation, finding_id, findings_markdown, update_findings_history
from warehouse.validate.core import RESULTS_SCHEMA
from warehouse.validate.report import render_validation_report

REASON = "confirmed on the source: heart rate 31 as entered"


def finding(subject: str, value: str, severity: str = "error") -> dict:
    rule = "hr plausible" if severity == "error" else "temp plausible"
    r = {"stage": "staging", "suite": "t", "rule": rule, "expectation_type": "expect_x", "severity": severity,
         "subject_id": subject, "site_id": "site_01", "event": "day_1", "repeat_instance": None, "form": "vitals",
         "field": "hr", "value": value, "message": f"{subject} hr"}
    r["finding_id"] = finding_id("staging", rule, subject, "day_1", None, "vitals", "hr")
    return r


def validation() -> StageValidation:
    rows = [finding("01-001", "31"), finding("01-002", "400"), finding("01-003", "45", "warning")]
    findings = pl.DataFrame(rows, schema={c: pl.Utf8 for c in FINDINGS_COLUMNS}).select(FINDINGS_COLUMNS)
    results = pl.DataFrame([{"stage": "staging", "suite": "t", "table": "vitals", "expectation_type": "expect_x",
                             "column": "hr", "severity": sev, "success": False, "element_count": 10,
                             "unexpected_count": n, "rule": rule, "status": "failed", "note": None}
                            for sev, n, rule in (("error", 2, "hr plausible"), ("warning", 1, "temp plausible"))],
                           schema=RESULTS_SCHEMA)
    return StageValidation(stage="staging", results=results, findings=findings)


def reviewed(tmp_path: Path) -> tuple[StageValidation, Review, pl.DataFrame]:
    v = validation()
    ids = v.findings["finding_id"].to_list()
    record(tmp_path, [NewDecision(ids[0], value_fingerprint("31"), "accept", REASON, "alice"),
                      NewDecision(ids[1], value_fingerprint("400"), "query", "please check", "bob")],
           now=datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc))
    review = review_build(tmp_path, [v], cap=1000)  # what the build's review step does
    assert review.decisions.height == read_decisions(tmp_path).height == 2
    history = review.with_review(update_findings_history(None, v.findings, "b1",
                                                         datetime(2024, 3, 1, 10, tzinfo=timezone.utc)))
    return v, review, history


def test_the_report_counts_the_review_and_lists_the_accepted_findings(tmp_path):
    v, review, history = reviewed(tmp_path)
    assert not review.blocked  # the only failed error rule has one accepted and one queried finding
    assert review.summary() == "Review: 1 error finding(s) accepted (by alice 1), 1 queried, 0 answered, 0 open"
    section = review_section(history)
    assert section["counts"]["error"] == {"open": 0, "queried": 1, "answered": 0, "accepted": 1}
    assert section["counts"]["warning"] == {"open": 1, "queried": 0, "answered": 0, "accepted": 0}
    assert [(r["subject_id"], r["accepted_by"], r["accepted_at"], r["accepted_reason"]) for r in section["accepted"]] \
        == [("01-001", "alice", "2024-03-01T09:30:00.000000Z", REASON)]
    page = render_validation_report("b1", [v], history, blocked=False)
    assert "<h3>Accepted findings (1)</h3>" in page and REASON in page
    assert "<tr><td>error</td><td class=n>0</td><td class=n>1</td><td class=n>0</td><td class=n>1</td></tr>" in page
    assert "every one accepted or queried (see Review): the build publishes" in page
    # the same build, had it been blocked, says so
    assert "Publishing blocked: 2 error finding(s)" in render_validation_report("b1", [v], history, blocked=True)


def test_the_artifact_markdown_has_the_counts_and_the_reasons(tmp_path):
    _, review, _ = reviewed(tmp_path)
    build = tmp_path / "b1.duckdb"
    with duckdb.connect(str(build)) as con:
        con.register("f", review.reviewed.to_arrow())
        con.execute("create table main.findings as select * from f")
    text = review_markdown(build)
    assert "| error | 0 | 1 | 0 | 1 |" in text and "| warning | 1 | 0 | 0 | 0 |" in text
    assert "### Accepted findings (1)" in text
    assert f"| error | site_01 | 01-001 | vitals | hr | 31 | hr plausible | alice | 2024-03-01T09:30:00.000000Z | {REASON} |" in text
    assert review_markdown(tmp_path / "missing.duckdb") == ""


def test_the_artifacts_verdict_follows_the_gate_not_the_failed_rules(tmp_path):
    v, review, _ = reviewed(tmp_path)
    assert v.errors == 1 and not review.blocked
    published = findings_markdown([v], "b1", blocked=review.blocked)
    assert "**Published**: 1 failed error expectation(s), every error finding of them accepted or queried" in published
    assert "Publishing blocked" not in published
    assert "**Publishing blocked**: 1 failed error expectation(s)." in findings_markdown([v], "b1", blocked=True)
    assert "**Publishing blocked**" in findings_markdown([v], "b1")  # no gate given: a failed error rule blocks


def test_review_without_a_build_is_one_line_exit_2(tmp_path):
    for args in (["review", "--port", "0"], ["findings", "list"], ["findings", "history", "abc"]):
        proc = subprocess.run([sys.executable, "-m", "warehouse.cli", *args, "--data-dir", str(tmp_path / "none")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, args
        assert proc.stderr.strip().splitlines() == [f"error: no build to review in {tmp_path / 'none'}: run "
                                                   "`warehouse build` first"], args
