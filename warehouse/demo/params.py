"""The demo study's design: every target and design choice of the generator, as named parameters.

Figures marked "published" come from the ADRESS abstract (see ../shared/study/ADRESS.md); everything else is a
design choice of the synthetic study, kept here rather than buried in the generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _pe_targets() -> dict[str, dict[str, tuple[float, float]]]:
    # event -> arm -> (mean, SD) of the PE response (MAP at max PE dose / MAP before), over subjects with a challenge.
    return {
        "h0_arm_1": {"DEX": (1.26, 0.20), "PBO": (1.45, 0.26)},  # design: "lower with dex, p 0.029" (published); values ours, chosen so a t-test gives p near 0.029 at N=32
        "h6_arm_1": {"DEX": (1.26, 0.23), "PBO": (1.45, 0.26)},  # published: 1.26 +/- 0.23 vs 1.45 +/- 0.26
        "h12_arm_1": {"DEX": (1.30, 0.24), "PBO": (1.42, 0.25)},  # design
    }


@dataclass(frozen=True)
class DemoParameters:
    """Parameters of the synthetic ADRESS-like study. Same parameters + same seed => byte-identical exports."""

    study_id: str = "ADRESS"
    study_name: str = "ADRESS demo: dexmedetomidine for refractory septic shock (synthetic)"

    # --- calendar (no wall clock anywhere) ---
    first_randomisation: str = "2019-06-03"  # date of the first randomisation
    recruitment_days: int = 730  # randomisations spread over ~2 years
    export_date: str = "2021-10-15"  # the "export date" stamped in file names and the ODM header
    follow_up_days: int = 90  # last contact for survivors (end_of_study)

    # --- sites and randomisation ---
    sites: tuple[str, ...] = ("01", "02", "03", "04", "05")
    site_weights: tuple[float, ...] = (0.28, 0.24, 0.20, 0.16, 0.12)  # share of subjects per site
    # NE salt on each site's labels: 1 base, 2 tartrate (French label), 3 bitartrate monohydrate
    site_ne_salt: tuple[int, ...] = (2, 2, 1, 1, 3)
    block_size: int = 4  # permuted blocks within site, kits allocated to sites block by block
    arms: tuple[str, ...] = ("DEX", "PBO")
    arm_labels: tuple[str, ...] = ("Dexmedetomidine", "Placebo")
    screen_failures: int = 0  # extra screened, not randomised subjects (screening event only, eligible = 0)
    # hemodynamics: hourly H0-H24 as the eCRF collects them; less than 60 gives bedside-monitor resolution
    # (1 = a reading a minute: about 1,440 rows per subject), the hourly values kept exactly
    hemo_interval_minutes: int = 60

    # --- primary endpoint calibration (exported integers, sample SD ddof=1, rounded to 2 decimals) ---
    pe_targets: dict[str, dict[str, tuple[float, float]]] = field(default_factory=_pe_targets)
    pe_calibration_tolerance: float = 0.004  # |stat - target| below this => the 2-decimal rounding hits the target
    pe_ratio_floor: float = 0.92  # no PE response below this before calibration (phenylephrine raises MAP)
    pe_map_before_mean: float = 62.0  # mmHg, MAP before each challenge (refractory shock)
    pe_map_before_sd: float = 5.0
    pe_map_before_range: tuple[int, int] = (48, 78)
    pe_dose_steps: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)  # PE doses, ug/kg/min
    pe_abort_rate: float = 0.05
    pe_ne_freeze_minutes: int = 60  # no NE rate change within this many minutes either side of a challenge

    # --- mortality (deaths within k x 24 h of randomisation), as shares of each arm, assigned by frailty rank ---
    mortality_d3: dict[str, float] = field(default_factory=lambda: {"DEX": 0.50, "PBO": 0.13})
    # published: day-30/90 mortality higher with dex but not significant => placebo deaths catch up after day 3
    mortality_d3_d30: dict[str, float] = field(default_factory=lambda: {"DEX": 0.06, "PBO": 0.22})
    mortality_d30_d90: dict[str, float] = field(default_factory=lambda: {"DEX": 0.06, "PBO": 0.06})
    early_death_min_hours: float = 2.0  # earliest death after H0

    # --- study drug ---
    drug_dose_ug_kg_h: float = 1.0  # fixed dose, both arms same volume (placebo = 5% glucose)
    drug_concentration_ug_ml: float = 4.0
    drug_start_delay_minutes: tuple[int, int] = (20, 60)  # after H0 (the H0 PE challenge comes first)
    infusion_max_hours: float = 48.0  # end of protocol
    drug_restart_after_brady_hours: tuple[float, float] = (1.0, 4.0)

    # --- norepinephrine ---
    ne_base_h0_median: float = 0.65  # ug/kg/min as base at H0 (inclusion: >= 0.25 base)
    ne_base_h0_min: float = 0.26
    ne_changes_range: tuple[int, int] = (5, 12)  # rate changes per subject
    vasopressin_rate: float = 0.22  # share of subjects also on vasopressin
    epinephrine_rate_dying: float = 0.35  # share of early deaths given epinephrine

    # --- ventilation, adverse events ---
    reintubation_rate: float = 0.2
    ae_mean_count: float = 1.6  # Poisson mean of non-fatal AEs per subject
    ae_before_first_dose_rate: float = 0.12  # share of AEs starting before the first dose
    ae_serious_rate: float = 0.2
    bradycardia_ae_rate: dict[str, float] = field(default_factory=lambda: {"DEX": 0.30, "PBO": 0.10})
    bradycardia_hr_range: tuple[int, int] = (38, 49)  # HR at a bradycardia episode (threshold: < 50/min)
    form_unverified_rate: float = 0.04  # share of forms exported with status 1 (unverified) instead of 2

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for the manifest)."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def arm_label(self, arm: str) -> str:
        return self.arm_labels[self.arms.index(arm)]
