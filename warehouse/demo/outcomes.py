"""Outcomes: the adverse_events form (catalogue, expected and fatal events) and the end_of_study form."""

from __future__ import annotations

import numpy as np

from .subject import SubjectSim

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


def _ae_row(sim: SubjectSim, term, decod, bodsys, aesi, start, end, serious, crit, grade, rel, action,
            outcome) -> dict:
    return {
        "ae_term": term, "ae_decod": decod, "ae_bodsys": bodsys, "ae_start_dt": sim.dt(start),
        "ae_end_dt": sim.dt(end) if end is not None else "", "ae_serious": "1" if serious else "0",
        "ae_ser_crit": crit if serious else "", "ae_grade": grade, "ae_rel": rel, "ae_action": action,
        "ae_outcome": outcome, "ae_aesi": aesi, "_start": start,
    }


def simulate_adverse_events(sim: SubjectSim) -> None:
    """The adverse_events form: the bradycardia and atrial fibrillation already simulated, a Poisson number from
    the catalogue, the fatal event of a death; numbered in order of onset."""
    g, p, alive, drug, hemo = sim.g, sim.p, sim.alive, sim.drug, sim.hemo
    aes: list[dict] = []
    if drug.brady_h is not None:
        aes.append(_ae_row(sim, "Bradycardie sinusale", "Bradycardia", "Cardiac disorders", "1", drug.brady_h - 0.1,
                           drug.brady_h + float(g.uniform(0.5, 3)), False, "", "2", "4", "3", "1"))
    if hemo.af_start is not None and not hemo.paced and alive(hemo.af_start):
        end = hemo.af_start + hemo.af_len - 0.5
        aes.append(_ae_row(sim, "FA paroxystique", "Atrial fibrillation", "Cardiac disorders", "3",
                           hemo.af_start - 0.2, end if alive(end) else None, False, "", "2", "2", "1",
                           "1" if alive(end) else "3"))
    horizon = min(sim.alive_end, 14 * 24.0) - 0.5
    for _ in range(int(g.poisson(p.ae_mean_count))):
        ae = _catalogue_ae(sim, horizon)
        if ae is not None:
            aes.append(ae)
    if sim.death is not None:
        aes.append(_fatal_ae(sim))
    aes.sort(key=lambda a: a["_start"])
    for k, a in enumerate(aes, start=1):
        a.pop("_start")
        sim.add("icu_arm_1", "adverse_events", a, k)


def _catalogue_ae(sim: SubjectSim, horizon: float) -> dict | None:
    """One adverse event from the catalogue, before the first dose or during follow-up (None: no time left)."""
    g, p, drug_start = sim.g, sim.p, sim.drug.start
    term, decod, bodsys, aesi, _w = AE_CATALOGUE[int(g.choice(len(AE_CATALOGUE), p=_AE_W))]
    if g.random() < p.ae_before_first_dose_rate:
        start = float(g.uniform(max(sim.base.icu_adm_h, -12.0), drug_start - 0.05))
    else:
        if horizon <= drug_start + 0.5:
            return None
        start = float(g.uniform(drug_start, horizon))
    end = start + float(g.uniform(1, 120))
    ongoing = not sim.alive(end)
    serious = g.random() < p.ae_serious_rate
    crit = str(int(g.choice([2, 3, 6]))) if serious else ""
    grade = str(int(g.integers(3, 5))) if serious else str(int(g.integers(1, 4)))
    rel = str(int(g.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.2, 0.05])))
    during = drug_start <= start <= sim.drug.last_dose
    action = str(int(g.choice([1, 2, 3], p=[0.8, 0.1, 0.1]))) if during else "1"
    outcome = "3" if ongoing else str(int(g.choice([1, 2, 4], p=[0.8, 0.15, 0.05])))
    return _ae_row(sim, term, decod, bodsys, aesi, start, None if ongoing else end, serious, crit, grade, rel,
                   action, outcome)


def _fatal_ae(sim: SubjectSim) -> dict:
    """The fatal adverse event of a death: refractory septic shock (early) or multiple organ failure (late)."""
    death, drug_start, last_dose = sim.death, sim.drug.start, sim.drug.last_dose
    term, decod, bodsys = FATAL_EARLY if sim.early else FATAL_LATE
    start = max(death - float(sim.g.uniform(2, 24)), drug_start + 0.05, death * 0.5)
    action = "4" if drug_start <= start <= last_dose and start < last_dose else "1"
    return _ae_row(sim, term, decod, bodsys, "0", start, death, True, "1", "5", "1", action, "5")


def simulate_end_of_study(sim: SubjectSim) -> None:
    """The end_of_study form: ICU and hospital discharge after the last extubation, death or last contact."""
    g, p, alive, death = sim.g, sim.p, sim.alive, sim.death
    eos = {"vital_status": "1", "death_dt": "", "death_cause": "", "icu_disch_dt": "", "hosp_disch_dt": "",
           "last_contact_dt": "", "withdrawal": "0"}
    icu_disch = (sim.last_extub + float(g.uniform(24, 120))) if sim.last_extub is not None else None
    if icu_disch is not None and not alive(icu_disch):
        icu_disch = None
    hosp_disch = icu_disch + float(g.uniform(4, 30)) * 24 if icu_disch is not None else None
    if hosp_disch is not None and not alive(hosp_disch + 24):
        hosp_disch = None
    if icu_disch is not None:
        eos["icu_disch_dt"] = sim.date(icu_disch)
    if hosp_disch is not None:
        eos["hosp_disch_dt"] = sim.date(hosp_disch)
    if death is not None:
        causes = DEATH_CAUSES_EARLY if sim.early else DEATH_CAUSES_LATE
        eos.update(vital_status="2", death_dt=sim.dt(death), death_cause=str(g.choice(causes)),
                   last_contact_dt=sim.date(death))
    else:
        eos["last_contact_dt"] = sim.date(p.follow_up_days * 24.0 + float(g.integers(0, 8)) * 24)
    sim.add("end_of_study_arm_1", "end_of_study", eos)
