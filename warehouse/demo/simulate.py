"""Per-subject generation: one subject's eCRF records (all events and forms), from its own random stream.

Every value is produced as the exact text of the export. A subject's output depends only on the seed, the design
(`design.py`) and the subject's index, so it does not depend on how subjects are chunked or written.

`simulate_subject` runs one step per eCRF form or clinical process (`screening.py`, `circulation.py`, `organs.py`,
`outcomes.py`), sharing a `SubjectSim` (`subject.py`). The steps draw from the subject's stream in turn, so their
order (and the order of the draws within each) is part of the output: reordering them changes every later value.
"""

from __future__ import annotations

from .circulation import (schedule_norepinephrine, schedule_pe_challenges, simulate_hemodynamics,
                          simulate_pe_challenges, simulate_study_drug, simulate_vasopressors)
from .design import Subject
from .organs import simulate_labs_sofa_fluids, simulate_ventilation
from .outcomes import simulate_adverse_events, simulate_end_of_study
from .params import DemoParameters
from .screening import draw_baseline, simulate_demographics, simulate_eligibility, simulate_randomisation
from .subject import Clock, Record, SubjectSim

__all__ = ["Clock", "Record", "simulate_subject"]


def simulate_subject(s: Subject, p: DemoParameters, seed: int, clock: Clock) -> list[Record]:
    """All eCRF records of one subject, sorted in export order (event, then form, then instance)."""
    sim = SubjectSim.start(s, p, seed, clock)
    sim.base = draw_baseline(sim)
    simulate_eligibility(sim)
    simulate_demographics(sim)
    if s.screen_failure:
        return _sorted(sim.recs)
    simulate_randomisation(sim)
    schedule_pe_challenges(sim)
    schedule_norepinephrine(sim)
    simulate_vasopressors(sim)
    simulate_study_drug(sim)
    simulate_hemodynamics(sim)
    simulate_pe_challenges(sim)
    simulate_labs_sofa_fluids(sim)
    simulate_ventilation(sim)
    simulate_adverse_events(sim)
    simulate_end_of_study(sim)
    return _sorted(sim.recs)


def _sorted(recs: list[Record]) -> list[Record]:
    from .dictionary import EVENT_ORDER, FORM_ORDER

    return sorted(recs, key=lambda r: (EVENT_ORDER[r.event], r.instance is not None, FORM_ORDER[r.form],
                                       r.instance or 0))
