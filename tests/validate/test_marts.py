"""Marts stage: grain, primary-endpoint completeness, flag value sets, row reconciliation with staging (derived
``chk_*`` tables of warehouse/validate/derived.py)."""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.validate import validate_stage as validate_stage_gx
from warehouse.validate import validate_stage_duckdb

RESULT_KEY = ["suite", "table", "expectation_type", "column", "rule"]


def validate_stage(stage: str, tables: dict[str, pl.DataFrame]):
    """GX on pandas, checked against the same suites pushed down into DuckDB (same results and findings)."""
    gx = validate_stage_gx(stage, tables)
    con = duckdb.connect()
    for name, frame in tables.items():
        con.register(name, frame.to_arrow())
    db = validate_stage_duckdb(stage, con, list(tables))
    assert gx.results.sort(RESULT_KEY, nulls_last=True).to_dicts() == db.results.sort(RESULT_KEY, nulls_last=True).to_dicts()
    assert gx.findings.sort("finding_id").to_dicts() == db.findings.sort("finding_id").to_dicts()
    return gx


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


MART_SUITES = ("marts_adeff", "marts_adae", "marts_adtte", "marts_chk_adeff_peresp", "marts_chk_adae_events",
               "marts_chk_adtte_subjects")


def rule_findings(v, suite: str) -> list[tuple]:
    f = v.findings.filter(pl.col("suite") == suite)
    return sorted(f.select("subject_id", "event", "repeat_instance", "field", "severity").rows(),
                  key=lambda r: tuple("" if x is None else x for x in r))


def test_clean_adsl_passes_and_absent_marts_are_skipped(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND})
    assert v.success and v.findings.height == 0
    skipped = v.results.filter(pl.col("status") == "skipped")
    assert sorted(skipped["suite"].to_list()) == sorted(MART_SUITES)
    rec = v.results.filter(pl.col("suite") == "marts_chk_adsl_randomised")
    assert rec["status"].to_list() == ["passed"] and rec["element_count"].to_list() == [3]


def test_duplicate_usubjid_is_an_error_finding(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS + ["ADRESS-01-002"]), "randomisation": RAND})
    assert not v.success
    dup = v.findings.filter(pl.col("expectation_type") == "expect_column_values_to_be_unique")
    assert dup.select("subject_id", "site_id", "form", "field", "severity").rows() == [
        ("ADRESS-01-002", "01", "adsl", "USUBJID", "error")]
    assert "more than one row" in dup["message"][0]
    # and the randomised subject has two ITT rows for one randomisation record
    rec = v.findings.filter(pl.col("suite") == "marts_chk_adsl_randomised")
    assert rec.select("subject_id", "form", "field", "severity").rows() == [("ADRESS-01-002", "adsl", "ITTFL", "error")]
    assert "2 ITT row(s)" in rec["message"][0]


def test_flags_outside_their_value_sets(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS, SAFFL=["Y", "yes", "N"], DTHFL=["Y", None, "N"]),
                                 "randomisation": RAND})
    got = v.findings.select("subject_id", "field", "value").rows()
    assert sorted(got) == [("ADRESS-01-002", "SAFFL", "yes"), ("ADRESS-02-001", "DTHFL", "N")]


def test_adsl_randomised_subjects_reconcile_with_every_randomisation_record(gx_loaded):
    """ADSL's ITT subjects against the randomisation form itself: a record without rand_dt (which stg_randomisation
    drops, so ADSL says ITTFL = N) and an ITT subject with no record are errors; a screen failure is not."""
    ids = IDS + ["ADRESS-03-001", "ADRESS-03-002"]
    frame = adsl(ids, ITTFL=["Y", "N", "Y", "Y", "N"])  # 01-002: rand_dt missing; 03-001: no record; 03-002: screen failure
    rand = pl.DataFrame({"subject_id": ["01-001", "01-002", "02-001"], "site_id": ["site_01", "site_01", "site_02"],
                         "rand_dt": ["2024-01-01 10:00", None, "2024-01-02 10:00"]})
    stg = rand.filter(pl.col("rand_dt").is_not_null())
    v = validate_stage("marts", {"adsl": frame, "randomisation": rand, "stg_randomisation": stg})
    assert rule_findings(v, "marts_chk_adsl_randomised") == [
        ("ADRESS-01-002", None, None, "ITTFL", "error"), ("ADRESS-03-001", None, None, "ITTFL", "error")]
    assert not v.success
    # a randomisation record of a subject ADSL does not have at all is found too, under the study's USUBJID
    v = validate_stage("marts", {"adsl": adsl(IDS[:2]), "randomisation": RAND})
    assert rule_findings(v, "marts_chk_adsl_randomised") == [("ADRESS-02-001", None, None, "ITTFL", "error")]
    assert "0 ITT row(s)" in v.findings["message"][0] and "1 randomisation form record" in v.findings["message"][0]


def test_adsl_reconciliation_is_skipped_without_a_randomisation_table(gx_loaded):
    v = validate_stage("marts", {"adsl": adsl(IDS)})
    rec = v.results.filter(pl.col("suite") == "marts_chk_adsl_randomised")
    assert rec["status"].to_list() == ["skipped"] and "no such table" in rec["note"][0]


