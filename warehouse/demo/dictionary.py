"""The demo eCRF's metadata (docs/demo-study.md): events, forms, fields, code lists. One source for both writers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    form: str
    ftype: str  # text, radio, yesno, checkbox, notes
    label: str
    choices: tuple[tuple[str, str], ...] = ()
    validation: str = ""  # date_ymd, datetime_ymd, integer, number
    vmin: str = ""
    vmax: str = ""
    identifier: bool = False
    required: bool = False
    units: str = ""
    note: str = ""

    @property
    def columns(self) -> list[str]:
        """Export columns of the field (checkboxes expand to field___code)."""
        if self.ftype == "checkbox":
            return [f"{self.name}___{code}" for code, _ in self.choices]
        return [self.name]

    @property
    def codes(self) -> tuple[str, ...]:
        if self.ftype == "yesno":
            return ("1", "0")
        return tuple(c for c, _ in self.choices)


@dataclass(frozen=True)
class Event:
    name: str  # unique event name
    label: str
    day_offset: int
    forms: tuple[str, ...]


@dataclass(frozen=True)
class Form:
    name: str
    label: str
    repeating: bool


YESNO = (("1", "Yes"), ("0", "No"))
COMPLETE = (("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete"))
SALT = (("1", "base"), ("2", "tartrate"), ("3", "bitartrate monohydrate"))


def _f(name, form, ftype, label, **kw) -> Field:
    if "choices" in kw:
        kw["choices"] = tuple(kw["choices"])
    return Field(name, form, ftype, label, **kw)


def _dt(name, form, label, **kw) -> Field:
    return _f(name, form, "text", label, validation="datetime_ymd", note="YYYY-MM-DD HH:MM", **kw)


def _date(name, form, label, **kw) -> Field:
    return _f(name, form, "text", label, validation="date_ymd", note="YYYY-MM-DD", **kw)


def _int(name, form, label, lo, hi, units="", **kw) -> Field:
    return _f(name, form, "text", label, validation="integer", vmin=str(lo), vmax=str(hi), units=units,
              note=units, **kw)


def _num(name, form, label, lo, hi, units="", **kw) -> Field:
    return _f(name, form, "text", label, validation="number", vmin=str(lo), vmax=str(hi), units=units,
              note=units, **kw)


def _radio(name, form, label, choices, **kw) -> Field:
    return _f(name, form, "radio", label, choices=choices, **kw)


def _yn(name, form, label, **kw) -> Field:
    return _f(name, form, "yesno", label, **kw)


# the eCRF's forms, in dictionary order: name | label | once or repeating (one row per record, or several)
FORM_TABLE = """
eligibility    | Eligibility             | once
demographics   | Demographics            | once
randomisation  | Randomisation           | once
study_drug     | Study Drug              | repeating
hemodynamics   | Hemodynamics            | repeating
vasopressors   | Vasopressors            | repeating
pe_challenge   | Phenylephrine Challenge | once
labs           | Laboratory              | once
sofa           | SOFA                    | once
fluids         | Fluids                  | once
ventilation    | Ventilation             | repeating
adverse_events | Adverse Events          | repeating
end_of_study   | End of Study            | once
"""
FORMS: tuple[Form, ...] = tuple(
    Form(name, label, kind == "repeating")
    for name, label, kind in ([cell.strip() for cell in line.split("|")] for line in FORM_TABLE.strip().splitlines())
)
FORM_BY_NAME = {f.name: f for f in FORMS}

_E = "eligibility"
_D = "demographics"
_HD = "hemodynamics"
FIELDS: tuple[Field, ...] = (
    _f("record_id", _E, "text", "Record ID"),
    _yn("elig_adult", _E, "Adult (18 years or older)"),
    _yn("elig_septic_shock", _E, "Septic shock (Sepsis-3)"),
    _yn("elig_fluids", _E, "Adequate fluid loading"),
    _yn("elig_ne_dose", _E, "Norepinephrine >= 0.25 ug/kg/min as base for > 2 h"),
    _yn("elig_hypoperfusion", _E, "Persistent hypoperfusion in the 2 h before randomisation"),
    _yn("elig_mech_vent", _E, "Invasive mechanical ventilation"),
    _yn("elig_sedation", _E, "Sedation with midazolam or propofol"),
    _yn("elig_consent", _E, "Consent from a relative"),
    _yn("excl_cardiac_arrest", _E, "Cardiac arrest before inclusion"),
    _yn("excl_low_co", _E, "Low cardiac output (CI < 2.2 L/min/m2 or LVEF < 40%)"),
    _yn("excl_bradycardia", _E, "HR < 55/min without beta-blocker"),
    _yn("excl_av_block", _E, "High-degree AV block"),
    _yn("excl_stroke", _E, "Recent stroke"),
    _yn("excl_liver_failure", _E, "Severe liver failure"),
    _num("scr_ne_dose", _E, "Norepinephrine dose at screening, as labelled (ug/kg/min)", 0, 5, "ug/kg/min"),
    _radio("scr_ne_salt", _E, "Norepinephrine salt on the label", SALT),
    _num("scr_lactate", _E, "Lactate (mmol/L)", 0.3, 30, "mmol/L"),
    _int("scr_mottling", _E, "Mottling score", 0, 5),
    _num("scr_urine", _E, "Urine output over 2 h (mL/kg/h)", 0, 10, "mL/kg/h"),
    _yn("eligible", _E, "Eligible", required=True),
    # demographics
    _f("initials", _D, "text", "Subject initials", identifier=True),
    _date("dob", _D, "Date of birth", identifier=True),
    _radio("sex", _D, "Sex", (("1", "Male"), ("2", "Female")), required=True),
    _int("age", _D, "Age (years)", 18, 105, "years", required=True),
    _num("weight", _D, "Weight (kg), dosing weight", 30, 250, "kg", required=True),
    _num("height", _D, "Height (cm)", 120, 220, "cm"),
    _dt("icu_adm_dt", _D, "ICU admission date-time"),
    _radio("infection_source", _D, "Source of infection",
           (("1", "lung"), ("2", "abdomen"), ("3", "urine"), ("4", "skin"), ("5", "other"), ("6", "unknown"))),
    _f("comorbidities", _D, "checkbox", "Comorbidities",
       choices=(("1", "hypertension"), ("2", "diabetes"), ("3", "COPD"), ("4", "chronic kidney disease"),
                ("5", "cancer"), ("6", "immunosuppression"), ("7", "chronic heart failure"))),
    _int("saps2", _D, "SAPS II", 0, 163),
    _yn("chronic_bb", _D, "Chronic beta-blocker"),
    # randomisation
    _dt("rand_dt", "randomisation", "Randomisation date-time", required=True),
    _f("kit_no", "randomisation", "text", "Kit number", required=True, note="K001..."),
    # study_drug
    _dt("drug_start_dt", "study_drug", "Infusion segment start", required=True),
    _dt("drug_stop_dt", "study_drug", "Infusion segment stop"),
    _num("drug_rate", "study_drug", "Infusion rate (mL/h)", 0, 50, "mL/h", required=True),
    _radio("drug_stop_reason", "study_drug", "Stop reason",
           (("1", "bradycardia"), ("2", "hypotension"), ("3", "death"), ("4", "end of protocol"),
            ("5", "other"))),
    # hemodynamics
    _dt("hd_dt", _HD, "Date-time", required=True),
    _int("hd_map", _HD, "Mean arterial pressure (mmHg)", 20, 160, "mmHg", required=True),
    _int("hd_sbp", _HD, "Systolic pressure (mmHg)", 40, 250, "mmHg"),
    _int("hd_dbp", _HD, "Diastolic pressure (mmHg)", 15, 150, "mmHg"),
    _int("hd_hr", _HD, "Heart rate (/min)", 20, 220, "/min", required=True),
    _radio("hd_rhythm", _HD, "Rhythm", (("1", "sinus"), ("2", "AF"), ("3", "paced"), ("4", "other"))),
    # vasopressors
    _radio("vp_drug", "vasopressors", "Drug",
           (("1", "norepinephrine"), ("2", "epinephrine"), ("3", "vasopressin"), ("4", "dobutamine")),
           required=True),
    _dt("vp_dt", "vasopressors", "Date-time of the rate change", required=True),
    _num("vp_rate", "vasopressors", "Rate, as labelled", 0, 10, required=True),
    _radio("vp_unit", "vasopressors", "Unit", (("1", "ug/kg/min"), ("2", "U/min"))),
    _radio("vp_salt", "vasopressors", "Salt on the label (norepinephrine)", SALT),
    # pe_challenge
    _dt("pe_dt", "pe_challenge", "Challenge date-time", required=True),
    _int("pe_map_before", "pe_challenge", "MAP before the challenge (mmHg)", 20, 160, "mmHg", required=True),
    _num("pe_ne_rate", "pe_challenge", "NE rate during the test, as labelled (ug/kg/min)", 0, 10, "ug/kg/min"),
    _num("pe_max_dose", "pe_challenge", "Maximum phenylephrine dose reached (ug/kg/min)", 0, 10, "ug/kg/min"),
    _int("pe_map_max", "pe_challenge", "MAP at the maximum dose (mmHg)", 20, 160, "mmHg", required=True),
    _yn("pe_aborted", "pe_challenge", "Challenge aborted"),
    _f("pe_abort_reason", "pe_challenge", "text", "Reason for abort"),
    # labs
    _dt("lab_dt", "labs", "Sample date-time", required=True),
    _num("lactate", "labs", "Lactate (mmol/L)", 0.3, 30, "mmol/L"),
    _num("ph", "labs", "pH", 6.8, 7.7),
    _num("pao2", "labs", "PaO2 (mmHg)", 30, 600, "mmHg"),
    _num("fio2", "labs", "FiO2", 0.21, 1.0),
    _num("platelets", "labs", "Platelets (x10^3/uL)", 1, 1000, "10^3/uL"),
    _num("bilirubin", "labs", "Bilirubin (umol/L)", 2, 800, "umol/L"),
    _num("creatinine", "labs", "Creatinine (umol/L)", 20, 1500, "umol/L"),
    # sofa
    _int("gcs", "sofa", "Glasgow coma scale", 3, 15),
    _int("sofa_resp", "sofa", "SOFA respiration", 0, 4),
    _int("sofa_coag", "sofa", "SOFA coagulation", 0, 4),
    _int("sofa_liver", "sofa", "SOFA liver", 0, 4),
    _int("sofa_cardio", "sofa", "SOFA cardiovascular", 0, 4),
    _int("sofa_cns", "sofa", "SOFA central nervous system", 0, 4),
    _int("sofa_renal", "sofa", "SOFA renal", 0, 4),
    _int("sofa_total", "sofa", "SOFA total (as entered by the site)", 0, 24, required=True),
    # fluids
    _num("fluid_in", "fluids", "Total fluids in over the day (mL)", 0, 30000, "mL"),
    _num("fluid_out", "fluids", "Total fluids out over the day (mL)", 0, 30000, "mL"),
    _num("urine_out", "fluids", "Urine output over the day (mL)", 0, 30000, "mL"),
    # ventilation
    _dt("intub_dt", "ventilation", "Intubation date-time", required=True),
    _dt("extub_dt", "ventilation", "Extubation date-time"),
    # adverse events
    _f("ae_term", "adverse_events", "text", "Adverse event (verbatim)", required=True),
    _f("ae_decod", "adverse_events", "text", "Coded term (MedDRA preferred term)"),
    _f("ae_bodsys", "adverse_events", "text", "Body system (MedDRA system organ class)"),
    _dt("ae_start_dt", "adverse_events", "Start date-time", required=True),
    _dt("ae_end_dt", "adverse_events", "End date-time"),
    _yn("ae_serious", "adverse_events", "Serious"),
    _radio("ae_ser_crit", "adverse_events", "Seriousness criterion",
           (("1", "death"), ("2", "life-threatening"), ("3", "hospitalisation"), ("4", "disability"),
            ("5", "congenital anomaly"), ("6", "medically important"))),
    _radio("ae_grade", "adverse_events", "CTCAE grade",
           (("1", "Grade 1"), ("2", "Grade 2"), ("3", "Grade 3"), ("4", "Grade 4"), ("5", "Grade 5"))),
    _radio("ae_rel", "adverse_events", "Relationship to study drug",
           (("1", "not related"), ("2", "unlikely"), ("3", "possible"), ("4", "probable"), ("5", "definite"))),
    _radio("ae_action", "adverse_events", "Action taken with study drug",
           (("1", "none"), ("2", "dose reduced"), ("3", "interrupted"), ("4", "withdrawn"))),
    _radio("ae_outcome", "adverse_events", "Outcome",
           (("1", "recovered"), ("2", "recovering"), ("3", "not recovered"), ("4", "recovered with sequelae"),
            ("5", "fatal"))),
    _radio("ae_aesi", "adverse_events", "Adverse event of special interest",
           (("0", "none"), ("1", "bradycardia"), ("2", "hypotension"), ("3", "atrial fibrillation"),
            ("4", "AV block"), ("5", "delirium"))),
    # end of study
    _radio("vital_status", "end_of_study", "Vital status", (("1", "alive"), ("2", "dead")), required=True),
    _dt("death_dt", "end_of_study", "Date-time of death"),
    _f("death_cause", "end_of_study", "notes", "Cause of death"),
    _date("icu_disch_dt", "end_of_study", "ICU discharge date"),
    _date("hosp_disch_dt", "end_of_study", "Hospital discharge date"),
    _date("last_contact_dt", "end_of_study", "Last contact date", required=True),
    _yn("withdrawal", "end_of_study", "Withdrawal"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}

EVENTS: tuple[Event, ...] = (
    Event("screening_arm_1", "Screening", -1, ("eligibility", "demographics")),
    Event("h0_arm_1", "H0 (randomisation)", 0, ("randomisation", "pe_challenge", "labs", "sofa")),
    Event("h6_arm_1", "H6", 0, ("pe_challenge", "labs")),
    Event("h12_arm_1", "H12", 0, ("pe_challenge", "labs")),
    Event("h24_arm_1", "H24 / Day 1", 1, ("labs", "sofa", "fluids")),
    *(Event(f"day_{d}_arm_1", f"Day {d}", d, ("labs", "sofa", "fluids")) for d in range(2, 8)),
    Event("icu_arm_1", "ICU stay", 0,
          ("study_drug", "hemodynamics", "vasopressors", "ventilation", "adverse_events")),
    Event("end_of_study_arm_1", "End of study", 90, ("end_of_study",)),
)
EVENT_BY_NAME = {e.name: e for e in EVENTS}
EVENT_ORDER = {e.name: i for i, e in enumerate(EVENTS)}
FORM_ORDER = {f.name: i for i, f in enumerate(FORMS)}
REPEATING_EVENT = "icu_arm_1"
# custom labels of the repeating instruments (REDCap piping)
REPEAT_LABELS = {
    "study_drug": "[drug_start_dt]",
    "hemodynamics": "[hd_dt]",
    "vasopressors": "[vp_dt] [vp_drug]",
    "ventilation": "[intub_dt]",
    "adverse_events": "[ae_term]",
}


def form_fields(form: str) -> list[Field]:
    return [f for f in FIELDS if f.form == form]


def data_columns() -> list[str]:
    """The flat REDCap export's columns: keys, then every field in dictionary order with `<form>_complete`."""
    cols = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
            "redcap_data_access_group"]
    for form in FORMS:
        for f in form_fields(form.name):
            if f.name != "record_id":
                cols.extend(f.columns)
        cols.append(f"{form.name}_complete")
    return cols


def form_columns(form: str) -> list[str]:
    """A form's value columns (as in the flat export), ending with `<form>_complete`."""
    cols = [c for f in form_fields(form) for c in f.columns]
    return cols + [f"{form}_complete"]
