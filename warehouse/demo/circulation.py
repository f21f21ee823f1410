"""Shock and its treatment: PE challenges, norepinephrine and other vasopressors, the study drug, hemodynamics.

Steps of `simulate_subject`, in its order; `monitor_readings` draws from a stream of its own.
"""

from __future__ import annotations

import math

import numpy as np

from .design import PE_HOURS, STREAM_MONITOR
from .params import DemoParameters
from .subject import DrugCourse, HemoCourse, Record, SubjectSim, clip, num

def schedule_pe_challenges(sim: SubjectSim) -> None:
    """The hour of each PE challenge: shortly before H0, then around its nominal hour."""
    g = sim.g
    sim.pe_time = {"h0_arm_1": -float(g.integers(10, 40)) / 60}
    for ev, hour in PE_HOURS.items():
        if ev != "h0_arm_1":
            sim.pe_time[ev] = hour + float(g.integers(-15, 20)) / 60


def schedule_norepinephrine(sim: SubjectSim) -> None:
    """NE rate changes from before H0 to weaning (or death), none near a PE challenge; as labelled on the eCRF."""
    g, p, s, b, death, early = sim.g, sim.p, sim.s, sim.base, sim.death, sim.early
    ne0 = b.ne0
    ne_start_h = max(b.icu_adm_h + 0.5, -float(g.uniform(4, 12)))
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
    times = [t for t in times.tolist() if all(abs(t - pt) > freeze for ev, pt in sim.pe_time.items() if ev in s.pe)]
    tau = float(g.uniform(14, 30))
    for t in times:
        if early:
            target = ne0 * math.exp(t / max(death, 4.0) * float(g.uniform(0.5, 1.4)))
        else:
            target = ne0 * math.exp(-t / tau)
        rate = float(clip(target * g.lognormal(0, 0.15), 0.03, 3.0))
        vp_rows.append((t, 1, rate))
    vp_rows.append((ne_end, 1, 0.0))
    ne_points = [(h, r) for h, d, r in vp_rows]
    # labelled rates, rounded as written on the eCRF; base = labelled x salt factor
    ne_labelled = [(h, round(r / sim.f_salt, 2) if r > 0 else 0.0) for h, r in ne_points]
    sim.ne_labelled = [(h, r if (r > 0 or k == len(ne_labelled) - 1) else 0.01)
                       for k, (h, r) in enumerate(ne_labelled)]
    sim.ne_end = ne_end


def simulate_vasopressors(sim: SubjectSim) -> None:
    """The vasopressors form: the NE schedule, vasopressin for some, epinephrine for some of the dying."""
    g, p, death, early, ne_end = sim.g, sim.p, sim.death, sim.early, sim.ne_end
    other_vp: list[tuple[float, int, float, str]] = []  # (hour, drug, rate, unit)
    if g.random() < p.vasopressin_rate + (0.25 if early else 0.0):
        start = float(g.uniform(0.5, min(20.0, ne_end - 0.2))) if ne_end > 1 else ne_end / 2
        other_vp.append((start, 3, 0.03, "2"))
        other_vp.append((ne_end, 3, 0.0, "2"))
    if early and death > 4 and g.random() < p.epinephrine_rate_dying:
        start = death * float(g.uniform(0.5, 0.85))
        other_vp.append((start, 2, round(float(g.uniform(0.1, 0.6)), 2), "1"))
        other_vp.append((death, 2, 0.0, "1"))
    all_vp = [(h, 1, r, "1") for h, r in sim.ne_labelled] + other_vp
    all_vp.sort(key=lambda x: (x[0], x[1]))
    for k, (h, drug, rate, unit) in enumerate(all_vp, start=1):
        sim.add("icu_arm_1", "vasopressors", {
            "vp_drug": str(drug), "vp_dt": sim.dt(h), "vp_rate": num(rate, 2), "vp_unit": unit,
            "vp_salt": str(sim.salt) if drug == 1 else "",
        }, k)


def simulate_study_drug(sim: SubjectSim) -> None:
    """The study-drug form: one infusion, stopped by a bradycardia (then restarted), by death, or early."""
    g, p, s, death, early = sim.g, sim.p, sim.s, sim.death, sim.early
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
    drug_rate = num(sim.base.weight * p.drug_dose_ug_kg_h / p.drug_concentration_ug_ml, 1)
    for k, (a, b, why) in enumerate(segments, start=1):
        sim.add("icu_arm_1", "study_drug", {
            "drug_start_dt": sim.dt(a), "drug_stop_dt": sim.dt(b) if b is not None else "", "drug_rate": drug_rate,
            "drug_stop_reason": why,
        }, k)
    sim.drug = DrugCourse(drug_start, segments, brady_h)


