"""Raw stage: the rules generated from the export's metadata, and the structural suite file."""

from __future__ import annotations

import json

import polars as pl
import pytest
from validate_frames import choices_frame, items_frame, raw_form

from warehouse.validate import FINDINGS_COLUMNS, generate_raw_suites, validate_stage

STATUS = "0, Incomplete | 1, Unverified | 2, Complete"
ITEMS = items_frame([
    # form, item, field_type, validation, min, max, choices, required
    ("enrol", "record_id", "text", None, None, None, None, False),
    ("enrol", "sex", "radio", None, None, None, "1, Male | 2, Female", False),
    ("enrol", "age", "text", "integer", "18", "105", None, True),
    ("enrol", "weight", "text", "number", "30", "250", None, False),
    ("enrol", "dob", "text", "date_ymd", None, None, None, False),
    ("enrol", "enrol_dt", "text", "datetime_ymd", None, None, None, True),
    ("enrol", "smoker", "yesno", None, None, None, None, False),
    ("enrol", "comorb___1", "checkbox", None, None, None, "1, HT | 2, DM", False),
    ("enrol", "comorb___2", "checkbox", None, None, None, "1, HT | 2, DM", False),
    ("enrol", "enrol_complete", "form_status", None, None, None, STATUS, False),
    ("visit", "visit_dt", "text", "datetime_seconds_ymd", None, None, None, False),
    ("visit", "vdate", "text", "date_dmy", None, None, None, False),
    ("visit", "temp", "text", "number_1dp_comma_decimal", None, None, None, False),
    ("visit", "email", "text", "email", None, None, None, False),
    ("visit", "grade", "dropdown", None, None, None, "1, mild | 2, moderate | 3, severe", False),
    ("visit", "visit_complete", "form_status", None, None, None, STATUS, False),
])
META = {"items": ITEMS, "choices": choices_frame(ITEMS)}
ENROL_COLS = ["sex", "age", "weight", "dob", "enrol_dt", "smoker", "comorb___1", "comorb___2", "enrol_complete"]
VISIT_COLS = ["visit_dt", "vdate", "temp", "email", "grade", "visit_complete"]
GOOD = {"sex": "2", "age": "45", "weight": "70,5", "dob": "1980-12-31", "enrol_dt": "2024-01-01 10:00",
        "smoker": "0", "comorb___1": "1", "comorb___2": "0", "enrol_complete": "2",
        "visit_dt": "2024-01-02 10:00:05", "vdate": "31-12-2024", "temp": "36,6", "email": "a@b.org", "grade": "3",
        "visit_complete": "1"}
# (form, field, bad value, kind of rule that must catch it)
CASES = [
    ("enrol", "sex", "3", "expect_column_values_to_be_in_set"),
    ("enrol", "age", "4x", "expect_column_values_to_match_regex"),
    ("enrol", "age", "45.5", "expect_column_values_to_match_regex"),
    ("enrol", "age", None, "expect_column_values_to_not_be_null"),
    ("enrol", "weight", "7O.5", "expect_column_values_to_match_regex"),
    ("enrol", "dob", "31/12/1980", "expect_column_values_to_match_regex"),
    ("enrol", "enrol_dt", "2024-01-01", "expect_column_values_to_match_regex"),
    ("enrol", "enrol_dt", "2024-01-01 25:00", "expect_column_values_to_match_regex"),
    ("enrol", "smoker", "2", "expect_column_values_to_be_in_set"),
    ("enrol", "comorb___1", "x", "expect_column_values_to_be_in_set"),
    ("enrol", "enrol_complete", "3", "expect_column_values_to_be_in_set"),
    ("visit", "visit_dt", "2024-01-02 10:00", "expect_column_values_to_match_regex"),
    ("visit", "vdate", "2024-31-12", "expect_column_values_to_match_regex"),
    ("visit", "temp", "abc", "expect_column_values_to_match_regex"),
    ("visit", "email", "nope", "expect_column_values_to_match_regex"),
    ("visit", "grade", "4", "expect_column_values_to_be_in_set"),
    ("visit", "visit_complete", "9", "expect_column_values_to_be_in_set"),
]


def _subject(k: int) -> str:
    return f"01-{k:03d}"


def _tables(cases=CASES) -> dict[str, pl.DataFrame]:
    """Subject 01-000 is all good; subject 01-00k carries the k-th case's bad value and nothing else wrong."""
    enrol, visit = [], []
    for k in range(len(cases) + 1):
        e = {"subject_id": _subject(k), "event": "screening", "site_id": "site_01", **GOOD}
        v = {"subject_id": _subject(k), "event": "day_1", "site_id": "site_01", **GOOD}
        if k:
            form, field, bad, _ = cases[k - 1]
            (e if form == "enrol" else v)[field] = bad
        enrol.append(e)
        visit.append(v)
    return {"enrol": raw_form(enrol, ENROL_COLS), "visit": raw_form(visit, VISIT_COLS)}


@pytest.fixture(scope="module")
def raw_validation(gx_loaded, tmp_path_factory):
    gen_dir = tmp_path_factory.mktemp("generated")
    v = validate_stage("raw", _tables(), META, generated_dir=gen_dir)
    return v, gen_dir


