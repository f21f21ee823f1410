"""Screening and H0: the patient's baseline, the eligibility, demographics and randomisation forms."""

from __future__ import annotations

import math

import numpy as np

from .subject import Baseline, SubjectSim, clip, num

LETTERS = "ABCDEFGHIJKLMNOPRSTVY"


def draw_baseline(sim: SubjectSim) -> Baseline:
    """The patient at screening: sex, age, size, ICU admission, NE dose and lactate at H0, comorbidities."""
    g, R = sim.g, sim.s.rand_min
    sex = 1 if g.random() < 0.62 else 2
    age_target = float(clip(g.normal(64, 13), 19, 95))
    dob_min = R - int((age_target * 365.25 + g.uniform(0, 360)) * 1440)
    dob = sim.clock.as_datetime(dob_min).date()
    h0_date = sim.clock.as_datetime(R).date()
    age = h0_date.year - dob.year - ((h0_date.month, h0_date.day) < (dob.month, dob.day))
    weight = float(clip(g.normal(82 if sex == 1 else 69, 15), 42, 180))
    height = float(clip(g.normal(176 if sex == 1 else 163, 7), 145, 205))
    icu_adm_h = -float(g.uniform(6, 60))
    ne0 = max(sim.p.ne_base_h0_min, float(g.lognormal(math.log(sim.p.ne_base_h0_median), 0.35)))
    ne0 = min(ne0, 2.2)
    lact0 = float(clip(g.lognormal(math.log(4.2), 0.35), 2.1, 14))
    comorb = (g.random(7) < np.array([0.45, 0.22, 0.12, 0.10, 0.18, 0.12, 0.10])).astype(int)
    n_init = 3 if g.random() < 0.25 else 2
    initials = "".join(LETTERS[k] for k in g.integers(0, len(LETTERS), n_init))
    if g.random() < 0.08:
        initials = initials[0] + "-" + initials[1:]
    return Baseline(sex, dob, age, weight, height, icu_adm_h, ne0, lact0, comorb, initials)


def simulate_eligibility(sim: SubjectSim) -> None:
    """The eligibility form: criteria met (a screen failure's NE dose is too low), screening values."""
    g, p, s, b = sim.g, sim.p, sim.s, sim.base
    elig = {
        "elig_adult": "1", "elig_septic_shock": "1", "elig_fluids": "1", "elig_ne_dose": "1",
        "elig_hypoperfusion": "1", "elig_mech_vent": "1", "elig_sedation": "1", "elig_consent": "1",
        "excl_cardiac_arrest": "0", "excl_low_co": "0", "excl_bradycardia": "0", "excl_av_block": "0",
        "excl_stroke": "0", "excl_liver_failure": "0",
    }
    scr_base = b.ne0 * float(g.uniform(0.9, 1.1)) if not s.screen_failure else float(g.uniform(0.1, 0.24))
    scr_base = max(scr_base, p.ne_base_h0_min) if not s.screen_failure else scr_base
    if s.screen_failure:
        elig["elig_ne_dose"] = "0"
        if g.random() < 0.5:
            elig["excl_low_co"] = "1"
    elig.update({
        "scr_ne_dose": num(scr_base / sim.f_salt, 2),
        "scr_ne_salt": str(sim.salt),
        "scr_lactate": num(b.lact0 * float(g.uniform(0.85, 1.05)), 1),
        "scr_mottling": str(int(g.integers(0, 5))),
        "scr_urine": num(float(g.uniform(0.05, 0.6)), 2),
        "eligible": "0" if s.screen_failure else "1",
    })
    sim.add("screening_arm_1", "eligibility", elig)


def simulate_demographics(sim: SubjectSim) -> None:
    """The demographics form: identity, size, ICU admission, infection source, comorbidities, SAPS II."""
    g, b = sim.g, sim.base
    demo = {
        "initials": b.initials,
        "dob": b.dob.isoformat(),
        "sex": str(b.sex),
        "age": str(b.age),
        "weight": num(b.weight, 1),
        "height": num(b.height, 0),
        "icu_adm_dt": sim.dt(b.icu_adm_h),
        "infection_source": str(int(g.choice(6, p=[0.45, 0.28, 0.1, 0.05, 0.08, 0.04])) + 1),
        **{f"comorbidities___{k + 1}": str(int(v)) for k, v in enumerate(b.comorb)},
        "saps2": str(int(clip(round(g.normal(62, 15)), 15, 130))),
        "chronic_bb": "1" if g.random() < 0.15 else "0",
    }
    sim.add("screening_arm_1", "demographics", demo)


def simulate_randomisation(sim: SubjectSim) -> None:
    """The randomisation form at H0: date-time and kit number."""
    sim.add("h0_arm_1", "randomisation", {"rand_dt": sim.dt(0), "kit_no": sim.s.kit_no or ""})
