"""Clinical derivations, end to end from eCRF text: every expected value below was computed by hand.

Each scenario is written as a site would enter it (raw text in the demo study's eCRF), then staged with Polars
and run through every SQL model, so a test covers typing, salt conversion, study time and the SQL together.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.extract import read_raw_form, read_raw_meta
from warehouse.transform.testing import assert_rows, run_model_on
from warehouse.transform.runner import run_models
from warehouse.build import BuildRequest
from warehouse.stage.load import write_sources
from warehouse.resources import sql_dir
from warehouse.stage.typed import stage_forms
from warehouse.study import load_study

FORMS = ["eligibility", "demographics", "randomisation", "study_drug", "hemodynamics", "vasopressors",
         "pe_challenge", "labs", "sofa", "fluids", "ventilation", "adverse_events", "end_of_study"]


@dataclasses.dataclass
class Template:
    columns: dict[str, list[str]]
    items: pl.DataFrame
    choices: pl.DataFrame


@pytest.fixture(scope="module")
def template(demo_build) -> Template:
    """The demo eCRF's forms, columns and metadata, taken from a real demo export's raw zone."""
    data_dir = demo_build.published.parents[1]
    columns = {f: read_raw_form(data_dir, demo_build.export_id, f).columns for f in FORMS}
    return Template(
        columns=columns,
        items=read_raw_meta(data_dir, demo_build.export_id, "items"),
        choices=read_raw_meta(data_dir, demo_build.export_id, "choices"),
    )


def build_scenario(tmp_path: Path, template: Template, forms: dict[str, list[dict]], study=None):
    """Stage raw eCRF rows and run every model; returns a connection to the scenario's build."""
    study = study or load_study()
    raw = {}
    for form, columns in template.columns.items():
        rows = [{"site_id": "site_01", **row} for row in forms.get(form, [])]
        raw[form] = pl.DataFrame(
            [{c: row.get(c) for c in columns} for row in rows], schema={c: pl.Utf8 for c in columns}
        )
    staged = stage_forms(raw, template.items, template.choices, study)
    arms = tmp_path / "randomisation.csv"
    arms.write_text("kit_no,arm,arm_label\nK001,DEX,Dexmedetomidine\nK002,PBO,Placebo\n", encoding="utf-8")
    build_file = tmp_path / "scenario.duckdb"
    request = BuildRequest(data_dir=tmp_path, blinded=False, study=study)
    write_sources(build_file, staged, request, "scenario", "scenario", arms)
    con = duckdb.connect(str(build_file))
    run_models(con, sql_dir())
    return con


def rand(subject: str, when: str, kit: str = "K001") -> dict:
    return {"subject_id": subject, "event": "h0_arm_1", "rand_dt": when, "kit_no": kit}


def eos(subject: str, death: str | None = None, last_contact: str | None = None) -> dict:
    return {"subject_id": subject, "event": "end_of_study_arm_1", "vital_status": "2" if death else "1",
            "death_dt": death, "last_contact_dt": last_contact}


def repeating(subject: str, instance: int, **values) -> dict:
    return {"subject_id": subject, "event": "icu_arm_1", "repeat_instance": str(instance), **values}


def ne(subject: str, instance: int, when: str, rate: str, salt: str) -> dict:
    return repeating(subject, instance, vp_drug="1", vp_dt=when, vp_rate=rate, vp_unit="1", vp_salt=salt)


