"""Organ function: labs, SOFA and fluid balance at their events, and mechanical ventilation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .subject import SubjectSim, clip, num

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


@dataclass
class LabCourse:
    """A subject's lab trajectories: lactate clearance time, baseline P/F ratio, platelets, bilirubin, creatinine,
    and the hour sedation is lifted (GCS)."""

    lac_tau: float
    pf0: float
    plt0: float
    bili0: float
    crea0: float
    gcs_wake: float


@dataclass
class LabValues:
    """One blood sample's values, as SOFA scores them."""

    pao2: float
    fio2: float
    platelets: float
    bilirubin: float
    creatinine: float


def simulate_labs_sofa_fluids(sim: SubjectSim) -> None:
    """Labs at H0 (before randomisation), H6, H12, H24 and days 2-7; SOFA at H0, H24 and daily; fluid balance from
    H24 daily. Per event, in that order (each form's draws follow the previous form's)."""
    g = sim.g
    lab_events = [("h0_arm_1", -float(g.uniform(0.15, 1.0))), ("h6_arm_1", 6.0), ("h12_arm_1", 12.0),
                  ("h24_arm_1", 24.0)] + [(f"day_{d}_arm_1", 24.0 * d) for d in range(2, 8)]
    course = LabCourse(
        lac_tau=float(g.uniform(14, 36)),
        pf0=float(clip(g.normal(175, 55), 70, 380)),
        plt0=float(clip(g.normal(175, 75), 25, 520)),
        bili0=float(clip(g.lognormal(math.log(17), 0.6), 4, 160)),
        crea0=float(clip(g.lognormal(math.log(155), 0.4), 45, 600)),
        gcs_wake=float(g.uniform(48, 130)),
    )
    for ev, t_nom in lab_events:
        t = t_nom + (float(g.uniform(-0.4, 0.4)) if t_nom >= 24 else (float(g.uniform(-0.2, 0.3)) if t_nom > 0 else 0))
        if not sim.alive(t + 0.1):
            continue
        lab = simulate_labs(sim, course, ev, t)
        if ev in ("h0_arm_1", "h24_arm_1") or ev.startswith("day_"):
            simulate_sofa(sim, course, ev, t, lab)
        if ev == "h24_arm_1" or ev.startswith("day_"):
            simulate_fluids(sim, ev, t)


def simulate_labs(sim: SubjectSim, course: LabCourse, ev: str, t: float) -> LabValues:
    """The labs form at hour t: lactate clears (or climbs towards an early death), gas exchange, organ values."""
    g, death, early, lact0 = sim.g, sim.death, sim.early, sim.base.lact0
    d = max(t, 0.0) / 24
    sev = (t / death) if (death is not None and death < 24 * 8) else 0.0  # 0..1 towards death
    if early:
        lac = lact0 * math.exp(0.9 * sev) * float(g.lognormal(0, 0.12))
    else:
        lac = (lact0 - 1.0) * math.exp(-max(t, 0) / course.lac_tau) + 1.0 + float(g.normal(0, 0.15))
    lac = float(clip(lac, 0.4, 25))
    ph = float(clip(7.46 - 0.028 * lac + g.normal(0, 0.025), 6.85, 7.6))
    pf = course.pf0 * (1 + 0.15 * min(d, 4)) if not early else course.pf0 * (1 - 0.4 * sev)
    pf = float(clip(pf * g.lognormal(0, 0.1), 55, 480))
    fio2 = float(clip(round((0.6 - 0.06 * min(d, 4) + (0.35 * sev if early else 0) + g.normal(0, 0.05)) * 20)
                       / 20, 0.25, 1.0))
    pao2 = float(clip(pf * fio2, 45, 450))
    plt = course.plt0 * (1 - 0.12 * min(d, 3) + 0.08 * max(d - 3, 0)) * (1 - 0.5 * sev) * float(g.lognormal(0, 0.06))
    plt = float(clip(plt, 5, 800))
    bili = float(clip(course.bili0 * (1 + 0.6 * sev) * float(g.lognormal(0, 0.08)), 3, 600))
    crea = float(clip(course.crea0 * (1 + 0.5 * sev - (0.05 * min(d, 6) if not early else 0))
                       * float(g.lognormal(0, 0.07)), 30, 1200))
    sim.add(ev, "labs", {
        "lab_dt": sim.dt(t), "lactate": num(lac, 1), "ph": num(ph, 2), "pao2": num(pao2, 0),
        "fio2": num(fio2, 2), "platelets": num(plt, 0), "bilirubin": num(bili, 0),
        "creatinine": num(crea, 0),
    })
    return LabValues(pao2, fio2, plt, bili, crea)


def simulate_sofa(sim: SubjectSim, course: LabCourse, ev: str, t: float, lab: LabValues) -> None:
    """The SOFA form at hour t, scored from the same sample's labs, the NE dose and MAP at t, and the GCS."""
    g, early = sim.g, sim.early
    gcs = 3 + int(round(12 * min(max(t - 24, 0) / course.gcs_wake, 1.0))) if not early else int(g.integers(3, 7))
    gcs = int(clip(gcs + int(g.integers(-1, 2)), 3, 15))
    map_t = float(sim.hemo.map_end if t > 24 else sim.hemo.map0)
    sub = sofa_subscores(round(lab.pao2), lab.fio2, round(lab.platelets), round(lab.bilirubin), sim.ne_base_at(t),
                         map_t, gcs, round(lab.creatinine))
    sim.add(ev, "sofa", {
        "gcs": str(gcs), "sofa_resp": str(sub[0]), "sofa_coag": str(sub[1]), "sofa_liver": str(sub[2]),
        "sofa_cardio": str(sub[3]), "sofa_cns": str(sub[4]), "sofa_renal": str(sub[5]),
        "sofa_total": str(sum(sub)),
    })


def simulate_fluids(sim: SubjectSim, ev: str, t: float) -> None:
    """The fluids form of the day ending at hour t: fluid in (falling day by day), urine and total out."""
    g, early = sim.g, sim.early
    d = max(t, 0.0) / 24
    fin = float(clip(g.normal(4300, 900) * (0.78 ** (d - 1)), 900, 12000))
    urine = float(clip(g.normal(500, 200) if early else g.normal(900 + 250 * d, 350), 0, 6000))
    fout = urine + float(clip(g.normal(650, 200), 100, 2500))
    sim.add(ev, "fluids", {"fluid_in": num(round(fin, -1), 0), "fluid_out": num(round(fout, -1), 0),
                           "urine_out": num(round(urine, -1), 0)})


def simulate_ventilation(sim: SubjectSim) -> None:
    """The ventilation form: intubated before H0, extubated after 3-14 days (unless dead first), some reintubated."""
    g, p, alive = sim.g, sim.p, sim.alive
    icu_adm_h = sim.base.icu_adm_h
    intub = icu_adm_h + float(g.uniform(0, min(6.0, -icu_adm_h - 1.0)))
    vent: list[tuple[float, float | None]] = []
    last_extub = None
    if sim.early:
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
        sim.add("icu_arm_1", "ventilation", {"intub_dt": sim.dt(a), "extub_dt": sim.dt(b) if b is not None else ""}, k)
    sim.last_extub = last_extub
