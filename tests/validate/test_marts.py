"""Marts stage: grain, primary-endpoint completeness, flag value sets, row reconciliation."""

from __future__ import annotations

import polars as pl

from warehouse.validate import validate_stage


def adsl(ids: list[str], **over) -> pl.DataFrame:
    n = len(ids)
    cols = {"STUDYID": ["ADRESS"] * n, "USUBJID": ids, "SUBJID": [i[-6:] for i in ids],
            "SITEID": [i.split("-")[1] for i in ids], "AGE": [60] * n, "SEX": ["M"] * n, "TRT01P": ["A"] * n,
            "TRT01A": ["A"] * n, "ITTFL": ["Y"] * n, "SAFFL": ["Y"] * n, "DTHFL": [None] * n}
    cols.update(over)
    return pl.DataFrame(cols, schema_overrides={"DTHFL": pl.String})


def randomisation(subjects: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"subject_id": subjects, "site_id": ["site_01"] * len(subjects)})


IDS = ["ADRESS-01-001", "ADRESS-01-002", "ADRESS-02-001"]
RAND = randomisation(["01-001", "01-002", "02-001"])


def test_clean_adsl_passes_and_absent_adeff_is_skipped(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND})
    assert v.success and v.findings.height == 0
    skipped = v.results.filter(pl.col("status") == "skipped")
    assert skipped.select("suite", "table").rows() == [("marts_adeff", "adeff")]
    rc = v.results.filter(pl.col("expectation_type") == "expect_table_row_count_to_equal")
    assert rc["success"].to_list() == [True]


def test_duplicate_usubjid_is_an_error_finding(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS + ["ADRESS-01-002"]), "randomisation": RAND})
    assert not v.success
    dup = v.findings.filter(pl.col("expectation_type") == "expect_column_values_to_be_unique")
    assert dup.select("subject_id", "site_id", "form", "field", "severity").rows() == [
        ("ADRESS-01-002", "01", "adsl", "USUBJID", "error")]
    assert "more than one row" in dup["message"][0]
    # and the row count no longer reconciles with the randomisation form (3 subjects, 4 rows)
    rc = v.findings.filter(pl.col("expectation_type") == "expect_table_row_count_to_equal")
    assert rc["value"].to_list() == ["4"] and rc["subject_id"].to_list() == [None]


def test_flags_outside_their_value_sets(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS, SAFFL=["Y", "yes", "N"], DTHFL=["Y", None, "N"]),
                                 "randomisation": RAND})
    got = v.findings.select("subject_id", "field", "value").rows()
    assert sorted(got) == [("ADRESS-01-002", "SAFFL", "yes"), ("ADRESS-02-001", "DTHFL", "N")]


def test_row_count_is_skipped_without_the_randomisation_table(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS)})
    rc = v.results.filter(pl.col("expectation_type") == "expect_table_row_count_to_equal")
    assert rc["status"].to_list() == ["skipped"] and "n_randomised_subjects" in rc["note"][0]


def test_adeff_grain_and_primary_endpoint_completeness(gx_loaded):
    adeff = pl.DataFrame({
        "USUBJID": ["ADRESS-01-001", "ADRESS-01-001", "ADRESS-01-002", "ADRESS-01-002", "ADRESS-02-001", "ADRESS-02-001"],
        "SITEID": ["01", "01", "01", "01", "02", "02"],
        "PARAMCD": ["PERESP", "PERESP", "PERESP", "PERESP", "PERESP", "PERESP"],
        "AVISIT": ["H0", "H6", "H6", "H6", "H6", "H12"],
        "AVAL": [1.2, 1.3, 1.1, 1.1, None, None],
    })
    v = validate_stage("marts", {"adeff": adeff})
    grain = v.findings.filter(pl.col("expectation_type") == "expect_compound_columns_to_be_unique")
    assert grain.select("subject_id", "event", "repeat_instance", "severity").rows() == [
        ("ADRESS-01-002", "H6", "PERESP", "error")]
    missing = v.findings.filter(pl.col("expectation_type") == "expect_column_values_to_not_be_null")
    # only the H6 value is the primary endpoint: the missing H12 value is not reported
    assert missing.select("subject_id", "event", "severity").rows() == [("ADRESS-02-001", "H6", "warning")]
    assert v.errors == 1 and v.warnings == 1 and not v.success