# Subject A: randomised 2019-06-03 10:00 (H0); study drug 10:30 to next day 10:30; alive at day 90.
# Subject B: randomised 2019-06-10 08:00, died 4 h later.
# Subject C: randomised 2019-07-01 10:00, still ventilated, last seen on day 19; NE already stopped at H0.
# Subjects E and F: died exactly 72 h and 73 h after H0.
SCENARIO = {
    "randomisation": [
        rand("A", "2019-06-03 10:00"),
        rand("B", "2019-06-10 08:00", "K002"),
        rand("C", "2019-07-01 10:00"),
        rand("E", "2019-08-01 10:00"),
        rand("F", "2019-08-01 10:00"),
    ],
    "study_drug": [
        repeating("A", 1, drug_start_dt="2019-06-03 10:30", drug_stop_dt="2019-06-04 10:30", drug_rate="5",
                  drug_stop_reason="4"),
    ],
    "end_of_study": [
        eos("A", last_contact="2019-09-01"),
        eos("B", death="2019-06-10 12:00"),
        eos("C", last_contact="2019-07-20"),
        eos("E", death="2019-08-04 10:00"),
        eos("F", death="2019-08-04 11:00"),
    ],
    "vasopressors": [
        # A: NE labelled as tartrate (x 0.5): 0.6 -> 0.3 base from H-1, 1.0 -> 0.5 at H2, 0.4 -> 0.2 at H23, 0 at H30
        ne("A", 1, "2019-06-03 09:00", "0.6", "2"),
        ne("A", 2, "2019-06-03 12:00", "1.0", "2"),
        ne("A", 3, "2019-06-04 09:00", "0.4", "2"),
        ne("A", 4, "2019-06-04 16:00", "0", "2"),
        repeating("A", 5, vp_drug="2", vp_dt="2019-06-03 15:00", vp_rate="0.05", vp_unit="1"),  # epinephrine
        # B: NE as base, 0.8 from H-1, never changed, died at H4
        ne("B", 1, "2019-06-10 07:00", "0.8", "1"),
        # C: NE stopped before H0
        ne("C", 1, "2019-07-01 06:00", "0.2", "1"),
        ne("C", 2, "2019-07-01 09:00", "0", "1"),
    ],
    "hemodynamics": [
        repeating("A", 1, hd_dt="2019-06-03 10:00", hd_map="70", hd_hr="90"),
        repeating("A", 2, hd_dt="2019-06-03 11:00", hd_map="72", hd_hr="60"),
        repeating("A", 3, hd_dt="2019-06-03 12:00", hd_map="75", hd_hr="48"),
        repeating("A", 4, hd_dt="2019-06-03 13:00", hd_map="74", hd_hr="52"),
        repeating("A", 5, hd_dt="2019-06-03 14:00", hd_map="73", hd_hr="47"),
        repeating("A", 6, hd_dt="2019-06-03 15:00", hd_map="71", hd_hr="46"),
        repeating("A", 7, hd_dt="2019-06-04 12:00", hd_map="80", hd_hr="40"),  # H26: outside H0-H24 and infusion
        repeating("C", 1, hd_dt="2019-07-01 10:10", hd_map="80", hd_hr="85"),
    ],
    "pe_challenge": [
        {"subject_id": "A", "event": "h0_arm_1", "pe_dt": "2019-06-03 09:50", "pe_map_before": "70",
         "pe_map_max": "91", "pe_ne_rate": "0.6", "pe_aborted": "0"},
        {"subject_id": "A", "event": "h6_arm_1", "pe_dt": "2019-06-03 16:00", "pe_map_before": "80",
         "pe_map_max": "100", "pe_ne_rate": "1.0", "pe_aborted": "0"},
        {"subject_id": "B", "event": "h0_arm_1", "pe_dt": "2019-06-10 07:55", "pe_map_before": "65",
         "pe_map_max": "91", "pe_ne_rate": "0.8", "pe_aborted": "0"},
    ],
    "labs": [
        {"subject_id": "A", "event": "h0_arm_1", "lab_dt": "2019-06-03 10:00", "lactate": "4.0", "pao2": "80",
         "fio2": "0.5", "platelets": "90", "bilirubin": "40", "creatinine": "180"},
        {"subject_id": "A", "event": "h6_arm_1", "lab_dt": "2019-06-03 16:00", "lactate": "3.0"},
        {"subject_id": "A", "event": "h12_arm_1", "lab_dt": "2019-06-03 22:00", "lactate": "5.0"},
        {"subject_id": "A", "event": "day_2_arm_1", "lab_dt": "2019-06-05 10:00", "lactate": "2.0"},
    ],
    "sofa": [
        {"subject_id": "A", "event": "h0_arm_1", "gcs": "8", "sofa_total": "15"},
    ],
    "fluids": [
        {"subject_id": "A", "event": "h24_arm_1", "fluid_in": "3000", "fluid_out": "1000", "urine_out": "800"},
        {"subject_id": "A", "event": "day_2_arm_1", "fluid_in": "2000", "fluid_out": "2500", "urine_out": "900"},
        {"subject_id": "A", "event": "day_4_arm_1", "fluid_in": "1000", "fluid_out": "500", "urine_out": "400"},
    ],
    "ventilation": [
        # A: intubated before H0, extubated at H72 (3 days from H0), re-intubated H120 to H168 (2 days)
        repeating("A", 1, intub_dt="2019-06-02 22:00", extub_dt="2019-06-06 10:00"),
        repeating("A", 2, intub_dt="2019-06-08 10:00", extub_dt="2019-06-10 10:00"),
        repeating("B", 1, intub_dt="2019-06-09 20:00"),
        repeating("C", 1, intub_dt="2019-07-01 06:00"),
    ],
    "adverse_events": [
        repeating("A", 1, ae_term="brady", ae_decod="Bradycardia", ae_bodsys="Cardiac disorders",
                  ae_start_dt="2019-06-02 20:00", ae_serious="0"),
        repeating("A", 2, ae_term="brady", ae_decod="Bradycardia", ae_bodsys="Cardiac disorders",
                  ae_start_dt="2019-06-05 10:30", ae_serious="1", ae_ser_crit="2", ae_aesi="1",
                  ae_action="3", ae_outcome="2", ae_rel="4", ae_end_dt="2019-06-06 08:00"),
        repeating("A", 3, ae_term="af", ae_decod="Atrial fibrillation", ae_bodsys="Cardiac disorders",
                  ae_start_dt="2019-06-05 10:31", ae_serious="0", ae_aesi="3"),
        repeating("A", 4, ae_term="slow HR", ae_decod="Bradycardia", ae_bodsys="Cardiac disorders",
                  ae_start_dt="2019-06-03 10:30", ae_end_dt="2019-06-03 12:00", ae_serious="0"),
        repeating("A", 5, ae_term="low BP", ae_decod="Hypotension", ae_bodsys="Vascular disorders",
                  ae_start_dt="2019-06", ae_serious="0"),
        repeating("A", 6, ae_term="rash", ae_decod="Rash", ae_bodsys="Skin disorders", ae_start_dt="2019-05",
                  ae_serious="0"),
        repeating("A", 7, ae_term="brady again", ae_decod="Bradycardia", ae_bodsys="Cardiac disorders",
                  ae_start_dt="2019-06-03", ae_serious="0"),
    ],
}