def draw_hemodynamic_course(sim: SubjectSim) -> HemoCourse:
    """MAP and heart rate at H0 and at the end of the first day, pulse pressure, atrial fibrillation, pacing."""
    g, early = sim.g, sim.early
    map0 = sim.s.pe["h0_arm_1"][0]
    map_end = float(g.normal(73, 5)) if not early else float(g.normal(50, 5))
    hr0 = float(clip(g.normal(108, 15), 75, 150))
    hr_end = hr0 - float(g.uniform(5, 20)) if not early else hr0 + float(g.uniform(0, 15))
    pp = float(clip(g.normal(48, 9), 28, 80))
    af_start = int(g.integers(1, 20)) if g.random() < 0.12 else None
    af_len = int(g.integers(2, 6))
    paced = g.random() < 0.02
    return HemoCourse(map0, map_end, hr0, hr_end, pp, af_start, af_len, paced)


def simulate_hemodynamics(sim: SubjectSim) -> None:
    """The hemodynamics form, hourly H0-H24 (MAP at a PE challenge's hour is the challenge's MAP before), or at
    bedside-monitor resolution between the hourly values."""
    g, p, s, death, early = sim.g, sim.p, sim.s, sim.death, sim.early
    hours = [k for k in range(25) if sim.alive(k)]
    c = sim.hemo = draw_hemodynamic_course(sim)
    brady_h = sim.drug.brady_h
    e_map = e_hr = 0.0
    span = (death if early else 24.0) or 24.0
    anchors: list[tuple[int, int, int, int, int, str]] = []  # hourly values, for monitor-resolution readings
    for inst, k in enumerate(hours, start=1):
        frac = min(k / max(span, 1.0), 1.0)
        e_map = 0.55 * e_map + float(g.normal(0, 3.5))
        e_hr = 0.6 * e_hr + float(g.normal(0, 4))
        m = c.map0 + (c.map_end - c.map0) * (1 - math.exp(-3 * frac)) / (1 - math.exp(-3)) + e_map
        ev = {0: "h0_arm_1", 6: "h6_arm_1", 12: "h12_arm_1"}.get(k)
        if ev is not None and ev in s.pe:
            m = s.pe[ev][0]
        m = int(clip(round(m), 35, 130))
        hr = c.hr0 + (c.hr_end - c.hr0) * frac + e_hr
        rhythm = "1"
        if c.af_start is not None and c.af_start <= k < c.af_start + c.af_len:
            rhythm, hr = "2", hr + 25
        if c.paced:
            rhythm, hr = "3", 80 + float(g.normal(0, 1))
        if brady_h is not None and k == brady_h:
            hr = float(g.integers(p.bradycardia_hr_range[0], p.bradycardia_hr_range[1] + 1))
        hr_i = int(clip(round(hr), 30, 190))
        pp_k = c.pp + float(g.normal(0, 4))
        dbp = int(clip(round(m - pp_k / 3), 15, 150))  # the eCRF's plausible ranges (SBP 40-250, DBP 15-150)
        sbp = int(clip(round(dbp + pp_k), 40, 250))
        if p.hemo_interval_minutes >= 60:
            sim.add("icu_arm_1", "hemodynamics", {
                "hd_dt": sim.dt(k), "hd_map": str(m), "hd_sbp": str(sbp), "hd_dbp": str(dbp), "hd_hr": str(hr_i),
                "hd_rhythm": rhythm,
            }, inst)
        else:
            sim.status()  # the draw the hourly row would take, so every later value is the same at any resolution
            anchors.append((k, m, sbp, dbp, hr_i, rhythm))
    if p.hemo_interval_minutes < 60:
        sim.recs.extend(monitor_readings(anchors, p, sim.seed, s.index, sim.dt, death))


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


def simulate_pe_challenges(sim: SubjectSim) -> None:
    """The pe_challenge form of each challenge event: the design's MAPs, the dose reached, aborted or not."""
    g, p = sim.g, sim.p
    for ev in PE_HOURS:
        if ev not in sim.s.pe:
            continue
        before, mx = sim.s.pe[ev]
        aborted = g.random() < p.pe_abort_rate
        step = int(g.integers(2, len(p.pe_dose_steps))) if not aborted else int(g.integers(0, 2))
        sim.add(ev, "pe_challenge", {
            "pe_dt": sim.dt(sim.pe_time[ev]), "pe_map_before": str(before),
            "pe_ne_rate": num(sim.ne_label_at(sim.pe_time[ev]), 2), "pe_max_dose": num(p.pe_dose_steps[step], 1),
            "pe_map_max": str(mx), "pe_aborted": "1" if aborted else "0",
            "pe_abort_reason": str(g.choice(["tachycardie > 150/min", "ESV, arrêt du test", "MAP > 110 mmHg"]))
            if aborted else "",
        })