@pytest.mark.parametrize("k", range(1, len(CASES) + 1), ids=[f"{c[1]}={c[2]!r}" for c in CASES])
def test_generated_rule_catches_bad_value_on_right_subject_and_field(raw_validation, k):
    v, _ = raw_validation
    form, field, bad, etype = CASES[k - 1]
    hits = v.findings.filter(pl.col("subject_id") == _subject(k))
    assert hits.select("form", "field").rows() == [(form, field)]  # exactly this one finding for the subject
    assert v.findings.filter(pl.col("subject_id") == "01-000").height == 0  # the good values pass
    row = hits.row(0, named=True)
    assert row["expectation_type"] == etype
    assert row["value"] == bad
    assert row["severity"] == "error"
    assert row["event"] == ("screening" if form == "enrol" else "day_1")
    assert row["site_id"] == "site_01" and row["stage"] == "raw"
    assert field in row["message"] and _subject(k) in row["message"]


def test_all_findings_are_the_injected_ones(raw_validation):
    v, _ = raw_validation
    got = {(r["subject_id"], r["field"]) for r in v.findings.iter_rows(named=True)}
    assert got == {(_subject(k), c[1]) for k, c in enumerate(CASES, 1)}
    assert v.findings.columns == FINDINGS_COLUMNS
    assert not v.success and v.errors > 0 and v.warnings == 0


def test_good_values_pass(gx_loaded):
    v = validate_stage("raw", _tables(cases=[]), META)
    assert v.findings.height == 0
    assert v.success and v.errors == 0
    ran = v.results.filter(pl.col("status") != "skipped")
    assert ran.height > 20 and ran["success"].all()
    # every generated kind ran on its column
    kinds = set(zip(ran["column"].to_list(), ran["expectation_type"].to_list()))
    assert ("age", "expect_column_values_to_not_be_null") in kinds
    assert ("comorb___2", "expect_column_values_to_be_in_set") in kinds
    assert ("visit_complete", "expect_column_values_to_be_in_set") in kinds


def test_generated_suites_are_written_and_readable(raw_validation):
    v, gen_dir = raw_validation
    files = sorted(p.name for p in gen_dir.glob("*.json"))
    assert files == ["raw_dictionary_enrol.json", "raw_dictionary_visit.json"]
    suite = json.loads((gen_dir / "raw_dictionary_enrol.json").read_text())
    assert suite["meta"]["table"] == "enrol"
    by_col = {(e["kwargs"].get("column"), e["type"]): e for e in suite["expectations"]}
    assert by_col[("sex", "expect_column_values_to_be_in_set")]["kwargs"]["value_set"] == ["1", "2"]
    assert by_col[("age", "expect_column_values_to_not_be_null")]["meta"]["severity"] == "error"
    assert all(e["meta"]["rule"] for e in suite["expectations"])
    assert [s["name"] for s in v.generated_suites] == ["raw_dictionary_enrol", "raw_dictionary_visit"]


def test_structure_duplicates_unknown_and_missing_subjects(gx_loaded):
    t = _tables(cases=[])
    visit = t["visit"]
    dup = visit.filter(pl.col("subject_id") == "01-000")
    stranger = visit.head(1).with_columns(subject_id=pl.lit("09-999"))
    no_id = visit.head(1).with_columns(subject_id=pl.lit(None, dtype=pl.String), event=pl.lit("day_2"))
    t["visit"] = pl.concat([visit, dup, stranger, no_id])
    v = validate_stage("raw", t, META)
    f = v.findings
    dups = f.filter(pl.col("expectation_type") == "expect_compound_columns_to_be_unique")
    assert dups.select("subject_id", "event", "form").rows() == [("01-000", "day_1", "visit")]  # two rows, one finding
    assert v.results.filter(pl.col("expectation_type") == "expect_compound_columns_to_be_unique")[
        "unexpected_count"].to_list() == [0, 2]
    unknown = f.filter((pl.col("expectation_type") == "expect_column_values_to_be_in_set") & (pl.col("field") == "subject_id"))
    assert unknown["subject_id"].to_list() == ["09-999"]
    missing = f.filter(pl.col("expectation_type") == "expect_column_values_to_not_be_null")
    assert missing.select("subject_id", "event", "form").rows() == [(None, "day_2", "visit")]
    assert not v.success


def test_rules_only_for_columns_present():
    suites = generate_raw_suites(META, {"enrol": raw_form([], ["age"])})
    assert [s["meta"]["table"] for s in suites] == ["enrol"]
    cols = {e["kwargs"]["column"] for e in suites[0]["expectations"]}
    assert cols == {"age"}


def test_required_applies_to_forms_entered_not_to_forms_never_started(gx_loaded):
    """A form designated to an event but never opened (all empty, `_complete` empty: the subject died before the
    visit) has no missing required value; the same form saved without its required item has one."""
    entered = {"subject_id": "01-001", "event": "screening", "site_id": "site_01", **GOOD, "age": None}
    never_started = {"subject_id": "01-002", "event": "screening", "site_id": "site_01"}
    good = {"subject_id": "01-003", "event": "screening", "site_id": "site_01", **GOOD}
    tables = {"enrol": raw_form([entered, never_started, good], ENROL_COLS),
              "visit": raw_form([{**good, "event": "day_1"}], VISIT_COLS)}
    v = validate_stage("raw", tables, META)
    required = v.findings.filter(pl.col("expectation_type") == "expect_column_values_to_not_be_null")
    assert required.select("subject_id", "field").rows() == [("01-001", "age")]
    assert v.findings.filter(pl.col("subject_id") == "01-002").height == 0