@pytest.fixture(scope="module")
def scenario(template, tmp_path_factory):
    return build_scenario(tmp_path_factory.mktemp("scenario"), template, SCENARIO)


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


# -- norepinephrine -----------------------------------------------------------------------------------------


def test_ne_cumulative_across_the_24h_boundary_with_salt_conversion(scenario):
    # A, tartrate: 0.3 x 120 min + 0.5 x 1260 min + 0.2 x 60 min = 36 + 630 + 12 = 678 µg/kg in 24 h;
    # 48 h adds 0.2 x 360 min (H24-H30) = 72, then 0: 750 µg/kg. Epinephrine does not count.
    got = rows(scenario, "select window_hrs, cum_ne, peak_ne from int_ne_exposure where subject_id = 'A' order by 1")
    assert [(w, round(c, 6), round(p, 6)) for w, c, p in got] == [(24.0, 678.0, 0.5), (48.0, 750.0, 0.5)]


def test_ne_open_segment_ends_at_death(scenario):
    # B: 0.8 base from before H0, never stopped, died at H4: 0.8 x 240 min = 192 µg/kg in both windows.
    got = rows(scenario, "select window_hrs, round(cum_ne, 6), peak_ne from int_ne_exposure where subject_id = 'B' order by 1")
    assert got == [(24.0, 192.0, 0.8), (48.0, 192.0, 0.8)]


def test_ne_stopped_before_h0_has_zero_exposure(scenario):
    # C: 0.2 from H-4 to H-1, then 0: nothing runs inside the windows, and the exposure is a known 0.
    got = rows(scenario, "select window_hrs, cum_ne, peak_ne from int_ne_exposure where subject_id = 'C' order by 1")
    assert got == [(24.0, 0.0, 0.0), (48.0, 0.0, 0.0)]


def test_map_ne_ratio_and_zero_ne(scenario):
    # A at H0: MAP 70 / 0.3 = 233.33; at H2: MAP 75 / 0.5 = 150. C: NE 0 at H0 -> ratio null.
    got = rows(scenario, "select subject_id, hour, ne_base, round(map_ne_ratio, 2) from int_hemo_hourly "
                         "where (subject_id = 'A' and hour in (0, 2)) or (subject_id = 'C' and hour = 0) order by 1, 2")
    assert got == [("A", 0, 0.3, 233.33), ("A", 2, 0.5, 150.0), ("C", 0, 0.0, None)]


def test_baseline_ne_in_adsl_is_the_rate_running_at_h0(scenario):
    assert rows(scenario, "select SUBJID, NEBL from adsl where SUBJID in ('A', 'B', 'C') order by 1") == [
        ("A", 0.3), ("B", 0.8), ("C", 0.0)
    ]


# -- PE response --------------------------------------------------------------------------------------------


def test_pe_response_ratio_baseline_and_change(scenario):
    # A: H0 91/70 = 1.3; H6 100/80 = 1.25, BASE 1.3, CHG -0.05; H12 not done (alive).
    got = rows(scenario, "select AVISIT, round(AVAL, 4), ABLFL, round(BASE, 4), round(CHG, 4), MISSRSN from adeff "
                         "where USUBJID = 'ADRESS-A' and PARAMCD = 'PERESP' order by AVISITN")
    assert got == [("H0", 1.3, "Y", 1.3, None, None), ("H6", 1.25, None, 1.3, -0.05, None),
                   ("H12", None, None, 1.3, None, "NOT DONE")]


def test_pe_missing_at_h6_because_the_subject_died(scenario):
    # B died at H4: H6 and H12 have no challenge, and the reason says so.
    got = rows(scenario, "select AVISIT, AVAL, MISSRSN from adeff where USUBJID = 'ADRESS-B' and PARAMCD = 'PERESP' "
                         "order by AVISITN")
    assert got == [("H0", 1.4, None), ("H6", None, "DIED BEFORE TIME POINT"), ("H12", None, "DIED BEFORE TIME POINT")]


# -- ventilator-free days -----------------------------------------------------------------------------------


def test_vfd_counts_reintubation(scenario):
    # A: ventilated H0-H72 (3 d; the hours before H0 do not count) and H120-H168 (2 d): VFD28 = 28 - 5 = 23.
    assert rows(scenario, "select vent_days, vfd28 from int_vfd where subject_id = 'A'") == [(5.0, 23.0)]


def test_vfd_is_zero_when_dead_by_day_28(scenario):
    assert rows(scenario, "select dead_by_d28, vfd28 from int_vfd where subject_id = 'B'") == [(True, 0.0)]


def test_vfd_is_zero_when_ventilated_throughout(scenario):
    # C: never extubated: 28 days on the ventilator -> 0, never below 0.
    assert rows(scenario, "select vent_days, vfd28 from int_vfd where subject_id = 'C'") == [(28.0, 0.0)]


# -- mortality and time to death ----------------------------------------------------------------------------


