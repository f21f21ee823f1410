"""Staging stage: the clinical edit checks of the demo study (suite files), derived checks, typing failures and the
dictionary ranges generated from the metadata."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from validate_frames import choices_frame, items_frame

from warehouse.validate import validate_stage

H0 = datetime(2024, 3, 1, 8, 0)
KEYS = {"subject_id": pl.String, "site_id": pl.String, "event": pl.String, "repeat_instance": pl.Int32}


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    full = {**KEYS, **schema}
    return pl.DataFrame([{c: r.get(c) for c in full} for r in rows], schema=full)


def at(hours: float) -> datetime:
    return H0 + timedelta(hours=hours)


def pe_row(subject, event, hrs, rate=0.5, **kw):
    return {"subject_id": subject, "site_id": "site_01", "event": event, "pe_dt": at(hrs), "pe_dt_hrs": hrs,
            "pe_map_before": 65, "pe_map_max": 85, "pe_ne_rate": rate, "pe_ne_rate_base": rate, "pe_max_dose": 2.0, **kw}


PE_SCHEMA = {"pe_dt": pl.Datetime("us"), "pe_dt_hrs": pl.Float64, "pe_map_before": pl.Int64, "pe_map_max": pl.Int64,
             "pe_ne_rate": pl.Float64, "pe_ne_rate_base": pl.Float64, "pe_max_dose": pl.Float64}
VP_SCHEMA = {"vp_drug": pl.String, "vp_dt": pl.Datetime("us"), "vp_dt_hrs": pl.Float64, "vp_rate": pl.Float64,
             "vp_rate_base": pl.Float64}


def vp_row(subject, inst, hrs, rate, drug="1"):
    return {"subject_id": subject, "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": inst,
            "vp_drug": drug, "vp_dt": at(hrs), "vp_dt_hrs": hrs, "vp_rate": rate, "vp_rate_base": rate}


def staging_tables() -> dict[str, pl.DataFrame]:
    subjects = ["01-001", "01-002", "01-003"]
    randomisation = frame([{"subject_id": s, "site_id": "site_01", "event": "h0_arm_1", "rand_dt": H0} for s in subjects],
                          {"rand_dt": pl.Datetime("us")})
    pe = frame([
        pe_row("01-001", "h0_arm_1", -0.5), pe_row("01-001", "h6_arm_1", 6.0), pe_row("01-001", "h12_arm_1", 12.2),
        pe_row("01-002", "h0_arm_1", 0.0), pe_row("01-002", "h6_arm_1", 9.1),     # H6 out of window
        pe_row("01-002", "h12_arm_1", 12.0, rate=0.8),                              # NE rate differs from vasopressors
        pe_row("01-003", "h6_arm_1", 6.5),                                          # no H0 challenge; rate changes
    ], PE_SCHEMA)
    vp = frame([
        vp_row("01-001", 1, -3.0, 0.5), vp_row("01-002", 1, -3.0, 0.5),
        vp_row("01-003", 1, -3.0, 0.5), vp_row("01-003", 2, 6.6, 0.7),            # change 6 min into the H6 test
        vp_row("01-003", 3, 7.0, 0.5, drug="3"),                                   # vasopressin: not NE
    ], VP_SCHEMA)
    hd = frame([
        {"subject_id": "01-001", "event": "icu_arm_1", "repeat_instance": 1, "hd_map": 70, "hd_sbp": 110, "hd_dbp": 50, "hd_hr": 90},
        {"subject_id": "01-002", "event": "icu_arm_1", "repeat_instance": 1, "hd_map": 700, "hd_sbp": 110, "hd_dbp": 50, "hd_hr": 90},
        {"subject_id": "01-003", "event": "icu_arm_1", "repeat_instance": 2, "hd_map": 70, "hd_sbp": 110, "hd_dbp": 50, "hd_hr": 9},
    ], {"hd_map": pl.Int64, "hd_sbp": pl.Int64, "hd_dbp": pl.Int64, "hd_hr": pl.Int64})
    ae = frame([
        {"subject_id": "01-001", "event": "icu_arm_1", "repeat_instance": 1, "ae_start_dt": at(10), "ae_end_dt": at(20)},
        {"subject_id": "01-002", "event": "icu_arm_1", "repeat_instance": 3, "ae_start_dt": at(10), "ae_end_dt": at(2)},
        {"subject_id": "01-003", "event": "icu_arm_1", "repeat_instance": 1, "ae_start_dt": at(10), "ae_end_dt": None},
    ], {"ae_start_dt": pl.Datetime("us"), "ae_end_dt": pl.Datetime("us")})
    eos = frame([
        {"subject_id": "01-001", "event": "end_of_study_arm_1", "vital_status": "2", "death_dt": at(30), "death_dt_hrs": 30.0},
        {"subject_id": "01-002", "event": "end_of_study_arm_1", "vital_status": "2", "death_dt": at(-5), "death_dt_hrs": -5.0},
        {"subject_id": "01-003", "event": "end_of_study_arm_1", "vital_status": "2", "death_dt": None, "death_dt_hrs": None},
    ], {"vital_status": pl.String, "death_dt": pl.Datetime("us"), "death_dt_hrs": pl.Float64})
    tf = pl.DataFrame([{"form": "labs", "subject_id": "01-003", "site_id": "site_01", "event": "h6_arm_1",
                        "repeat_instance": None, "item": "lactate", "raw_value": "2..1", "expected_type": "number",
                        "_source_row": "17"}],
                      schema={"form": pl.String, "subject_id": pl.String, "site_id": pl.String, "event": pl.String,
                              "repeat_instance": pl.Int32, "item": pl.String, "raw_value": pl.String,
                              "expected_type": pl.String, "_source_row": pl.String})
    return {"randomisation": randomisation, "pe_challenge": pe, "vasopressors": vp, "hemodynamics": hd,
            "adverse_events": ae, "end_of_study": eos, "typing_failures": tf}


ITEMS = items_frame([
    ("hemodynamics", "hd_map", "text", "integer", "20", "160", None, True),
    ("hemodynamics", "hd_hr", "text", "integer", "20", "220", None, True),
    ("hemodynamics", "hd_sbp", "text", "integer", "40", "250", None, False),
    ("hemodynamics", "hd_dbp", "text", "integer", "15", "100", None, False),  # no file range for dbp in this test
    ("vasopressors", "vp_rate", "text", "number", "0", "0.6", None, True),
])


@pytest.fixture(scope="module")
def staging(gx_loaded):
    return validate_stage("staging", staging_tables(), {"items": ITEMS, "choices": choices_frame(ITEMS)})


def findings_of(v, **where) -> list[tuple]:
    f = v.findings
    for k, val in where.items():
        f = f.filter(pl.col(k) == val)
    return f.select("subject_id", "event", "repeat_instance", "form", "field", "severity").rows()


def test_physiological_range_is_an_error_on_the_right_row(staging):
    assert findings_of(staging, field="hd_map") == [("01-002", "icu_arm_1", "1", "hemodynamics", "hd_map", "error")]
    assert findings_of(staging, field="hd_hr") == [("01-003", "icu_arm_1", "2", "hemodynamics", "hd_hr", "error")]
    row = staging.findings.filter(pl.col("field") == "hd_map").row(0, named=True)
    assert row["value"] == "700" and "[20, 160]" in row["rule"]


def test_visit_window_deviation_is_a_warning(staging):
    # reported on the eCRF field pe_dt (the site corrects it), not on the derived pe_dt_hrs
    got = staging.findings.filter((pl.col("field") == "pe_dt") & pl.col("rule").str.contains("within its window"))
    assert got.select("subject_id", "event", "severity").rows() == [("01-002", "h6_arm_1", "warning")]
    assert "outside the H6 window" in got["message"][0]


def test_date_order_checks(staging):
    assert findings_of(staging, form="adverse_events") == [
        ("01-002", "icu_arm_1", "3", "adverse_events", "ae_end_dt", "error")]
    assert findings_of(staging, field="death_dt_hrs") == [
        ("01-002", "end_of_study_arm_1", None, "end_of_study", "death_dt_hrs", "error")]
    assert findings_of(staging, field="death_dt") == [
        ("01-003", "end_of_study_arm_1", None, "end_of_study", "death_dt", "warning")]


def test_derived_ne_rate_constant_during_pe_challenge(staging):
    got = staging.findings.filter(pl.col("suite") == "staging_chk_pe_ne_rate_constant")
    rows = sorted(got.select("subject_id", "event", "form", "field", "severity", "rule").rows())
    assert [r[:5] for r in rows] == [
        ("01-002", "h12_arm_1", "pe_challenge", "pe_ne_rate", "warning"),   # 0.8 recorded, 0.5 in effect
        ("01-003", "h6_arm_1", "pe_challenge", "pe_ne_rate", "warning"),    # NE changed 6 min into the test
    ]
    assert "constant" in rows[1][5] and "in effect" in rows[0][5]


def test_cross_form_randomised_subject_without_h0_challenge(staging):
    got = staging.findings.filter(pl.col("suite") == "staging_chk_randomised_has_pe_h0")
    assert got.select("subject_id", "event", "form", "severity").rows() == [
        ("01-003", "h0_arm_1", "pe_challenge", "warning")]


def test_typing_failures_become_error_findings(staging):
    got = staging.findings.filter(pl.col("suite") == "staging_typing_failures").row(0, named=True)
    assert (got["subject_id"], got["event"], got["form"], got["field"], got["value"], got["severity"]) == (
        "01-003", "h6_arm_1", "labs", "lactate", "2..1", "error")
    assert "could not be read as number" in got["message"]


def test_dictionary_ranges_generated_only_where_no_suite_file_checks(staging):
    gen = staging.results.filter(pl.col("suite").str.starts_with("staging_dictionary_ranges"))
    # hd_* have physiological ranges (both bounds) in expectations/staging/hemodynamics.json: the file wins;
    # vasopressors.json only says vp_rate >= 0, so the dictionary range [0, 0.6] still runs
    assert sorted(gen["column"].to_list()) == ["vp_rate"]
    assert gen["severity"].to_list() == ["warning"]
    assert findings_of(staging, field="vp_rate") == [("01-003", "icu_arm_1", "2", "vasopressors", "vp_rate", "warning")]


def test_suites_of_absent_tables_are_skipped_and_success_follows_errors(staging):
    skipped = staging.results.filter(pl.col("status") == "skipped")
    assert {"labs", "sofa", "fluids"} <= set(skipped["table"].to_list())
    assert not staging.success
    assert staging.errors == staging.results.filter(
        (pl.col("success") == False) & (pl.col("severity") == "error")).height  # noqa: E712
    assert staging.warnings >= 4


# --------------------------------------------------------------------------------------------- visit windows


def lab_row(subject, event, hrs):
    return {"subject_id": subject, "site_id": "site_01", "event": event, "lab_dt": at(hrs), "lab_dt_hrs": hrs,
            "lactate": 2.0}


def hd_row(subject, inst, hrs):
    return {"subject_id": subject, "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": inst,
            "hd_dt": None if hrs is None else at(hrs), "hd_dt_hrs": hrs, "hd_map": 70, "hd_sbp": 110, "hd_dbp": 50,
            "hd_hr": 90}


def window_tables() -> dict[str, pl.DataFrame]:
    labs = frame([
        lab_row("01-001", "h0_arm_1", -0.5), lab_row("01-001", "h6_arm_1", 6.3), lab_row("01-001", "h24_arm_1", 27.0),
        lab_row("01-001", "day_7_arm_1", 171.5),
        lab_row("01-002", "h0_arm_1", 0.6),        # after the H0 window [-2, 0.5]
        lab_row("01-002", "h6_arm_1", 7.5),        # after the H6 window [5, 7]
        lab_row("01-002", "day_3_arm_1", 60.0),    # before the D3 window [68, 76]
        lab_row("01-002", "icu_arm_1", 30.0),      # not a lab time point
    ], {"lab_dt": pl.Datetime("us"), "lab_dt_hrs": pl.Float64, "lactate": pl.Float64})
    sofa = frame([{"subject_id": "01-001", "event": e, "sofa_total": 8} for e in ("h0_arm_1", "h24_arm_1", "day_2_arm_1")]
                 + [{"subject_id": "01-002", "event": "h6_arm_1", "sofa_total": 8}], {"sofa_total": pl.Int64})
    fluids = frame([{"subject_id": "01-001", "event": e, "fluid_in": 3000.0} for e in ("h24_arm_1", "day_7_arm_1")]
                   + [{"subject_id": "01-002", "event": "h0_arm_1", "fluid_in": 3000.0}], {"fluid_in": pl.Float64})
    hours = [float(h) for h in range(25)]
    hd = frame(
        [hd_row("01-001", i, h) for i, h in enumerate(hours, 1)]                       # on every hour
        + [hd_row("01-002", i, h) for i, h in enumerate(
            [0.0, 1.4, 2.0, 3.0, 3.25, 3.5, 3.75, 4.0, 6.1, None], 1)]                 # H1 late, H5 missing
        + [hd_row("01-003", i, h) for i, h in enumerate([0.0, 1.0, 2.0, 3.0, 3.6], 1)],  # died at 3.6 h: no H4
        {"hd_dt": pl.Datetime("us"), "hd_dt_hrs": pl.Float64, "hd_map": pl.Int64, "hd_sbp": pl.Int64,
         "hd_dbp": pl.Int64, "hd_hr": pl.Int64})
    return {"labs": labs, "sofa": sofa, "fluids": fluids, "hemodynamics": hd}


@pytest.fixture(scope="module")
def windows(gx_loaded):
    return validate_stage("staging", window_tables())


def test_lab_windows_and_schedule_are_warnings(windows):
    got = windows.findings.filter(pl.col("form") == "labs")
    assert sorted(got.select("subject_id", "event", "field", "severity").rows()) == [
        ("01-002", "day_3_arm_1", "lab_dt", "warning"), ("01-002", "h0_arm_1", "lab_dt", "warning"),
        ("01-002", "h6_arm_1", "lab_dt", "warning"), ("01-002", "icu_arm_1", "event", "warning")]
    msg = dict(zip(got["event"], got["message"]))
    assert "outside the D3 window [68, 76] h" in msg["day_3_arm_1"] and "check lab_dt" in msg["day_3_arm_1"]
    assert "not a scheduled lab time point" in msg["icu_arm_1"]


def test_sofa_and_fluids_schedule(windows):
    got = windows.findings.filter(pl.col("form").is_in(["sofa", "fluids"]))
    assert sorted(got.select("subject_id", "event", "form", "field", "severity").rows()) == [
        ("01-002", "h0_arm_1", "fluids", "event", "warning"), ("01-002", "h6_arm_1", "sofa", "event", "warning")]


def test_hourly_hemodynamics_within_their_nominal_hour(windows):
    got = windows.findings.filter(pl.col("suite") == "staging_chk_hemo_hourly")
    # H1 read at 1.4 h; H5 has no reading (the nearest, at 4 h, is instance 8); readings between the hours are
    # allowed; 01-003 is not expected after its last reading (H3); a reading without study time is not placed
    assert sorted(got.select("subject_id", "repeat_instance", "form", "field", "value", "severity").rows()) == [
        ("01-002", "2", "hemodynamics", "hd_dt", "0.4", "warning"),
        ("01-002", "8", "hemodynamics", "hd_dt", "-1", "warning")]
    assert {m.split(" is at")[0] for m in got["message"]} == {"hemodynamics: the reading nearest H1",
                                                             "hemodynamics: the reading nearest H5"}
    assert not windows.findings.filter(pl.col("severity") == "error").height


def test_hemodynamics_window_is_skipped_without_study_time(staging):
    # the staging fixture's hemodynamics has no hd_dt_hrs: the derived table cannot be built
    got = staging.results.filter(pl.col("suite") == "staging_chk_hemo_hourly")
    assert got["status"].to_list() == ["skipped"]