def peresp(rows: list[tuple]) -> pl.DataFrame:
    """(USUBJID, AVISIT, AVAL, MISSRSN) rows of PERESP."""
    return pl.DataFrame({
        "USUBJID": [r[0] for r in rows], "SITEID": [r[0].split("-")[1] for r in rows],
        "PARAMCD": ["PERESP"] * len(rows), "AVISIT": [r[1] for r in rows], "AVAL": [r[2] for r in rows],
        "ABLFL": ["Y" if r[1] == "H0" else None for r in rows], "MISSRSN": [r[3] for r in rows],
    }, schema_overrides={"AVAL": pl.Float64, "MISSRSN": pl.String, "ABLFL": pl.String})


def full(subject: str, h6=1.3, missrsn=None) -> list[tuple]:
    return [(subject, "H0", 1.2, None), (subject, "H6", h6, missrsn), (subject, "H12", 1.4, None)]


def test_adeff_grain_and_flags(gx_loaded):
    rows = full("ADRESS-01-001") + full("ADRESS-01-002") + full("ADRESS-02-001")
    frame = peresp(rows + [("ADRESS-01-002", "H6", 1.1, None)]).with_columns(
        ABLFL=pl.when(pl.col("USUBJID") == "ADRESS-02-001").then(pl.lit("N")).otherwise(pl.col("ABLFL")))
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND, "adeff": frame})
    grain = v.findings.filter(pl.col("expectation_type") == "expect_compound_columns_to_be_unique")
    assert grain.select("subject_id", "event", "repeat_instance", "severity").rows() == [
        ("ADRESS-01-002", "H6", "PERESP", "error")]  # two rows, one finding (same id)
    # and the H6 row count does not reconcile either
    assert rule_findings(v, "marts_chk_adeff_peresp") == [("ADRESS-01-002", "H6", "PERESP", "PARAMCD", "error")]
    # ABLFL is Y or empty: the three rows of 02-001 say N
    ablfl = v.findings.filter(pl.col("field") == "ABLFL")
    assert sorted(ablfl.select("subject_id", "event", "value", "severity").rows()) == [
        ("ADRESS-02-001", avisit, "N", "error") for avisit in ("H0", "H12", "H6")]


H6_ROW = "every ITT subject of ADSL has one primary endpoint row (PERESP at H6) in ADEFF, and no other subject has one"
OTHER_ROWS = "ADEFF has one PERESP row per ITT subject of ADSL at H0 and H12, and none at other time points"
H6_VALUE = "the primary endpoint (PERESP at H6) has a value unless the subject died before H6"


def test_primary_endpoint_row_for_every_itt_subject_and_value_unless_died(gx_loaded):
    rows = (full("ADRESS-01-001", h6=None, missrsn="DIED BEFORE TIME POINT")   # died before H6: exempt
            + full("ADRESS-01-002", h6=None, missrsn="NOT DONE")                # missing value: a warning
            + [r for r in full("ADRESS-02-001") if r[1] != "H6"]                # no H6 row at all: an error
            + full("ADRESS-03-001"))                                            # not an ITT subject of adsl
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND, "adeff": peresp(rows)})
    got = v.findings.filter(pl.col("suite") == "marts_chk_adeff_peresp")
    assert sorted(got.select("subject_id", "event", "field", "severity", "rule").rows()) == sorted([
        ("ADRESS-01-002", "H6", "AVAL", "warning", H6_VALUE),
        ("ADRESS-02-001", "H6", "PARAMCD", "error", H6_ROW),
        ("ADRESS-03-001", "H6", "PARAMCD", "error", H6_ROW),
        ("ADRESS-03-001", "H0", "PARAMCD", "error", OTHER_ROWS),
        ("ADRESS-03-001", "H12", "PARAMCD", "error", OTHER_ROWS),
    ])
    msg = dict(zip(got["subject_id"] + got["event"] + got["field"], got["message"]))
    assert "NOT DONE" in msg["ADRESS-01-002H6AVAL"] and "0 PERESP row(s) at H6" in msg["ADRESS-02-001H6PARAMCD"]
    # the subject who died before H6 is not reported; the one with a value at every time point neither
    assert not v.findings.filter(pl.col("subject_id") == "ADRESS-01-001").height
    assert v.errors == 2 and v.warnings == 1


def test_adeff_rows_at_h0_and_h12_reconcile(gx_loaded):
    rows = full("ADRESS-01-001") + full("ADRESS-01-002")[1:] + full("ADRESS-02-001") + [("ADRESS-02-001", "H24", 1.0, None)]
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND, "adeff": peresp(rows)})
    assert rule_findings(v, "marts_chk_adeff_peresp") == [
        ("ADRESS-01-002", "H0", "PERESP", "PARAMCD", "error"), ("ADRESS-02-001", "H24", "PERESP", "PARAMCD", "error")]