def test_time_to_death_and_landmarks(scenario):
    got = rows(scenario, "select USUBJID, round(AVAL, 4), CNSR, DTHD3FL, DTHD28FL, DTHD90FL from adtte order by 1")
    assert got == [
        ("ADRESS-A", 90.0, 1, "N", "N", "N"),  # alive at last contact 2019-09-01, 90 days after 2019-06-03
        ("ADRESS-B", round(4 / 24, 4), 0, "Y", "Y", "Y"),  # died at H4
        ("ADRESS-C", 19.0, 1, "N", None, None),  # censored on day 19: status at day 28 and 90 unknown
        ("ADRESS-E", 3.0, 0, "Y", "Y", "Y"),  # died at exactly 72 h: within day 3
        ("ADRESS-F", round(73 / 24, 4), 0, "N", "Y", "Y"),  # 73 h: after day 3
    ]


# -- adverse events -----------------------------------------------------------------------------------------


def test_adverse_event_emergence_study_day_and_imputation(scenario):
    got = rows(scenario, "select AESEQ, strftime(ASTDTM, '%Y-%m-%d %H:%M'), ASTDTF, ASTTMF, ASTDY, TRTEMFL from adae "
                         "where USUBJID = 'ADRESS-A' order by AESEQ")
    # first dose 2019-06-03 10:30; last stop 2019-06-04 10:30; window 24 h -> TEAE up to 2019-06-05 10:30
    assert got == [
        # TRTEMFL is ADaM's record-level flag: Y, or null when not treatment-emergent
        (1, "2019-06-02 20:00", None, None, -1, None),  # before the first dose: day -1, no day 0
        (2, "2019-06-05 10:30", None, None, 3, "Y"),  # exactly on the window's edge
        (3, "2019-06-05 10:31", None, None, 3, None),  # one minute past it
        (4, "2019-06-03 10:30", None, None, 1, "Y"),  # at the first dose: day 1
        (5, "2019-06-03 10:30", "D", "H", 1, "Y"),  # "2019-06" covers the first dose: imputed to it
        (6, "2019-05-01 00:00", "D", "H", -33, None),  # "2019-05": earliest possible day, 33 days before
        # date without time on the first-dose day: only the time is imputed, so ASTTMF (not ASTDTF) says so
        (7, "2019-06-03 10:30", None, "H", 1, "Y"),
    ]


def test_adverse_event_first_occurrence_flags(scenario):
    got = rows(scenario, "select AESEQ, AOCCFL, AOCCSFL, AOCCPFL from adae where USUBJID = 'ADRESS-A' "
                         "and TRTEMFL = 'Y' order by AESEQ")
    # TEAEs in time order: 4, 5, 7 (all at 10:30 on day 1, instance order breaks the tie), then 2
    assert got == [(2, None, None, None), (4, "Y", "Y", "Y"), (5, None, "Y", "Y"), (7, None, None, None)]


def test_adverse_event_seriousness_and_special_interest(scenario):
    got = rows(scenario, "select AESEQ, AESER, AESLIFE, AESDTH, AESIFL, AESICAT from adae where USUBJID = 'ADRESS-A' "
                         "and AESEQ in (1, 2, 3) order by AESEQ")
    assert got == [(1, "N", None, None, "N", None), (2, "Y", "Y", "N", "Y", "bradycardia"),
                   (3, "N", None, None, "Y", "atrial fibrillation")]


def test_adverse_event_codes_as_cdisc_terms_and_dates(scenario):
    # A's event 2 as the site coded it: action 3 (interrupted), outcome 2 (recovering), relationship 4 (probable),
    # mapped by study.toml's aeacn_terms / aeout_terms / aerel_terms; event 1 has no code: no term
    got = rows(scenario, "select AESEQ, AEACN, AEOUT, AEREL, ASTDT, AENDT, AENDY from adae where USUBJID = 'ADRESS-A' "
                         "and AESEQ in (1, 2) order by AESEQ")
    assert got == [(1, None, None, None, date(2019, 6, 2), None, None),
                   (2, "DRUG INTERRUPTED", "RECOVERING/RESOLVING", "PROBABLY RELATED", date(2019, 6, 5),
                    date(2019, 6, 6), 4)]


# -- bradycardia ----------------------------------------------------------------------------------------------


def test_bradycardia_episodes(scenario):
    # A's HR: 90, 60, 48, 52, 47, 46 in H0-H5 (and 40 at H26, outside both periods). Below 50: runs [48] and
    # [47, 46] -> 2 episodes with the default minimum of 1 reading. B has no reading: unknown.
    got = rows(scenario, "select subject_id, period, readings, episodes, brady from int_bradycardia "
                         "where subject_id in ('A', 'B') order by 1, 2")
    assert got == [("A", "H0-H24", 6, 2, True), ("A", "ON-TREATMENT", 5, 2, True),
                   ("B", "H0-H24", 0, 0, None), ("B", "ON-TREATMENT", 0, 0, None)]


def test_bradycardia_minimum_run_is_a_study_parameter(template, tmp_path):
    study = dataclasses.replace(load_study(), bradycardia_min_readings=2)
    con = build_scenario(tmp_path, template, SCENARIO, study=study)
    # only [47, 46] lasts 2 readings
    assert rows(con, "select episodes from int_bradycardia where subject_id = 'A' and period = 'H0-H24'") == [(1,)]


# -- lactate, fluids, SOFA ----------------------------------------------------------------------------------


