"""Severities decide success; finding ids are stable; the history opens, keeps and closes findings."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest

from warehouse.validate import FINDINGS_COLUMNS, HISTORY_COLUMNS, finding_id, update_findings_history, validate_stage


def suite(severity_a: str, severity_b: str) -> dict:
    return {"name": "t", "meta": {"table": "vitals"}, "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "hr", "min_value": 20, "max_value": 220},
         "meta": {"severity": severity_a, "rule": "hr in [20, 220]"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "temp"},
         "meta": {"severity": severity_b, "rule": "temp is given"}},
    ]}


def vitals(hr: list, temp: list) -> pl.DataFrame:
    n = len(hr)
    return pl.DataFrame({"subject_id": [f"01-00{i}" for i in range(n)], "site_id": ["site_01"] * n,
                         "event": ["day_1"] * n, "repeat_instance": [None] * n, "hr": hr, "temp": temp},
                        schema_overrides={"repeat_instance": pl.Int32})


def run(tmp_path, s: dict, frame: pl.DataFrame, **kw):
    d = tmp_path / "suites" / "staging"
    d.mkdir(parents=True, exist_ok=True)
    (d / "t.json").write_text(json.dumps(s))
    return validate_stage("staging", {"vitals": frame}, suites_dir=tmp_path / "suites", **kw)


@pytest.mark.parametrize(("sev_a", "sev_b", "success", "errors", "warnings"), [
    ("warning", "warning", True, 0, 2),
    ("error", "warning", False, 1, 1),
    ("warning", "error", False, 1, 1),
])
def test_severities_decide_success(gx_loaded, tmp_path, sev_a, sev_b, success, errors, warnings):
    v = run(tmp_path, suite(sev_a, sev_b), vitals([10, 80, 90], [37.0, None, 36.5]))
    assert (v.success, v.errors, v.warnings) == (success, errors, warnings)
    assert sorted(v.findings.select("subject_id", "field", "severity").rows()) == sorted(
        [("01-000", "hr", sev_a), ("01-001", "temp", sev_b)])


def test_passing_error_rules_succeed(gx_loaded, tmp_path):
    v = run(tmp_path, suite("error", "error"), vitals([30, 80], [37.0, 36.0]))
    assert v.success and v.errors == 0 and v.findings.height == 0
    assert v.results["status"].to_list() == ["passed", "passed"]


def test_unknown_severity_is_rejected(gx_loaded, tmp_path):
    with pytest.raises(ValueError, match="severity"):
        run(tmp_path, suite("fatal", "error"), vitals([30], [37.0]))


def test_missing_column_is_reported_skipped_not_passed(gx_loaded, tmp_path):
    v = run(tmp_path, suite("error", "error"), vitals([30], [37.0]).drop("temp"))
    st = dict(zip(v.results["column"].to_list(), v.results["status"].to_list()))
    assert st == {"hr": "passed", "temp": "skipped"}


def test_finding_ids_are_stable_across_runs_and_values(gx_loaded, tmp_path):
    a = run(tmp_path, suite("error", "error"), vitals([10, 80], [37.0, None]))
    b = run(tmp_path, suite("error", "error"), vitals([10, 80], [37.0, None]))
    c = run(tmp_path, suite("error", "error"), vitals([5, 80], [37.0, None]))  # another wrong value, same problem
    ids = lambda v: sorted(v.findings["finding_id"].to_list())  # noqa: E731
    assert ids(a) == ids(b) == ids(c) and len(ids(a)) == 2
    assert len(set(ids(a))) == 2
    row = a.findings.filter(pl.col("field") == "hr").row(0, named=True)
    assert row["finding_id"] == finding_id("staging", "hr in [20, 220]", "01-000", "day_1", None, "vitals", "hr")
    assert finding_id("staging", "r", "01-001", "e", None, "f", "x") != finding_id("staging", "r", "01-002", "e", None, "f", "x")


def test_findings_capped_per_expectation_but_counted_in_full(gx_loaded, tmp_path):
    v = run(tmp_path, suite("error", "error"), vitals([1, 2, 3, 4, 5], [37.0] * 5), max_findings_per_expectation=2)
    assert v.findings.filter(pl.col("field") == "hr").height == 2
    assert v.results.filter(pl.col("column") == "hr")["unexpected_count"].to_list() == [5]


def _f(subject: str, field: str = "hr", stage: str = "staging", value: str = "10") -> dict:
    r = {"stage": stage, "suite": "t", "rule": "hr in [20, 220]", "expectation_type": "expect_column_values_to_be_between",
         "severity": "error", "subject_id": subject, "site_id": "site_01", "event": "day_1", "repeat_instance": None,
         "form": "vitals", "field": field, "value": value, "message": f"{subject} hr {value}"}
    r["finding_id"] = finding_id(stage, r["rule"], subject, "day_1", None, "vitals", field)
    return r


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.String for c in FINDINGS_COLUMNS}).select(FINDINGS_COLUMNS)


T1 = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
T2 = datetime(2024, 1, 8, 12, 0, tzinfo=timezone.utc)
T3 = datetime(2024, 1, 15, 12, 0)  # naive: taken as UTC


def test_history_opens_keeps_and_closes():
    h1 = update_findings_history(None, frame([_f("A"), _f("B")]), "b1", T1)
    assert h1.columns == HISTORY_COLUMNS
    assert h1["status"].to_list() == ["open", "open"] and h1["first_seen_build"].to_list() == ["b1", "b1"]

    h2 = update_findings_history(h1, frame([_f("B", value="12"), _f("C")]), "b2", T2)
    by = {r["subject_id"]: r for r in h2.iter_rows(named=True)}
    assert by["A"]["status"] == "closed" and by["A"]["closed_build"] == "b2" and by["A"]["closed_at"] == T2
    assert by["A"]["last_seen_build"] == "b1"
    assert by["B"]["status"] == "open" and by["B"]["first_seen_build"] == "b1" and by["B"]["first_seen_at"] == T1
    assert by["B"]["last_seen_build"] == "b2" and by["B"]["value"] == "12"  # text columns from the current build
    assert by["C"]["first_seen_build"] == "b2" and by["C"]["closed_build"] is None

    h3 = update_findings_history(h2, frame([_f("A"), _f("C")]), "b3", T3)  # A comes back, B fixed
    by = {r["subject_id"]: r for r in h3.iter_rows(named=True)}
    assert h3.height == 3
    assert by["A"]["status"] == "open" and by["A"]["first_seen_build"] == "b1" and by["A"]["closed_build"] is None
    assert by["A"]["last_seen_at"] == T3.replace(tzinfo=timezone.utc)
    assert by["B"]["status"] == "closed" and by["B"]["closed_build"] == "b3"
    assert by["C"]["first_seen_build"] == "b2" and by["C"]["last_seen_build"] == "b3"

    h4 = update_findings_history(h3, frame([]), "b4", T3)
    assert set(h4["status"].to_list()) == {"closed"}
    assert {r["subject_id"]: r["closed_build"] for r in h4.iter_rows(named=True)} == {"A": "b4", "B": "b3", "C": "b4"}


def test_history_only_closes_the_stages_validated():
    h1 = update_findings_history(None, frame([_f("A", stage="staging"), _f("A", stage="marts")]), "b1", T1)
    h2 = update_findings_history(h1, frame([]), "b2", T2, stages=["staging"])
    assert dict(zip(h2["stage"].to_list(), h2["status"].to_list())) == {"staging": "closed", "marts": "open"}
