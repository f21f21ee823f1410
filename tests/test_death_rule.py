"""Issue 14 item 14: one rule decides death for every mart (sql/intermediate/int_death.sql): a subject is dead when
the vital status is dead or a death date is entered. Each combination of vital status (dead / alive / blank) and
death date (present / absent) is checked in ADSL (DTHFL, DTHDTM), ADTTE (CNSR, AVAL) and the staging findings.

Every subject is randomised at 2024-03-01 10:00 (H0). A death date, when present, is 2024-03-03 10:00 = 48 h after
H0 = 2.0 days. A subject without a death date was last contacted on 2024-03-21 = 20 days after H0's date.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from warehouse.transform.testing import assert_rows, run_model_on

H0 = "2024-03-01 10:00:00"
DEATH = "2024-03-03 10:00:00"  # 48 h after H0
LAST_CONTACT = "2024-03-21"    # 20 days after 2024-03-01 (the subjects neither dead nor dated)

# subject: (vital status code as entered: "2" dead, "1" alive, None blank; death date entered?)
CASES = {
    "DD": ("2", True),    # dead, dated
    "DN": ("2", False),   # dead, no date
    "AD": ("1", True),    # alive, yet a death date
    "AN": ("1", False),   # alive, no date
    "BD": (None, True),   # status blank, a death date
    "BN": (None, False),  # status blank, no date
}


def staged_inputs() -> dict:
    eos = []
    for subject, (status, dated) in CASES.items():
        eos.append({
            "subject_id": subject,
            "dthfl": None if status is None else status == "2",   # as stg_end_of_study stages vital_status
            "dthdtm": DEATH if dated else None,
            "dthdtm_hrs": 48.0 if dated else None,
            "last_contact_dt": None if dated or status == "2" else LAST_CONTACT,
        })
    return {
        "src.build_info": [{"study_id": "ADRESS", "blinded": True, "blinded_label": "Blinded"}],
        "stg_randomisation": [{"subject_id": s, "site_id": "site_01", "randdtm": H0, "kit_no": f"K{s}"}
                              for s in CASES],
        "stg_end_of_study": eos,
        # DN: the last record of a living subject is a lab sample at 2024-03-05 14:00 = 4 d 4 h = 100 h
        "stg_labs": [{"subject_id": "DN", "lbdtm_hrs": 100.0}],
    }


def test_int_death_decides_by_status_or_date_and_names_the_contradiction():
    rows = run_model_on("int_death", {"stg_end_of_study": staged_inputs()["stg_end_of_study"]})
    assert_rows(rows, [
        {"subject_id": "DD", "vital_status": "DEAD", "death_date_entered": True, "dthfl": True,
         "death_status_conflict": None},
        {"subject_id": "DN", "vital_status": "DEAD", "death_date_entered": False, "dthfl": True,
         "death_status_conflict": "DEAD WITHOUT DEATH DATE"},
        {"subject_id": "AD", "vital_status": "ALIVE", "death_date_entered": True, "dthfl": True,
         "death_status_conflict": "ALIVE WITH DEATH DATE"},
        {"subject_id": "AN", "vital_status": "ALIVE", "death_date_entered": False, "dthfl": False,
         "death_status_conflict": None},
        {"subject_id": "BD", "vital_status": None, "death_date_entered": True, "dthfl": True,
         "death_status_conflict": "DEATH DATE WITHOUT STATUS"},
        {"subject_id": "BN", "vital_status": None, "death_date_entered": False, "dthfl": False,
         "death_status_conflict": None},
    ])


def test_a_death_date_that_did_not_type_counts_as_entered():
    # alive, but '2024-03' typed into the death date: a date was entered -> dead by the rule, and a contradiction;
    # whitespace only is no entry (staging keeps the text as entered, trimmed, in death_dt_dtc: null when blank)
    rows = run_model_on("int_death", {
        "stg_end_of_study": [{"subject_id": "AP", "dthfl": False}, {"subject_id": "AW", "dthfl": False}],
        "src.end_of_study": [
            {"subject_id": "AP", "death_dt": None, "death_dt_dtc": "2024-03", "_source_row": 2},
            {"subject_id": "AW", "death_dt": None, "death_dt_dtc": None, "_source_row": 3},
        ],
    })
    assert_rows(rows, [
        {"subject_id": "AP", "dthfl": True, "death_partial": "2024-03", "death_status_conflict": "ALIVE WITH DEATH DATE"},
        {"subject_id": "AW", "dthfl": False, "death_partial": None, "death_status_conflict": None},
    ])


def test_adsl_dthfl_follows_the_rule():
    rows = run_model_on("adsl", staged_inputs())
    assert_rows(rows, [
        {"SUBJID": "DD", "DTHFL": "Y", "DTHDTM": "2024-03-03T10:00:00", "DTHDTF": None, "DTHHRS": 48.0},
        # dead without a date: imputed at the last known alive, H100 = 2024-03-05 14:00, flagged Y / H
        {"SUBJID": "DN", "DTHFL": "Y", "DTHDTM": "2024-03-05T14:00:00", "DTHDTF": "Y", "DTHTMF": "H",
         "DTHHRS": 100.0, "LSTALVDT": "2024-03-05"},
        # the bug: DTHFL was null while DTHDTM was set (ADTTE counted the death): now both say dead
        {"SUBJID": "AD", "DTHFL": "Y", "DTHDTM": "2024-03-03T10:00:00", "DTHHRS": 48.0, "LSTALVDT": "2024-03-03"},
        {"SUBJID": "AN", "DTHFL": None, "DTHDTM": None, "DTHHRS": None, "LSTALVDT": "2024-03-21"},
        {"SUBJID": "BD", "DTHFL": "Y", "DTHDTM": "2024-03-03T10:00:00", "DTHHRS": 48.0, "LSTALVDT": "2024-03-03"},
        {"SUBJID": "BN", "DTHFL": None, "DTHDTM": None, "DTHHRS": None, "LSTALVDT": "2024-03-21"},
    ])


def test_adtte_event_exactly_when_adsl_says_dead():
    inputs = staged_inputs()
    rows = run_model_on("adtte", inputs)
    # dated deaths: AVAL = 48 h / 24 = 2.0 d; DN: imputed at H100 -> 100 / 24 = 4.1667 d;
    # survivors censored at last contact: 2024-03-21 - 2024-03-01 = 20 d
    assert_rows(rows, [
        {"USUBJID": "ADRESS-DD", "CNSR": 0, "AVAL": 2.0, "EVNTDESC": "DEATH", "DTHD3FL": "Y"},
        # DN is known alive until 4.17 d (past day 3: DTHD3FL N) and may have died any time after (DTHD28FL null)
        {"USUBJID": "ADRESS-DN", "CNSR": 0, "AVAL": 100 / 24, "ADTF": "Y", "DTHD3FL": "N", "DTHD28FL": None},
        {"USUBJID": "ADRESS-AD", "CNSR": 0, "AVAL": 2.0, "EVNTDESC": "DEATH"},
        {"USUBJID": "ADRESS-AN", "CNSR": 1, "AVAL": 20.0, "EVNTDESC": "ALIVE AT LAST CONTACT", "DTHD3FL": "N"},
        {"USUBJID": "ADRESS-BD", "CNSR": 0, "AVAL": 2.0, "EVNTDESC": "DEATH"},
        # censored at 20 d: alive at day 3, unknown at day 28
        {"USUBJID": "ADRESS-BN", "CNSR": 1, "AVAL": 20.0, "DTHD3FL": "N", "DTHD28FL": None},
    ], tolerance=1e-9)
    adsl = {r["SUBJID"]: r["DTHFL"] for r in run_model_on("adsl", inputs)}
    assert {r["USUBJID"].split("-")[1]: r["CNSR"] == 0 for r in rows} == {s: f == "Y" for s, f in adsl.items()}


def test_vfd_reads_the_same_rule():
    # every subject ventilated [0, 24] h = 1 d: dead by day 28 -> VFD 0, else 28 - 1 = 27
    inputs = staged_inputs()
    inputs["stg_ventilation"] = [{"subject_id": s, "repeat_instance": 1, "intub_hrs": 0.0, "extub_hrs": 24.0}
                                 for s in CASES]
    rows = run_model_on("int_vfd", inputs)
    assert_rows(rows, [
        {"subject_id": "DD", "vfd28": 0.0}, {"subject_id": "DN", "vfd28": 0.0}, {"subject_id": "AD", "vfd28": 0.0},
        {"subject_id": "AN", "vfd28": 27.0}, {"subject_id": "BD", "vfd28": 0.0}, {"subject_id": "BN", "vfd28": 27.0},
    ])


# -- the finding ------------------------------------------------------------------------------------------------


def end_of_study_frame() -> pl.DataFrame:
    rows = [{"subject_id": s, "site_id": "site_01", "event": "end_of_study_arm_1", "repeat_instance": None,
             "vital_status": status, "death_dt": datetime(2024, 3, 3, 10) if dated else None,
             "death_dt_hrs": 48.0 if dated else None}
            for s, (status, dated) in CASES.items()]
    return pl.DataFrame(rows, schema={"subject_id": pl.String, "site_id": pl.String, "event": pl.String,
                                      "repeat_instance": pl.Int32, "vital_status": pl.String,
                                      "death_dt": pl.Datetime("us"), "death_dt_hrs": pl.Float64})


@pytest.fixture(scope="module")
def staging_findings(gx_loaded):
    from warehouse.validate import validate_stage

    return validate_stage("staging", {"end_of_study": end_of_study_frame()}).findings


@pytest.fixture(scope="session")
def gx_loaded():
    from warehouse.validate.core import gx_runtime

    return gx_runtime()


def test_each_contradiction_is_one_finding_with_its_severity(staging_findings):
    death = staging_findings.filter(
        pl.col("suite").is_in(["staging_chk_death_status", "staging_end_of_study"])
        & pl.col("rule").str.contains("vital_status")
    )
    got = sorted(death.select("subject_id", "severity", "form", "field", "suite").rows())
    assert got == [
        # alive with a date: the two entries contradict each other -> error (blocks publishing)
        ("AD", "error", "end_of_study", "vital_status, death_dt", "staging_chk_death_status"),
        # blank status with a date: analysed as dead from the date -> warning
        ("BD", "warning", "end_of_study", "vital_status, death_dt", "staging_chk_death_status"),
        # dead without a date: imputed (DTHDTF = Y) -> warning of the end_of_study suite
        ("DN", "warning", "end_of_study", "death_dt", "staging_end_of_study"),
    ]
    ad = death.filter(pl.col("subject_id") == "AD")["message"][0]
    assert "alive" in ad and "2024-03-03" in ad