def test_lactate_clearance(scenario):
    got = rows(scenario, "select visit, lactate, clearance_pct from int_lactate where subject_id = 'A' "
                         "order by nominal_hrs")
    # (4 - 3) / 4 = 25 %; (4 - 5) / 4 = -25 %; no clearance reported at D2
    assert got == [("H0", 4.0, None), ("H6", 3.0, 25.0), ("H12", 5.0, -25.0), ("D2", 2.0, None)]


def test_fluid_balance_daily_and_cumulative(scenario):
    got = rows(scenario, "select day, balance_ml, cumulative_ml from int_fluid_balance where subject_id = 'A' "
                         "order by day")
    # day 3 missing: the running total is unknown from then on
    assert got == [(1, 2000.0, 2000.0), (2, -500.0, 1500.0), (4, 500.0, None)]


def test_sofa_derived_from_inputs_and_checked_against_the_site(scenario):
    got = rows(scenario, "select pf_ratio, ventilated, sofa_resp_d, sofa_coag_d, sofa_liver_d, sofa_cardio_d, "
                         "sofa_cns_d, sofa_renal_d, sofa_total_d, sofa_total_site, sofa_agrees "
                         "from int_sofa_derived where subject_id = 'A' and visit = 'H0'")
    # PaO2/FiO2 80/0.5 = 160 while ventilated -> 3; platelets 90 -> 2; bilirubin 40 -> 2; NE 0.3 > 0.1 -> 4;
    # GCS 8 -> 3; creatinine 180 -> 2: total 16, the site entered 15.
    assert got == [(160.0, True, 3, 2, 2, 4, 3, 2, 16, 15, False)]


def test_adsl_flags_and_treatment(scenario):
    got = rows(scenario, "select SUBJID, TRT01P, TRT01A, ITTFL, SAFFL, DTHFL from adsl order by 1")
    assert got[:3] == [("A", "Dexmedetomidine", "Dexmedetomidine", "Y", "Y", None),
                       ("B", "Placebo", None, "Y", "N", "Y"),
                       ("C", "Dexmedetomidine", None, "Y", "N", None)]


def test_adsl_arms_numbers_and_dates(scenario):
    # A: kit K001 (DEX, the first arm of study.toml: 1), dosed 2019-06-03 10:30 to 2019-06-04 10:30; B: K002 (PBO,
    # 2), never dosed (died at H4); C: K001, never dosed
    got = rows(scenario, "select SUBJID, ARM, ACTARM, ARMNRS, TRT01PN, TRT01AN, RANDDT, TRTSDT, TRTEDT, RACE, ETHNIC "
                         "from adsl where SUBJID in ('A', 'B', 'C') order by 1")
    assert got == [
        ("A", "Dexmedetomidine", "Dexmedetomidine", None, 1, 1, date(2019, 6, 3), date(2019, 6, 3), date(2019, 6, 4),
         None, None),
        ("B", "Placebo", None, "ASSIGNED, NOT TREATED", 2, None, date(2019, 6, 10), None, None, None, None),
        ("C", "Dexmedetomidine", None, "ASSIGNED, NOT TREATED", 1, None, date(2019, 7, 1), None, None, None, None),
    ]


def test_adeff_visit_numbers_actual_time_and_study_day(scenario):
    # A's SOFA at H0: the H0 lab sample at 2019-06-03 10:00 = H0 + 0 h, on the first dose's date: day 1; each
    # AVISIT has one AVISITN, the windows their own (1000 + end hour), not 24 and 48 (H24's and D2's)
    got = rows(scenario, "select PARAMCD, AVISIT, AVISITN, ARELTM, ARELTMU, ADTM, ADT, ATM, ADY, TRTP, TRTA "
                         "from adeff where USUBJID = 'ADRESS-A' and PARAMCD in ('SOFA', 'NECUM') order by 1, 3")
    assert got == [
        ("NECUM", "H0-H24", 1024.0, None, None, None, None, None, None, "Dexmedetomidine", "Dexmedetomidine"),
        ("NECUM", "H0-H48", 1048.0, None, None, None, None, None, None, "Dexmedetomidine", "Dexmedetomidine"),
        ("SOFA", "H0", 0.0, 0.0, "HOURS", datetime(2019, 6, 3, 10, 0), date(2019, 6, 3), time(10, 0), 1,
         "Dexmedetomidine", "Dexmedetomidine"),
    ]
    # the actual time of A's PE challenges (H0 at 09:50, H6 at 16:00) and lactate samples (10:00, 16:00, 22:00,
    # D2 2019-06-05 10:00 = H48: day 3)
    got = rows(scenario, "select PARAMCD, AVISIT, round(ARELTM, 4), ADTM, ADY from adeff where USUBJID = 'ADRESS-A' "
                         "and PARAMCD in ('PERESP', 'LACT') and ADTM is not null order by 1, AVISITN")
    assert got == [
        ("LACT", "H0", 0.0, datetime(2019, 6, 3, 10, 0), 1), ("LACT", "H6", 6.0, datetime(2019, 6, 3, 16, 0), 1),
        ("LACT", "H12", 12.0, datetime(2019, 6, 3, 22, 0), 1), ("LACT", "D2", 48.0, datetime(2019, 6, 5, 10, 0), 3),
        ("PERESP", "H0", round(-10 / 60, 4), datetime(2019, 6, 3, 9, 50), 1),
        ("PERESP", "H6", 6.0, datetime(2019, 6, 3, 16, 0), 1),
    ]
    # across the demo's parameters, AVISIT and AVISITN are one-to-one
    n = rows(scenario, "select count(distinct AVISIT) from adeff")[0][0]
    assert n > 5
    assert rows(scenario, "select count(distinct AVISITN), count(distinct (AVISIT, AVISITN)) from adeff") == [(n, n)]


