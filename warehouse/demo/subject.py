"""The state one subject's simulation shares between its steps (`SubjectSim`), and what the steps write (`Record`).

`Clock` turns study minutes into export text; `clip` and `num` are the value helpers every form uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from .design import STREAM_SUBJECT, Subject
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


def clip(x: float, lo: float, hi: float) -> float:
    """x bounded to [lo, hi]."""
    return lo if x < lo else hi if x > hi else x


def num(x: float, decimals: int) -> str:
    """x as exported with `decimals` decimals ("-0" written "0")."""
    s = f"{x:.{decimals}f}"
    return "0" if decimals == 0 and s == "-0" else s


@dataclass
class Baseline:
    """What screening draws about the patient; later forms read weight, ICU admission, NE dose and lactate."""

    sex: int
    dob: date
    age: int
    weight: float
    height: float
    icu_adm_h: float  # ICU admission, hours from H0 (negative)
    ne0: float  # NE base dose at H0 (ug/kg/min)
    lact0: float  # lactate at H0 (mmol/L)
    comorb: np.ndarray
    initials: str


@dataclass
class DrugCourse:
    """The study-drug infusion: start (hours from H0), infusion segments and the hour of a bradycardia, if any."""

    start: float
    segments: list[tuple[float, float | None, str]]  # (start, stop, stop reason)
    brady_h: int | None

    @property
    def last_dose(self) -> float:
        return max(b for _, b, _ in self.segments if b is not None)


@dataclass
class HemoCourse:
    """The hourly hemodynamic trajectory's parameters; SOFA reads the MAPs and adverse events the rhythm."""

    map0: int
    map_end: float
    hr0: float
    hr_end: float
    pp: float  # pulse pressure
    af_start: int | None  # hour an episode of atrial fibrillation starts
    af_len: int
    paced: bool


@dataclass
class SubjectSim:
    """One subject being simulated: its own random stream, the records written so far, and its course as drawn.

    Every step draws from `g` in turn, so the order of the steps (and of the draws within each) is the output.
    """

    s: Subject
    p: DemoParameters
    seed: int
    clock: Clock
    g: np.random.Generator
    salt: int  # the site's NE salt code
    f_salt: float  # labelled rate x f_salt = NE base rate
    recs: list[Record] = field(default_factory=list)
    base: Baseline | None = None
    pe_time: dict[str, float] = field(default_factory=dict)  # event -> hour of its PE challenge
    ne_end: float = 0.0  # hour NE stops
    ne_labelled: list[tuple[float, float]] = field(default_factory=list)  # (hour, labelled NE rate) as written
    drug: DrugCourse | None = None
    hemo: HemoCourse | None = None
    last_extub: float | None = None

    @classmethod
    def start(cls, s: Subject, p: DemoParameters, seed: int, clock: Clock) -> SubjectSim:
        g = np.random.default_rng(np.random.SeedSequence([seed, STREAM_SUBJECT, s.index]))
        salt = p.site_ne_salt[p.sites.index(s.site)]
        return cls(s, p, seed, clock, g, salt, NE_SALT_FACTOR[salt])

    @property
    def death(self) -> float | None:
        return self.s.death_h

    @property
    def early(self) -> bool:
        """Dies within 72 h."""
        return self.death is not None and self.death <= 72

    @property
    def alive_end(self) -> float:
        return self.death if self.death is not None else self.p.follow_up_days * 24.0

    def alive(self, h: float) -> bool:
        return self.death is None or h < self.death

    def at(self, h: float) -> int:
        """Minutes from the epoch at hour h from H0."""
        return self.s.rand_min + int(math.floor(h * 60 + 0.5))

    def dt(self, h: float) -> str:
        return self.clock.dt(self.at(h))

    def date(self, h: float) -> str:
        return self.clock.date(self.at(h))

    def status(self) -> str:
        return "1" if self.g.random() < self.p.form_unverified_rate else "2"

    def add(self, event: str, form: str, values: dict[str, str], instance: int | None = None) -> None:
        values[f"{form}_complete"] = self.status()
        self.recs.append(Record(event, form, instance, values))

    def ne_base_at(self, h: float) -> float:
        cur = 0.0
        for t, r in self.ne_labelled:
            if t <= h:
                cur = r * self.f_salt
        return cur

    def ne_label_at(self, h: float) -> float:
        cur = 0.0
        for t, r in self.ne_labelled:
            if t <= h:
                cur = r
        return cur
