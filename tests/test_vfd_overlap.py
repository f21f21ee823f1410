"""Issue 14 item 13: overlapping ventilation periods are one finding each (warning), on the later period, naming
subject, form ventilation and fields intub_dt / extub_dt; int_vfd counts them once (the hand-computed VFD28 values
are in sql/intermediate/int_vfd.yml). Touching periods (re-intubated at the minute of extubation) and disjoint
ones are no finding. H0 = 2024-03-01 10:00; times below are hours from H0."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from warehouse.validate.derived import chk_ventilation_overlap

H0 = datetime(2024, 3, 1, 10, 0)
SCHEMA = {"subject_id": pl.String, "site_id": pl.String, "event": pl.String, "repeat_instance": pl.Int32,
          "intub_dt": pl.Datetime("us"), "extub_dt": pl.Datetime("us"), "intub_dt_hrs": pl.Float64,
          "extub_dt_hrs": pl.Float64}


def period(subject, inst, intub, extub):
    return {"subject_id": subject, "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": inst,
            "intub_dt": H0 + timedelta(hours=intub), "extub_dt": None if extub is None else H0 + timedelta(hours=extub),
            "intub_dt_hrs": float(intub), "extub_dt_hrs": None if extub is None else float(extub)}


def ventilation() -> pl.DataFrame:
    return pl.DataFrame([
        period("INSIDE", 1, 0, 322.08), period("INSIDE", 2, 100, 148),     # (a) 2 inside 1
        period("PARTIAL", 1, 0, 120), period("PARTIAL", 2, 96, 168),       # (b) 2 starts 24 h before 1 ends
        period("DISJOINT", 1, 0, 48), period("DISJOINT", 2, 72, 96),       # (c) a 24 h gap
        period("TOUCH", 1, 0, 48), period("TOUCH", 2, 48, 120),            # (d) re-intubated at extubation
        period("OPEN", 2, 100, 150), period("OPEN", 1, 24, None),          # 1 never extubated holds 2 (entered first)
        period("CHAIN", 1, 0, 24), period("CHAIN", 2, 24, 72), period("CHAIN", 3, 60, 96),  # 3 inside 2 only
    ], schema=SCHEMA)


def test_the_derived_table_flags_the_later_period_of_an_overlap():
    got = chk_ventilation_overlap({"ventilation": ventilation()}, {})
    flagged = {(r["subject_id"], r["repeat_instance"]): (r["overlaps_earlier"], r["earlier_instance"], r["earlier_end"])
               for r in got.iter_rows(named=True)}
    assert flagged == {
        ("INSIDE", "1"): (False, None, None), ("INSIDE", "2"): (True, "1", "2024-03-14 20:04"),  # 322.08 h = 13 d + 10.08 h = 13 d 10 h 4.8 min after H0
        ("PARTIAL", "1"): (False, None, None), ("PARTIAL", "2"): (True, "1", "2024-03-06 10:00"),  # H120
        ("DISJOINT", "1"): (False, None, None), ("DISJOINT", "2"): (False, "1", "2024-03-03 10:00"),
        ("TOUCH", "1"): (False, None, None), ("TOUCH", "2"): (False, "1", "2024-03-03 10:00"),
        ("OPEN", "1"): (False, None, None), ("OPEN", "2"): (True, "1", "not extubated"),
        ("CHAIN", "1"): (False, None, None), ("CHAIN", "2"): (False, "1", "2024-03-02 10:00"),
        ("CHAIN", "3"): (True, "2", "2024-03-04 10:00"),  # H60 before H72, the end of period 2
    }


def test_a_subject_without_ventilation_rows_and_a_missing_table():
    assert chk_ventilation_overlap({}, {}) is None
    assert chk_ventilation_overlap({"ventilation": ventilation().head(0)}, {}).height == 0


@pytest.fixture(scope="module")
def findings():
    from warehouse.validate import validate_stage
    from warehouse.validate.core import gx_runtime

    gx_runtime()
    v = validate_stage("staging", {"ventilation": ventilation()})
    return v, v.findings.filter(pl.col("suite") == "staging_chk_ventilation_overlap")


def test_the_overlap_is_a_warning_finding_naming_subject_form_and_fields(findings):
    v, f = findings
    assert sorted(f.select("subject_id", "repeat_instance", "severity", "form", "field").rows()) == [
        ("CHAIN", "3", "warning", "ventilation", "intub_dt, extub_dt"),
        ("INSIDE", "2", "warning", "ventilation", "intub_dt, extub_dt"),
        ("OPEN", "2", "warning", "ventilation", "intub_dt, extub_dt"),
        ("PARTIAL", "2", "warning", "ventilation", "intub_dt, extub_dt"),
    ]
    inside = f.filter(pl.col("subject_id") == "INSIDE")["message"][0]
    assert "inside period 1" in inside and "2024-03-14 20:04" in inside
    assert "not extubated" in f.filter(pl.col("subject_id") == "OPEN")["message"][0]
    assert v.success  # a warning: the build still publishes