def test_adsl_death_date_beside_the_date_time(scenario):
    # B died 2019-06-10 12:00, entered in full: DTHDT is its date and nothing is flagged as imputed.
    assert rows(scenario, "select SUBJID, DTHDTM, DTHDT, DTHDTF, DTHTMF, DTHHRS from adsl where DTHFL = 'Y' "
                          "and SUBJID = 'B'") == [
        ("B", datetime(2019, 6, 10, 12, 0), date(2019, 6, 10), None, None, 4.0)
    ]


def test_adtte_origin_and_event_or_censoring_dates(scenario):
    got = rows(scenario, "select USUBJID, STARTDTM, STARTDT, ADTM, ADT, ADTF, ATMF from adtte "
                         "where USUBJID in ('ADRESS-A', 'ADRESS-B') order by 1")
    assert got == [
        # A: censored at last contact, a date: ADT 2019-09-01, taken at H0's time of day (10:00, ATMF H), so that
        # AVAL = ADTM - STARTDTM is the rule for censored subjects as for deaths (90.0 days, as before)
        ("ADRESS-A", datetime(2019, 6, 3, 10, 0), date(2019, 6, 3), datetime(2019, 9, 1, 10, 0), date(2019, 9, 1),
         None, "H"),
        # B: died 2019-06-10 12:00
        ("ADRESS-B", datetime(2019, 6, 10, 8, 0), date(2019, 6, 10), datetime(2019, 6, 10, 12, 0),
         date(2019, 6, 10), None, None),
    ]


def test_adeff_time_points_within_the_day(scenario):
    got = rows(scenario, "select PARAMCD, AVISIT, ATPT, ATPTN from adeff where USUBJID = 'ADRESS-A' and PARAMCD in "
                         "('PERESP', 'MAPNE', 'LACT', 'LACTCLR', 'NECUM', 'SOFA') order by PARAMCD, AVISITN, AVISIT")
    # time-point parameters carry ATPT = the hour visit; a day (LACT at D2), a window (NECUM H0-H24) and a daily
    # parameter (SOFA, even at H0) do not
    assert got == [
        ("LACT", "H0", "H0", 0.0), ("LACT", "H6", "H6", 6.0), ("LACT", "H12", "H12", 12.0), ("LACT", "D2", None, None),
        ("LACTCLR", "H6", "H6", 6.0), ("LACTCLR", "H12", "H12", 12.0),
        ("MAPNE", "H0", "H0", 0.0), ("MAPNE", "H6", "H6", 6.0), ("MAPNE", "H12", "H12", 12.0),
        ("MAPNE", "H24", "H24", 24.0),
        ("NECUM", "H0-H24", None, None), ("NECUM", "H0-H48", None, None),
        ("PERESP", "H0", "H0", 0.0), ("PERESP", "H6", "H6", 6.0), ("PERESP", "H12", "H12", 12.0),
        ("SOFA", "H0", None, None),
    ]


def test_adsl_keeps_a_subject_with_only_an_eligibility_form():
    # S9 was screened (eligibility form only, not eligible) and never randomised; S1 was randomised and dosed.
    rows_ = run_model_on("adsl", {
        "src.build_info": [{"study_id": "ADRESS", "blinded": False, "blinded_label": "Blinded"}],
        "src.randomisation_list": [{"kit_no": "K001", "arm": "DEX", "arm_label": "Dexmedetomidine"}],
        "stg_eligibility": [{"subject_id": "S1", "site_id": "site_01", "eligible": True},
                            {"subject_id": "S9", "site_id": "site_02", "eligible": False}],
        "stg_demographics": [{"subject_id": "S1", "site_id": "site_01", "age": 61}],
        "stg_randomisation": [{"subject_id": "S1", "site_id": "site_01", "randdtm": "2024-03-01 10:00:00",
                               "kit_no": "K001"}],
        "stg_study_drug": [{"subject_id": "S1", "exstdtm": "2024-03-01 10:30:00", "exstdtm_hrs": 0.5}],
    })
    assert_rows(rows_, [
        {"USUBJID": "ADRESS-S1", "SITEID": "01", "AGE": 61, "TRT01P": "Dexmedetomidine", "ITTFL": "Y", "SAFFL": "Y"},
        # screen failure: in ADSL, in no analysis population, no planned or actual treatment
        {"USUBJID": "ADRESS-S9", "SITEID": "02", "AGE": None, "TRT01P": None, "TRT01A": None, "RANDDTM": None,
         "ITTFL": "N", "SAFFL": "N"},
    ])


