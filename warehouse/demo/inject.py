"""Data-quality problems injected into a subject's records, at a rate, from a random stream of their own.

The clean values come from the subject's data stream, so a study with problems differs from the clean study with
the same seed only in the injected cells. Both writers emit the same (injected) records, so REDCap and ODM carry the
same problems. The calibrated primary-endpoint items (`pe_map_before`, `pe_map_max`) and the kit number (the link
to the arm) are never altered, so the published PE figures hold at any rate (the H6 challenge's *date* can still be
moved out of window).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from .design import STREAM_INJECT, Subject
from .dictionary import FIELD_BY_NAME
from .simulate import Clock, Record

KINDS = ("out_of_range", "missing_required", "duplicate_record", "ae_end_before_start", "unknown_code",
         "visit_out_of_window")
# the primary endpoint and the link to the arm stay intact, so the published figures hold at any rate
PROTECTED = frozenset({"pe_map_before", "pe_map_max", "kit_no", "record_id"})
DUPLICABLE_FORMS = ("hemodynamics", "vasopressors")
# challenge event -> hours after H0 at which an out-of-window challenge is recorded (windows: H6 5-7 h, H12 11-13 h)
OUT_OF_WINDOW_HOURS = {"h6_arm_1": 9.0, "h12_arm_1": 15.0}


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def out_of_range_value(field: str, current: str, g: np.random.Generator) -> str:
    """A value outside the field's dictionary min/max (a slipped decimal, an extra digit, or a sign error)."""
    f = FIELD_BY_NAME[field]
    lo, hi = float(f.vmin), float(f.vmax)
    dec = _decimals(current) if f.validation == "number" else 0
    if g.random() < 0.75 or lo <= 0:
        span = max(hi, 1.0)
        x = hi + span * float(g.uniform(0.5, 9.0))
    else:
        x = -abs(float(current) if current else lo) - 1.0
    x = math.floor(x * 10**dec) / 10**dec
    if x <= hi and x >= lo:  # cannot happen, but keep the promise
        x = hi * 10 + 1
    return f"{x:.{dec}f}"


def unknown_code_value(field: str, g: np.random.Generator) -> str:
    codes = [int(c) for c in FIELD_BY_NAME[field].codes]
    return str(max(codes) + int(g.integers(1, 4)))


def inject_problems(subject: Subject, records: list[Record], rate: float, seed: int, clock: Clock) -> list[dict]:
    """Alter `records` in place at `rate` per eligible cell/record and kind; return the problems (manifest rows)."""
    if rate <= 0:
        return []
    g = np.random.default_rng(np.random.SeedSequence([seed, STREAM_INJECT, subject.index]))
    problems: list[dict] = []

    def note(r: Record, field: str | None, kind: str, value: str | None) -> None:
        problems.append({"subject": subject.record_id, "form": r.form, "event": r.event, "instance": r.instance,
                         "field": field, "kind": kind, "value": value})

    for r in records:
        hit: set[str] = set()
        fields = [c for c in r.values if c in FIELD_BY_NAME]
        # out_of_range: numeric fields with a range
        for c in fields:
            f = FIELD_BY_NAME[c]
            if f.validation in ("integer", "number") and f.vmax and c not in PROTECTED and r.values[c]:
                if g.random() < rate:
                    r.values[c] = out_of_range_value(c, r.values[c], g)
                    hit.add(c)
                    note(r, c, "out_of_range", r.values[c])
        # missing_required
        for c in fields:
            f = FIELD_BY_NAME[c]
            if f.required and c not in PROTECTED and c not in hit and r.values[c]:
                if g.random() < rate:
                    r.values[c] = ""
                    hit.add(c)
                    note(r, c, "missing_required", "")
        # unknown_code: radio fields
        for c in fields:
            f = FIELD_BY_NAME[c]
            if f.ftype == "radio" and c not in hit and r.values[c]:
                if g.random() < rate:
                    r.values[c] = unknown_code_value(c, g)
                    hit.add(c)
                    note(r, c, "unknown_code", r.values[c])
        # ae_end_before_start
        if r.form == "adverse_events" and r.values.get("ae_end_dt") and r.values.get("ae_start_dt") \
                and not hit & {"ae_start_dt", "ae_end_dt"}:
            if g.random() < rate:
                start = datetime.strptime(r.values["ae_start_dt"], "%Y-%m-%d %H:%M")
                end = start - timedelta(minutes=int(g.integers(30, 48 * 60)))
                r.values["ae_end_dt"] = end.strftime("%Y-%m-%d %H:%M")
                note(r, "ae_end_dt", "ae_end_before_start", r.values["ae_end_dt"])
        # visit_out_of_window: the H6/H12 PE challenge done hours late
        if r.form == "pe_challenge" and r.event in OUT_OF_WINDOW_HOURS and r.values.get("pe_dt") \
                and "pe_dt" not in hit:
            if g.random() < rate:
                minutes = subject.rand_min + int(OUT_OF_WINDOW_HOURS[r.event] * 60) + int(g.integers(0, 30))
                r.values["pe_dt"] = clock.dt(minutes)
                note(r, "pe_dt", "visit_out_of_window", r.values["pe_dt"])
        # duplicate_record: a repeating instance emitted twice with the same keys
        if r.form in DUPLICABLE_FORMS:
            if g.random() < rate:
                r.duplicate = True
                note(r, None, "duplicate_record", None)
    return problems