def adtte(rows: list[tuple]) -> pl.DataFrame:
    """(USUBJID, CNSR, DTHD3FL) rows of TTDEATH."""
    n = len(rows)
    return pl.DataFrame({"USUBJID": [r[0] for r in rows], "SITEID": [r[0].split("-")[1] for r in rows],
                         "PARAMCD": ["TTDEATH"] * n, "AVAL": [10.0] * n, "CNSR": [r[1] for r in rows],
                         "DTHD3FL": [r[2] for r in rows], "DTHD28FL": ["N"] * n, "DTHD90FL": [None] * n},
                        schema_overrides={"CNSR": pl.Int32, "DTHD3FL": pl.String, "DTHD90FL": pl.String})


def test_adtte_one_row_per_itt_subject_and_flags(gx_loaded):
    frame = adsl(IDS + ["ADRESS-03-001"], ITTFL=["Y", "Y", "Y", "N"])
    v = validate_stage("marts", {"adsl": frame, "adtte": adtte([
        ("ADRESS-01-001", 0, "Y"), ("ADRESS-01-001", 0, "Y"),   # twice
        ("ADRESS-01-002", 2, "U"),                              # CNSR and DTHD3FL outside their value sets
        ("ADRESS-03-001", 1, None),                             # not an ITT subject; a null flag is allowed
    ])})  # ADRESS-02-001 has no row
    got = sorted(v.findings.select("suite", "subject_id", "field", "severity").rows())
    assert got == [
        ("marts_adtte", "ADRESS-01-001", "USUBJID, PARAMCD", "error"),
        ("marts_adtte", "ADRESS-01-002", "CNSR", "error"),
        ("marts_adtte", "ADRESS-01-002", "DTHD3FL", "error"),
        ("marts_chk_adtte_subjects", "ADRESS-01-001", "PARAMCD", "error"),
        ("marts_chk_adtte_subjects", "ADRESS-02-001", "PARAMCD", "error"),
        ("marts_chk_adtte_subjects", "ADRESS-03-001", "PARAMCD", "error"),
    ]


def stg_ae(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame({"subject_id": [r[0] for r in rows], "site_id": ["site_01"] * len(rows),
                         "repeat_instance": [r[1] for r in rows]}, schema_overrides={"repeat_instance": pl.Int32})


def adae(rows: list[tuple], **over) -> pl.DataFrame:
    """(USUBJID, AESEQ) rows."""
    n = len(rows)
    cols = {"USUBJID": [r[0] for r in rows], "SITEID": [r[0].split("-")[1] for r in rows],
            "AESEQ": [r[1] for r in rows], "TRTEMFL": ["Y"] * n, "AOCCFL": [None] * n, "AOCCSFL": [None] * n,
            "AOCCPFL": [None] * n, "AESER": ["N"] * n}
    cols.update(over)
    return pl.DataFrame(cols, schema_overrides={"AESEQ": pl.Int32, **{c: pl.String for c in cols if c.startswith(("A", "T")) and c != "AESEQ"}})


def test_adae_rows_reconcile_with_staging_adverse_events_of_known_subjects(gx_loaded):
    staging = stg_ae([("01-001", 1), ("01-001", 2), ("01-002", 1), ("09-009", 1)])  # 09-009: not in adsl
    marts = adae([("ADRESS-01-001", 1), ("ADRESS-01-002", 1), ("ADRESS-01-002", 2)])  # 01-001/2 lost; 01-002/2 extra
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND, "adae": marts,
                                 "stg_adverse_events": staging})
    assert rule_findings(v, "marts_chk_adae_events") == [
        ("ADRESS-01-001", None, "2", "AESEQ", "error"), ("ADRESS-01-002", None, "2", "AESEQ", "error")]
    assert "0 row(s) for ADRESS-01-001 AESEQ 2, staging has 1" in v.findings["message"].to_list()[0]
    # without the staging table the reconciliation is skipped, not passed
    v = validate_stage("marts", {"adsl": adsl(IDS), "randomisation": RAND, "adae": marts})
    assert v.results.filter(pl.col("suite") == "marts_chk_adae_events")["status"].to_list() == ["skipped"]


def test_adae_flags_in_their_value_sets(gx_loaded):
    rows = [("ADRESS-01-001", 1), ("ADRESS-01-001", 2), ("ADRESS-01-002", 1), ("ADRESS-02-001", 1)]
    marts = adae(rows, TRTEMFL=["Y", None, "N", "Y"], AOCCFL=["Y", None, None, "N"], AOCCSFL=["Y", None, None, "Y"],
                 AOCCPFL=["Y", None, None, "yes"], AESER=["Y", None, "N", "S"])
    v = validate_stage("marts", {"adsl": adsl(IDS), "adae": marts})
    got = sorted(v.findings.filter(pl.col("suite") == "marts_adae").select("subject_id", "repeat_instance", "field", "value").rows())
    # TRTEMFL is ADaM's record-level flag: Y or empty, so the N is a finding and the empty one is not
    assert got == [("ADRESS-01-002", "1", "TRTEMFL", "N"), ("ADRESS-02-001", "1", "AESER", "S"),
                   ("ADRESS-02-001", "1", "AOCCFL", "N"), ("ADRESS-02-001", "1", "AOCCPFL", "yes")]