def test_adsl_screen_failure_is_not_masked_as_blinded():
    # in a blinded build a screen failure still has no TRT01P (not the 'Blinded' label: it was never allocated)
    rows_ = run_model_on("adsl", {
        "src.build_info": [{"study_id": "ADRESS", "blinded": True, "blinded_label": "Blinded"}],
        "stg_eligibility": [{"subject_id": "S9", "site_id": "site_02", "eligible": False}],
        "stg_randomisation": [{"subject_id": "S1", "site_id": "site_01", "randdtm": "2024-03-01 10:00:00",
                               "kit_no": "K001"}],
    })
    assert_rows(rows_, [{"USUBJID": "ADRESS-S1", "TRT01P": "Blinded", "ITTFL": "Y", "SAFFL": "N"},
                        {"USUBJID": "ADRESS-S9", "TRT01P": None, "ITTFL": "N", "SAFFL": "N"}])


# -- partial and missing dates --------------------------------------------------------------------------------
# Every subject below is randomised 2019-06-03 10:00 (H0). Death dates as the site entered them:
#   G '2019-06' (month only), last contact 2019-06-12, a reading at H1; never dosed
#   H '2019-06-05' (no time), no last contact, a reading on 2019-06-05 08:00 (H46)
#   J dead, no date at all; study drug 10:30 to 2019-06-04 10:30, a lab at 2019-06-03 16:00 (H6)
#   K '2019' (year only), last contact 2019-07-01
#   L '2019-06', but last contact 2019-07-05 (after the month: the entry and the contact disagree)
#   M screened only (eligibility form), never randomised
#   N alive, study drug 10:30 to 2019-06-04 10:30 (TEAE window to 2019-06-05 10:30), AEs with partial starts

H0 = "2019-06-03 10:00"
DRUG = dict(drug_start_dt="2019-06-03 10:30", drug_stop_dt="2019-06-04 10:30", drug_rate="5", drug_stop_reason="4")


def ae(subject: str, instance: int, start: str | None, end: str | None = None) -> dict:
    return repeating(subject, instance, ae_term="x", ae_decod="Hypotension", ae_bodsys="Vascular disorders",
                     ae_start_dt=start, ae_end_dt=end, ae_serious="0")


PARTIAL = {
    "eligibility": [{"subject_id": "M", "event": "screening_arm_1", "elig_adult": "1", "excl_cardiac_arrest": "1",
                     "eligible": "0"}],
    "randomisation": [rand(s, H0, "K001" if s in "GJL" else "K002") for s in "GHJKLN"],
    "study_drug": [repeating("J", 1, **DRUG), repeating("N", 1, **DRUG)],
    "end_of_study": [
        {**eos("G", death="2019-06"), "last_contact_dt": "2019-06-12"},
        eos("H", death="2019-06-05"),
        {**eos("J"), "vital_status": "2"},
        {**eos("K", death="2019"), "last_contact_dt": "2019-07-01"},
        {**eos("L", death="2019-06"), "last_contact_dt": "2019-07-05"},
        eos("N", last_contact="2019-09-01"),
    ],
    "hemodynamics": [
        repeating("G", 1, hd_dt="2019-06-03 11:00", hd_map="70", hd_hr="90"),
        repeating("H", 1, hd_dt="2019-06-05 08:00", hd_map="70", hd_hr="90"),
    ],
    "labs": [{"subject_id": "J", "event": "h6_arm_1", "lab_dt": "2019-06-03 16:00", "lactate": "3.0"}],
    "adverse_events": [
        ae("G", 1, None),
        ae("N", 1, None),
        ae("N", 2, None, end="2019-06-01 12:00"),
        ae("N", 3, "2019"),
        ae("N", 4, "2018"),
        ae("N", 5, "2019-06-04"),
        ae("N", 6, "2019-06", end="2019-06-02 12:00"),
    ],
}


@pytest.fixture(scope="module")
def partial(template, tmp_path_factory):
    return build_scenario(tmp_path_factory.mktemp("partial"), template, PARTIAL)


def test_partial_death_dates_are_staged_as_typing_failures(partial):
    # the premise of the imputation: the raw text of an untyped death date reaches the models
    assert rows(partial, "select subject_id, raw_value from src.typing_failures where item = 'death_dt' "
                         "order by 1") == [("G", "2019-06"), ("H", "2019-06-05"), ("K", "2019"), ("L", "2019-06")]


def test_death_with_partial_or_missing_date_is_imputed_not_censored(partial):
    got = rows(partial, "select subject_id, round(death_hrs, 4), death_dtf, death_tmf, round(death_max_hrs, 4), "
                        "round(lastalive_hrs, 4) from int_subject_times where subject_id <> 'N' order by 1")
    assert got == [
        # '2019-06': month starts 2019-06-01 00:00 (H-58); last alive = last contact 2019-06-12 00:00 = 8 d 14 h =
        # H206, the later -> H206; latest possible 2019-06-30 23:59 = 27 d 13 h 59 min = H661.9833
        ("G", 206.0, "D", "H", 661.9833, 206.0),
        # '2019-06-05': day starts H38, the reading at H46 is later -> H46 (time only imputed); latest 23:59 = H61.9833
        ("H", 46.0, None, "H", 61.9833, 46.0),
        # no date: the last known alive, the lab at H6 (the drug stop at H24.5 may be at death: not counted)
        ("J", 6.0, "Y", "H", None, 6.0),
        # '2019': last contact 2019-07-01 00:00 = 28 d - 10 h = H662; latest 2019-12-31 23:59 = 211 d 13 h 59 min
        ("K", 662.0, "M", "H", 5077.9833, 662.0),
        # '2019-06' but alive 2019-07-05 (H758): the entry wins, death at its latest instant H661.9833
        ("L", 661.9833, "D", "H", 661.9833, 758.0),
    ]


