"""Per-subject generation: one subject's eCRF records (all events and forms), from its own random stream.

Every value is produced as the exact text of the export. A subject's output depends only on the seed, the design
(`design.py`) and the subject's index, so it does not depend on how subjects are chunked or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .design import PE_HOURS, STREAM_MONITOR, STREAM_SUBJECT, Subject
from .params import DemoParameters

NE_SALT_FACTOR = {1: 1.0, 2: 0.5, 3: 169.18 / 337.28}


@dataclass
class Record:
    """One form instance of one subject: the unit both writers emit (a REDCap row part / an ODM FormData)."""

    event: str
    form: str
    instance: int | None  # repeat instance for repeating instruments, else None
    values: dict[str, str]  # column -> exported text ("" = empty), including `<form>_complete`
    duplicate: bool = False  # injected: emitted twice


class Clock:
    """Study calendar: minutes from the epoch (first randomisation day, 00:00) to export text. No wall clock."""

    def __init__(self, first_day: str):
        self.epoch = datetime.fromisoformat(first_day)

    def dt(self, minutes: int) -> str:
        return (self.epoch + timedelta(minutes=int(minutes))).strftime("%Y-%m-%d %H:%M")

    def date(self, minutes: int) -> str:
        return (self.epoch + timedelta(minutes=int(minutes))).strftime("%Y-%m-%d")

    def as_datetime(self, minutes: int) -> datetime:
        return self.epoch + timedelta(minutes=int(minutes))


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _num(x: float, decimals: int) -> str:
    s = f"{x:.{decimals}f}"
    return "0" if decimals == 0 and s == "-0" else s


# adverse-event catalogue: verbatim (as a French site writes it), MedDRA-like PT, SOC, AESI code, weight
AE_CATALOGUE = (
    ("Hypotension sévère", "Hypotension", "Vascular disorders", "2", 0.12),
    ("FA rapide", "Atrial fibrillation", "Cardiac disorders", "3", 0.10),
    ("BAV 2e degré, Mobitz 1", "Atrioventricular block second degree", "Cardiac disorders", "4", 0.03),
    ("Délire / agitation", "Delirium", "Psychiatric disorders", "5", 0.12),
    ("Hypokaliémie", "Hypokalaemia", "Metabolism and nutrition disorders", "0", 0.12),
    ("Pneumopathie acquise sous ventilation", "Ventilator associated pneumonia", "Infections and infestations",
     "0", 0.12),
    ("Insuffisance rénale aiguë", "Acute kidney injury", "Renal and urinary disorders", "0", 0.12),
    ("Ischémie mésentérique", "Intestinal ischaemia", "Gastrointestinal disorders", "0", 0.04),
    ("Thrombopénie", "Thrombocytopenia", "Blood and lymphatic system disorders", "0", 0.08),
    ("Hyperglycémie", "Hyperglycaemia", "Metabolism and nutrition disorders", "0", 0.08),
    ("Escarre sacrée", "Decubitus ulcer", "Skin and subcutaneous tissue disorders", "0", 0.04),
    ("Hémorragie digestive haute", "Upper gastrointestinal haemorrhage", "Gastrointestinal disorders", "0", 0.04),
)
_AE_W = np.array([a[4] for a in AE_CATALOGUE]) / sum(a[4] for a in AE_CATALOGUE)
FATAL_EARLY = ("Choc septique réfractaire", "Septic shock", "Infections and infestations")
FATAL_LATE = ("Défaillance multiviscérale", "Multiple organ dysfunction syndrome",
              "General disorders and administration site conditions")
DEATH_CAUSES_EARLY = ("Choc septique réfractaire", "Choc réfractaire, défaillance multiviscérale",
                      "Arrêt cardiaque sur choc réfractaire")
DEATH_CAUSES_LATE = ("Défaillance multiviscérale", "Limitation des thérapeutiques actives",
                     "Pneumopathie nosocomiale, choc septique")
LETTERS = "ABCDEFGHIJKLMNOPRSTVY"


def sofa_subscores(pao2: float, fio2: float, platelets: float, bilirubin: float, ne_base: float, map_: float,
                   gcs: int, creatinine: float) -> tuple[int, int, int, int, int, int]:
    """Standard SOFA sub-scores (ventilated patients; renal by creatinine only; cardio by NE base dose)."""
    pf = pao2 / fio2
    resp = 4 if pf < 100 else 3 if pf < 200 else 2 if pf < 300 else 1 if pf < 400 else 0
    coag = 4 if platelets < 20 else 3 if platelets < 50 else 2 if platelets < 100 else 1 if platelets < 150 else 0
    liver = 0 if bilirubin < 20 else 1 if bilirubin < 33 else 2 if bilirubin < 102 else 3 if bilirubin <= 204 else 4
    if ne_base > 0.1:
        cardio = 4
    elif ne_base > 0:
        cardio = 3
    else:
        cardio = 1 if map_ < 70 else 0
    cns = 0 if gcs >= 15 else 1 if gcs >= 13 else 2 if gcs >= 10 else 3 if gcs >= 6 else 4
    crea = creatinine
    renal = 0 if crea < 110 else 1 if crea < 171 else 2 if crea < 300 else 3 if crea <= 440 else 4
    return resp, coag, liver, cardio, cns, renal


def monitor_readings(anchors: list[tuple[int, int, int, int, int, str]], p: DemoParameters, seed: int, index: int,
                     dt, death: float | None) -> list[Record]:
    """Bedside-monitor readings every `hemo_interval_minutes` between the hourly values, which they keep exactly.

    A stream of its own, so a subject's other forms are the same whatever the resolution.
    """
    g = np.random.default_rng(np.random.SeedSequence([seed, STREAM_MONITOR, index]))
    step = p.hemo_interval_minutes / 60.0
    records: list[Record] = []
    instance = 0
    for (k, m, sbp, dbp, hr, rhythm), nxt in zip(anchors, anchors[1:] + [None]):
        offsets = np.arange(0.0, 1.0 - 1e-9, step) if nxt is not None else np.array([0.0])
        if death is not None:
            offsets = offsets[k + offsets < death]
        frac = offsets if nxt is not None else offsets * 0
        target = nxt if nxt is not None else (k, m, sbp, dbp, hr, rhythm)
        jitter = g.normal(0, 1.5, (offsets.size, 2))
        jitter[0] = 0.0  # the whole hour keeps the hourly reading
        maps = np.clip(np.round(m + (target[1] - m) * frac + jitter[:, 0]), 35, 130).astype(int)
        hrs = np.clip(np.round(hr + (target[4] - hr) * frac + jitter[:, 1]), 30, 190).astype(int)
        for h, map_, hr_ in zip(k + offsets, maps, hrs):
            instance += 1
            # pressures move with the MAP, kept within the eCRF's plausible ranges (SBP 40-250, DBP 15-150 mmHg)
            # as a monitor would show them; the whole hour's reading is the hourly value unchanged
            dbp_i = min(max(dbp + (map_ - m), 15), 150) if map_ != m else dbp
            sbp_i = min(max(sbp + (map_ - m), 40), 250) if map_ != m else sbp
            records.append(Record("icu_arm_1", "hemodynamics", instance, {
                "hd_dt": dt(float(h)), "hd_map": str(map_), "hd_sbp": str(sbp_i),
                "hd_dbp": str(dbp_i), "hd_hr": str(hr_), "hd_rhythm": rhythm,
                "hemodynamics_complete": "2",
            }))
    return records


def simulate_subject(s: Subject, p: DemoParameters, seed: int, clock: Clock) -> list[Record]:
    """All eCRF records of one subject, sorted in export order (event, then form, then instance)."""
    g = np.random.default_rng(np.random.SeedSequence([seed, STREAM_SUBJECT, s.index]))
    R = s.rand_min
    site_i = p.sites.index(s.site)
    salt = p.site_ne_salt[site_i]
    f_salt = NE_SALT_FACTOR[salt]
    recs: list[Record] = []

    def at(h: float) -> int:  # minutes from epoch at hour h from H0
        return R + int(math.floor(h * 60 + 0.5))

    def dt(h: float) -> str:
        return clock.dt(at(h))

    def status() -> str:
        return "1" if g.random() < p.form_unverified_rate else "2"

    def add(event: str, form: str, values: dict[str, str], instance: int | None = None) -> None:
        values[f"{form}_complete"] = status()
        recs.append(Record(event, form, instance, values))

    death = s.death_h
    alive_end = death if death is not None else p.follow_up_days * 24.0

    def alive(h: float) -> bool:
        return death is None or h < death

    # ---------------- screening ----------------
    sex = 1 if g.random() < 0.62 else 2
    age_target = float(_clip(g.normal(64, 13), 19, 95))
    dob_min = R - int((age_target * 365.25 + g.uniform(0, 360)) * 1440)
    dob = clock.as_datetime(dob_min).date()
    h0_date = clock.as_datetime(R).date()
    age = h0_date.year - dob.year - ((h0_date.month, h0_date.day) < (dob.month, dob.day))
    weight = float(_clip(g.normal(82 if sex == 1 else 69, 15), 42, 180))
    height = float(_clip(g.normal(176 if sex == 1 else 163, 7), 145, 205))
    icu_adm_h = -float(g.uniform(6, 60))
    ne0 = max(p.ne_base_h0_min, float(g.lognormal(math.log(p.ne_base_h0_median), 0.35)))
    ne0 = min(ne0, 2.2)
    lact0 = float(_clip(g.lognormal(math.log(4.2), 0.35), 2.1, 14))
    comorb = (g.random(7) < np.array([0.45, 0.22, 0.12, 0.10, 0.18, 0.12, 0.10])).astype(int)
    n_init = 3 if g.random() < 0.25 else 2
    initials = "".join(LETTERS[k] for k in g.integers(0, len(LETTERS), n_init))
    if g.random() < 0.08:
        initials = initials[0] + "-" + initials[1:]

    elig = {
        "elig_adult": "1", "elig_septic_shock": "1", "elig_fluids": "1", "elig_ne_dose": "1",
        "elig_hypoperfusion": "1", "elig_mech_vent": "1", "elig_sedation": "1", "elig_consent": "1",
        "excl_cardiac_arrest": "0", "excl_low_co": "0", "excl_bradycardia": "0", "excl_av_block": "0",
        "excl_stroke": "0", "excl_liver_failure": "0",
    }
    scr_base = ne0 * float(g.uniform(0.9, 1.1)) if not s.screen_failure else float(g.uniform(0.1, 0.24))
    scr_base = max(scr_base, p.ne_base_h0_min) if not s.screen_failure else scr_base
    if s.screen_failure:
        elig["elig_ne_dose"] = "0"
        if g.random() < 0.5:
            elig["excl_low_co"] = "1"
    elig.update({
        "scr_ne_dose": _num(scr_base / f_salt, 2),
        "scr_ne_salt": str(salt),
        "scr_lactate": _num(lact0 * float(g.uniform(0.85, 1.05)), 1),
        "scr_mottling": str(int(g.integers(0, 5))),
        "scr_urine": _num(float(g.uniform(0.05, 0.6)), 2),
        "eligible": "0" if s.screen_failure else "1",
    })
    add("screening_arm_1", "eligibility", elig)
    demo = {
        "initials": initials,
        "dob": dob.isoformat(),
        "sex": str(sex),
        "age": str(age),
        "weight": _num(weight, 1),
        "height": _num(height, 0),
        "icu_adm_dt": dt(icu_adm_h),
        "infection_source": str(int(g.choice(6, p=[0.45, 0.28, 0.1, 0.05, 0.08, 0.04])) + 1),
        **{f"comorbidities___{k + 1}": str(int(v)) for k, v in enumerate(comorb)},
        "saps2": str(int(_clip(round(g.normal(62, 15)), 15, 130))),
        "chronic_bb": "1" if g.random() < 0.15 else "0",
    }
    add("screening_arm_1", "demographics", demo)
    if s.screen_failure:
        return _sorted(recs)

    early = death is not None and death <= 72
    # ---------------- H0 ----------------
    add("h0_arm_1", "randomisation", {"rand_dt": dt(0), "kit_no": s.kit_no or ""})

    # ---------------- PE challenge times ----------------
    pe_time = {"h0_arm_1": -float(g.integers(10, 40)) / 60}
    for ev, hour in PE_HOURS.items():
        if ev != "h0_arm_1":
            pe_time[ev] = hour + float(g.integers(-15, 20)) / 60

    # ---------------- norepinephrine (and other vasopressors) ----------------
    ne_start_h = max(icu_adm_h + 0.5, -float(g.uniform(4, 12)))
    vp_rows: list[tuple[float, int, float]] = []  # (hour, drug, labelled rate)
    vp_rows.append((ne_start_h, 1, 0.6 * ne0))
    vp_rows.append((min(-2.2, ne_start_h + 1.0) if ne_start_h < -2.5 else ne_start_h + 0.25, 1, ne0))
    if early:
        ne_end = death
    else:
        ne_end = float(g.uniform(30, 110))
        if death is not None:
            ne_end = min(ne_end, death)
    n_changes = int(g.integers(p.ne_changes_range[0], p.ne_changes_range[1] + 1))
    times = np.sort(g.uniform(0.3, max(ne_end - 0.3, 0.6), n_changes))
    freeze = p.pe_ne_freeze_minutes / 60
    times = [t for t in times.tolist() if all(abs(t - pt) > freeze for ev, pt in pe_time.items() if ev in s.pe)]
    tau = float(g.uniform(14, 30))
    for t in times:
        if early:
            target = ne0 * math.exp(t / max(death, 4.0) * float(g.uniform(0.5, 1.4)))
        else:
            target = ne0 * math.exp(-t / tau)
        rate = float(_clip(target * g.lognormal(0, 0.15), 0.03, 3.0))
        vp_rows.append((t, 1, rate))
    vp_rows.append((ne_end, 1, 0.0))
    ne_points = [(h, r) for h, d, r in vp_rows]
    # labelled rates, rounded as written on the eCRF; base = labelled x salt factor
    ne_labelled = [(h, round(r / f_salt, 2) if r > 0 else 0.0) for h, r in ne_points]
    ne_labelled = [(h, r if (r > 0 or k == len(ne_labelled) - 1) else 0.01) for k, (h, r) in enumerate(ne_labelled)]

    def ne_base_at(h: float) -> float:
        cur = 0.0
        for t, r in ne_labelled:
            if t <= h:
                cur = r * f_salt
        return cur

    def ne_label_at(h: float) -> float:
        cur = 0.0
        for t, r in ne_labelled:
            if t <= h:
                cur = r
        return cur

    other_vp: list[tuple[float, int, float, str]] = []  # (hour, drug, rate, unit)
    if g.random() < p.vasopressin_rate + (0.25 if early else 0.0):
        start = float(g.uniform(0.5, min(20.0, ne_end - 0.2))) if ne_end > 1 else ne_end / 2
        other_vp.append((start, 3, 0.03, "2"))
        other_vp.append((ne_end, 3, 0.0, "2"))
    if early and death > 4 and g.random() < p.epinephrine_rate_dying:
        start = death * float(g.uniform(0.5, 0.85))
        other_vp.append((start, 2, round(float(g.uniform(0.1, 0.6)), 2), "1"))
        other_vp.append((death, 2, 0.0, "1"))
    all_vp = [(h, 1, r, "1") for h, r in ne_labelled] + other_vp
    all_vp.sort(key=lambda x: (x[0], x[1]))
    for k, (h, drug, rate, unit) in enumerate(all_vp, start=1):
        add("icu_arm_1", "vasopressors", {
            "vp_drug": str(drug), "vp_dt": dt(h), "vp_rate": _num(rate, 2), "vp_unit": unit,
            "vp_salt": str(salt) if drug == 1 else "",
        }, k)

    # ---------------- study drug ----------------
    drug_start = float(g.integers(p.drug_start_delay_minutes[0], p.drug_start_delay_minutes[1] + 1)) / 60
    drug_end = drug_start + p.infusion_max_hours
    end_reason = "4"
    if death is not None and death <= drug_end:
        drug_end, end_reason = death, "3"
    brady_h = None
    limit = min(24.0, (death if death is not None else 99.0) - 1.0)
    if g.random() < p.bradycardia_ae_rate[s.arm or p.arms[0]] and limit >= 3:
        brady_h = int(g.integers(2, int(limit) + 1))
    segments: list[tuple[float, float | None, str]] = []
    if brady_h is not None:
        stop1 = brady_h + 0.25
        restart = stop1 + float(g.uniform(*p.drug_restart_after_brady_hours))
        segments.append((drug_start, stop1, "1"))
        if restart < drug_end - 0.5:
            segments.append((restart, drug_end, end_reason))
    elif early and g.random() < 0.2 and death - drug_start > 3:
        segments.append((drug_start, death - float(g.uniform(0.5, 2.5)), "2"))
    else:
        segments.append((drug_start, drug_end, end_reason))
    drug_rate = _num(weight * p.drug_dose_ug_kg_h / p.drug_concentration_ug_ml, 1)
    for k, (a, b, why) in enumerate(segments, start=1):
        add("icu_arm_1", "study_drug", {
            "drug_start_dt": dt(a), "drug_stop_dt": dt(b) if b is not None else "", "drug_rate": drug_rate,
            "drug_stop_reason": why,
        }, k)

    # ---------------- hourly hemodynamics H0-H24 ----------------
    hours = [k for k in range(25) if alive(k)]
    map0 = s.pe["h0_arm_1"][0]
    map_end = float(g.normal(73, 5)) if not early else float(g.normal(50, 5))
    hr0 = float(_clip(g.normal(108, 15), 75, 150))
    hr_end = hr0 - float(g.uniform(5, 20)) if not early else hr0 + float(g.uniform(0, 15))
    pp = float(_clip(g.normal(48, 9), 28, 80))
    af_start = int(g.integers(1, 20)) if g.random() < 0.12 else None
    af_len = int(g.integers(2, 6))
    paced = g.random() < 0.02
    e_map = e_hr = 0.0
    span = (death if early else 24.0) or 24.0
    anchors: list[tuple[int, int, int, int, int, str]] = []  # hourly values, for monitor-resolution readings
    for inst, k in enumerate(hours, start=1):
        frac = min(k / max(span, 1.0), 1.0)
        e_map = 0.55 * e_map + float(g.normal(0, 3.5))
        e_hr = 0.6 * e_hr + float(g.normal(0, 4))
        m = map0 + (map_end - map0) * (1 - math.exp(-3 * frac)) / (1 - math.exp(-3)) + e_map
        ev = {0: "h0_arm_1", 6: "h6_arm_1", 12: "h12_arm_1"}.get(k)
        if ev is not None and ev in s.pe:
            m = s.pe[ev][0]
        m = int(_clip(round(m), 35, 130))
        hr = hr0 + (hr_end - hr0) * frac + e_hr
        rhythm = "1"
        if af_start is not None and af_start <= k < af_start + af_len:
            rhythm, hr = "2", hr + 25
        if paced:
            rhythm, hr = "3", 80 + float(g.normal(0, 1))
        if brady_h is not None and k == brady_h:
            hr = float(g.integers(p.bradycardia_hr_range[0], p.bradycardia_hr_range[1] + 1))
        hr_i = int(_clip(round(hr), 30, 190))
        pp_k = pp + float(g.normal(0, 4))
        dbp = int(_clip(round(m - pp_k / 3), 15, 150))  # the eCRF's plausible ranges (SBP 40-250, DBP 15-150)
        sbp = int(_clip(round(dbp + pp_k), 40, 250))
        if p.hemo_interval_minutes >= 60:
            add("icu_arm_1", "hemodynamics", {
                "hd_dt": dt(k), "hd_map": str(m), "hd_sbp": str(sbp), "hd_dbp": str(dbp), "hd_hr": str(hr_i),
                "hd_rhythm": rhythm,
            }, inst)
        else:
            status()  # the draw the hourly row would take, so every later value is the same at any resolution
            anchors.append((k, m, sbp, dbp, hr_i, rhythm))
    if p.hemo_interval_minutes < 60:
        recs.extend(monitor_readings(anchors, p, seed, s.index, dt, death))

    # ---------------- PE challenges ----------------
    for ev in PE_HOURS:
        if ev not in s.pe:
            continue
        before, mx = s.pe[ev]
        aborted = g.random() < p.pe_abort_rate
        step = int(g.integers(2, len(p.pe_dose_steps))) if not aborted else int(g.integers(0, 2))
        add(ev, "pe_challenge", {
            "pe_dt": dt(pe_time[ev]), "pe_map_before": str(before),
            "pe_ne_rate": _num(ne_label_at(pe_time[ev]), 2), "pe_max_dose": _num(p.pe_dose_steps[step], 1),
            "pe_map_max": str(mx), "pe_aborted": "1" if aborted else "0",
            "pe_abort_reason": str(g.choice(["tachycardie > 150/min", "ESV, arrêt du test", "MAP > 110 mmHg"]))
            if aborted else "",
        })

    # ---------------- labs, SOFA, fluids ----------------
    lab_events = [("h0_arm_1", -float(g.uniform(0.15, 1.0))), ("h6_arm_1", 6.0), ("h12_arm_1", 12.0),
                  ("h24_arm_1", 24.0)] + [(f"day_{d}_arm_1", 24.0 * d) for d in range(2, 8)]
    lac_tau = float(g.uniform(14, 36))
    pf0 = float(_clip(g.normal(175, 55), 70, 380))
    plt0 = float(_clip(g.normal(175, 75), 25, 520))
    bili0 = float(_clip(g.lognormal(math.log(17), 0.6), 4, 160))
    crea0 = float(_clip(g.lognormal(math.log(155), 0.4), 45, 600))
    gcs_wake = float(g.uniform(48, 130))
    for ev, t_nom in lab_events:
        t = t_nom + (float(g.uniform(-0.4, 0.4)) if t_nom >= 24 else (float(g.uniform(-0.2, 0.3)) if t_nom > 0 else 0))
        if not alive(t + 0.1):
            continue
        d = max(t, 0.0) / 24
        sev = (t / death) if (death is not None and death < 24 * 8) else 0.0  # 0..1 towards death
        if early:
            lac = lact0 * math.exp(0.9 * sev) * float(g.lognormal(0, 0.12))
        else:
            lac = (lact0 - 1.0) * math.exp(-max(t, 0) / lac_tau) + 1.0 + float(g.normal(0, 0.15))
        lac = float(_clip(lac, 0.4, 25))
        ph = float(_clip(7.46 - 0.028 * lac + g.normal(0, 0.025), 6.85, 7.6))
        pf = pf0 * (1 + 0.15 * min(d, 4)) if not early else pf0 * (1 - 0.4 * sev)
        pf = float(_clip(pf * g.lognormal(0, 0.1), 55, 480))
        fio2 = float(_clip(round((0.6 - 0.06 * min(d, 4) + (0.35 * sev if early else 0) + g.normal(0, 0.05)) * 20)
                             / 20, 0.25, 1.0))
        pao2 = float(_clip(pf * fio2, 45, 450))
        plt = plt0 * (1 - 0.12 * min(d, 3) + 0.08 * max(d - 3, 0)) * (1 - 0.5 * sev) * float(g.lognormal(0, 0.06))
        plt = float(_clip(plt, 5, 800))
        bili = float(_clip(bili0 * (1 + 0.6 * sev) * float(g.lognormal(0, 0.08)), 3, 600))
        crea = float(_clip(crea0 * (1 + 0.5 * sev - (0.05 * min(d, 6) if not early else 0))
                             * float(g.lognormal(0, 0.07)), 30, 1200))
        add(ev, "labs", {
            "lab_dt": dt(t), "lactate": _num(lac, 1), "ph": _num(ph, 2), "pao2": _num(pao2, 0),
            "fio2": _num(fio2, 2), "platelets": _num(plt, 0), "bilirubin": _num(bili, 0),
            "creatinine": _num(crea, 0),
        })
        if ev in ("h0_arm_1", "h24_arm_1") or ev.startswith("day_"):
            gcs = 3 + int(round(12 * min(max(t - 24, 0) / gcs_wake, 1.0))) if not early else int(g.integers(3, 7))
            gcs = int(_clip(gcs + int(g.integers(-1, 2)), 3, 15))
            map_t = float(map_end if t > 24 else map0)
            sub = sofa_subscores(round(pao2), fio2, round(plt), round(bili), ne_base_at(t), map_t, gcs, round(crea))
            add(ev, "sofa", {
                "gcs": str(gcs), "sofa_resp": str(sub[0]), "sofa_coag": str(sub[1]), "sofa_liver": str(sub[2]),
                "sofa_cardio": str(sub[3]), "sofa_cns": str(sub[4]), "sofa_renal": str(sub[5]),
                "sofa_total": str(sum(sub)),
            })
        if ev == "h24_arm_1" or ev.startswith("day_"):
            fin = float(_clip(g.normal(4300, 900) * (0.78 ** (d - 1)), 900, 12000))
            urine = float(_clip(g.normal(500, 200) if early else g.normal(900 + 250 * d, 350), 0, 6000))
            fout = urine + float(_clip(g.normal(650, 200), 100, 2500))
            add(ev, "fluids", {"fluid_in": _num(round(fin, -1), 0), "fluid_out": _num(round(fout, -1), 0),
                               "urine_out": _num(round(urine, -1), 0)})

    # ---------------- ventilation ----------------
    intub = icu_adm_h + float(g.uniform(0, min(6.0, -icu_adm_h - 1.0)))
    vent: list[tuple[float, float | None]] = []
    last_extub = None
    if early:
        vent.append((intub, None))
    else:
        ext = float(g.uniform(3, 14)) * 24
        if not alive(ext):
            vent.append((intub, None))
        else:
            vent.append((intub, ext))
            last_extub = ext
            if g.random() < p.reintubation_rate:
                re = ext + float(g.uniform(6, 72))
                if alive(re):
                    ext2 = re + float(g.uniform(2, 7)) * 24
                    vent.append((re, ext2 if alive(ext2) else None))
                    last_extub = ext2 if alive(ext2) else None
    for k, (a, b) in enumerate(vent, start=1):
        add("icu_arm_1", "ventilation", {"intub_dt": dt(a), "extub_dt": dt(b) if b is not None else ""}, k)

    # ---------------- adverse events ----------------
    aes: list[dict[str, str]] = []
    last_dose = max(b for _, b, _ in segments if b is not None)

    def ae_row(term, decod, bodsys, aesi, start, end, serious, crit, grade, rel, action, outcome):
        return {
            "ae_term": term, "ae_decod": decod, "ae_bodsys": bodsys, "ae_start_dt": dt(start),
            "ae_end_dt": dt(end) if end is not None else "", "ae_serious": "1" if serious else "0",
            "ae_ser_crit": crit if serious else "", "ae_grade": grade, "ae_rel": rel, "ae_action": action,
            "ae_outcome": outcome, "ae_aesi": aesi, "_start": start,
        }

    if brady_h is not None:
        aes.append(ae_row("Bradycardie sinusale", "Bradycardia", "Cardiac disorders", "1", brady_h - 0.1,
                          brady_h + float(g.uniform(0.5, 3)), False, "", "2", "4", "3", "1"))
    if af_start is not None and not paced and alive(af_start):
        end = af_start + af_len - 0.5
        aes.append(ae_row("FA paroxystique", "Atrial fibrillation", "Cardiac disorders", "3", af_start - 0.2,
                          end if alive(end) else None, False, "", "2", "2", "1", "1" if alive(end) else "3"))
    horizon = min(alive_end, 14 * 24.0) - 0.5
    for _ in range(int(g.poisson(p.ae_mean_count))):
        term, decod, bodsys, aesi, _w = AE_CATALOGUE[int(g.choice(len(AE_CATALOGUE), p=_AE_W))]
        if g.random() < p.ae_before_first_dose_rate:
            start = float(g.uniform(max(icu_adm_h, -12.0), drug_start - 0.05))
        else:
            if horizon <= drug_start + 0.5:
                continue
            start = float(g.uniform(drug_start, horizon))
        end = start + float(g.uniform(1, 120))
        ongoing = not alive(end)
        serious = g.random() < p.ae_serious_rate
        crit = str(int(g.choice([2, 3, 6]))) if serious else ""
        grade = str(int(g.integers(3, 5))) if serious else str(int(g.integers(1, 4)))
        rel = str(int(g.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.2, 0.05])))
        during = drug_start <= start <= last_dose
        action = str(int(g.choice([1, 2, 3], p=[0.8, 0.1, 0.1]))) if during else "1"
        outcome = "3" if ongoing else str(int(g.choice([1, 2, 4], p=[0.8, 0.15, 0.05])))
        aes.append(ae_row(term, decod, bodsys, aesi, start, None if ongoing else end, serious, crit, grade, rel,
                          action, outcome))
    if death is not None:
        term, decod, bodsys = FATAL_EARLY if early else FATAL_LATE
        start = max(death - float(g.uniform(2, 24)), drug_start + 0.05, death * 0.5)
        action = "4" if drug_start <= start <= last_dose and start < last_dose else "1"
        aes.append(ae_row(term, decod, bodsys, "0", start, death, True, "1", "5", "1", action, "5"))
    aes.sort(key=lambda a: a["_start"])
    for k, a in enumerate(aes, start=1):
        a.pop("_start")
        add("icu_arm_1", "adverse_events", a, k)

    # ---------------- end of study ----------------
    eos = {"vital_status": "1", "death_dt": "", "death_cause": "", "icu_disch_dt": "", "hosp_disch_dt": "",
           "last_contact_dt": "", "withdrawal": "0"}
    icu_disch = (last_extub + float(g.uniform(24, 120))) if last_extub is not None else None
    if icu_disch is not None and not alive(icu_disch):
        icu_disch = None
    hosp_disch = icu_disch + float(g.uniform(4, 30)) * 24 if icu_disch is not None else None
    if hosp_disch is not None and not alive(hosp_disch + 24):
        hosp_disch = None
    if icu_disch is not None:
        eos["icu_disch_dt"] = clock.date(at(icu_disch))
    if hosp_disch is not None:
        eos["hosp_disch_dt"] = clock.date(at(hosp_disch))
    if death is not None:
        causes = DEATH_CAUSES_EARLY if early else DEATH_CAUSES_LATE
        eos.update(vital_status="2", death_dt=dt(death), death_cause=str(g.choice(causes)),
                   last_contact_dt=clock.date(at(death)))
    else:
        eos["last_contact_dt"] = clock.date(at(p.follow_up_days * 24.0 + float(g.integers(0, 8)) * 24))
    add("end_of_study_arm_1", "end_of_study", eos)
    return _sorted(recs)


def _sorted(recs: list[Record]) -> list[Record]:
    from .dictionary import EVENT_ORDER, FORM_ORDER

    return sorted(recs, key=lambda r: (EVENT_ORDER[r.event], r.instance is not None, FORM_ORDER[r.form],
                                       r.instance or 0))