def test_adtte_counts_imputed_deaths_as_events(partial):
    got = rows(partial, "select USUBJID, round(AVAL, 4), CNSR, ADT, ADTF, ATMF, DTHD3FL, DTHD28FL, DTHD90FL "
                        "from adtte order by 1")
    assert got == [
        # 206 / 24 = 8.5833 days; dead by day 28 even at the month's end (27.58 d), alive at day 3
        ("ADRESS-G", 8.5833, 0, date(2019, 6, 12), "D", "H", "N", "Y", "Y"),
        # 46 / 24 = 1.9167; dead by 2019-06-05 23:59 = 2.58 d: within day 3
        ("ADRESS-H", 1.9167, 0, date(2019, 6, 5), None, "H", "Y", "Y", "Y"),
        # 6 / 24 = 0.25 at the earliest, no latest: whether dead by day 3, 28, 90 is unknown
        ("ADRESS-J", 0.25, 0, date(2019, 6, 3), "Y", "H", None, None, None),
        # 662 / 24 = 27.5833: alive at day 3; dead at some time in 2019 after day 27.58: day 28 and 90 unknown
        ("ADRESS-K", 27.5833, 0, date(2019, 7, 1), "M", "H", "N", None, None),
        # 661.9833 / 24 = 27.5826
        ("ADRESS-L", 27.5826, 0, date(2019, 6, 30), "D", "H", "N", "Y", "Y"),
        # M was never randomised: no row; N alive at last contact 2019-09-01, 90 days after 2019-06-03
        ("ADRESS-N", 90.0, 1, date(2019, 9, 1), None, "H", "N", "N", "N"),
    ]


def test_adsl_death_date_imputed_and_flagged(partial):
    got = rows(partial, "select SUBJID, DTHFL, DTHDTM, DTHDT, DTHDTF, DTHTMF, LSTALVDT from adsl "
                        "where DTHFL = 'Y' order by 1")
    assert got == [
        ("G", "Y", datetime(2019, 6, 12, 0, 0), date(2019, 6, 12), "D", "H", date(2019, 6, 12)),
        ("H", "Y", datetime(2019, 6, 5, 8, 0), date(2019, 6, 5), None, "H", date(2019, 6, 5)),
        ("J", "Y", datetime(2019, 6, 3, 16, 0), date(2019, 6, 3), "Y", "H", date(2019, 6, 3)),
        ("K", "Y", datetime(2019, 7, 1, 0, 0), date(2019, 7, 1), "M", "H", date(2019, 7, 1)),
        ("L", "Y", datetime(2019, 6, 30, 23, 59), date(2019, 6, 30), "D", "H", date(2019, 6, 30)),
    ]


def test_screen_failure_is_in_adsl_only(partial):
    assert rows(partial, "select SUBJID, SITEID, TRT01P, TRT01A, ITTFL, SAFFL from adsl where SUBJID = 'M'") == [
        ("M", "01", None, None, "N", "N")
    ]
    assert rows(partial, "select count(*) from adtte where USUBJID = 'ADRESS-M'") == [(0,)]
    assert rows(partial, "select count(*) from adeff where USUBJID = 'ADRESS-M'") == [(0,)]


def test_adverse_events_without_or_with_partial_start(partial):
    got = rows(partial, "select USUBJID, AESEQ, strftime(ASTDTM, '%Y-%m-%d %H:%M'), ASTDTF, ASTTMF, ASTDY, TRTEMFL, "
                        "TRTEMRSN from adae order by 1, 2")
    # N: first dose 2019-06-03 10:30, TEAE window to 2019-06-05 10:30
    assert got == [
        # G was never dosed: nothing can be treatment-emergent, nothing imputed
        ("ADRESS-G", 1, None, None, None, None, None, None),
        # no start at all: conservative rule, onset at the first dose, whole date (Y) and time (H) imputed
        ("ADRESS-N", 1, "2019-06-03 10:30", "Y", "H", 1, "Y", "START DATE MISSING"),
        # no start, but ended 2019-06-01, before the first dose: not treatment-emergent, not imputed
        ("ADRESS-N", 2, None, None, None, None, None, None),
        # '2019' covers the first dose: imputed to it, month and day (M) imputed
        ("ADRESS-N", 3, "2019-06-03 10:30", "M", "H", 1, "Y", "PARTIAL START DATE COVERS FIRST DOSE"),
        # '2018': 2018-01-01, 365 + 151 + 2 = 518 days before 2019-06-03: day -518
        ("ADRESS-N", 4, "2018-01-01 00:00", "M", "H", -518, None, None),
        # '2019-06-04': the day after the first dose's day, time imputed to 00:00: day 2, in the window
        ("ADRESS-N", 5, "2019-06-04 00:00", None, "H", 2, "Y", None),
        # '2019-06' ended 2019-06-02 12:00, before the first dose: earliest day, 2019-06-01, day -2
        ("ADRESS-N", 6, "2019-06-01 00:00", "D", "H", -2, None, None),
    ]
