"""Subject-level design of the demo study: sites, recruitment calendar, randomisation list, deaths, PE responses.

This is the only pass over all subjects at once; it holds a handful of numbers per subject (cheap even for 10,000
subjects). The per-subject time series are generated later, one subject at a time (`simulate.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .params import DemoParameters

# stream ids for numpy SeedSequence([seed, stream, ...]): one independent stream per purpose
STREAM_DESIGN = 0
STREAM_SUBJECT = 1
STREAM_INJECT = 2
STREAM_MONITOR = 3

PE_HOURS = {"h0_arm_1": 0.0, "h6_arm_1": 6.0, "h12_arm_1": 12.0}


@dataclass
class Subject:
    index: int  # position in recruitment order (keys the subject's own random stream)
    record_id: str
    site: str
    rand_min: int  # randomisation (H0), minutes from the study calendar's epoch (first_randomisation 00:00)
    screen_failure: bool = False
    arm: str | None = None
    kit_no: str | None = None
    death_h: float | None = None  # hours from H0 to death (None: alive at the end of follow-up)
    pe: dict[str, tuple[int, int]] = field(default_factory=dict)  # event -> (map_before, map_max)


@dataclass
class Design:
    subjects: list[Subject]
    kits: list[tuple[str, str]]  # (kit_no, arm) for every kit of every allocated block


def _site_counts(n: int, weights: tuple[float, ...]) -> list[int]:
    """Largest-remainder split of n subjects over sites by weight."""
    w = np.asarray(weights, dtype=float)
    raw = w / w.sum() * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def calibrate_pe(before: np.ndarray, ratio: np.ndarray, mean: float, sd: float, tol: float,
                 bounds: tuple[int, int] = (20, 160)) -> np.ndarray:
    """Integer MAPs at max PE dose such that mean and sample SD of max/before are within `tol` of the targets.

    Starts from round(ratio x before), then a greedy search moves one subject's MAP by 1 mmHg at a time, the
    move that most reduces the squared distance to (mean, sd), until both are within `tol`.
    """
    before = before.astype(float)
    m = np.clip(np.rint(ratio * before), *bounds).astype(float)
    n = len(m)
    if n < 2:
        return m.astype(int)

    def loss(mu: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (mu - mean) ** 2 + (s - sd) ** 2

    for _ in range(20 * n + 200):
        r = m / before
        mu, s = r.mean(), r.std(ddof=1)
        if abs(mu - mean) < tol and abs(s - sd) < tol:
            break
        total, sq = r.sum(), (r * r).sum()
        best = (loss(np.asarray(mu), np.asarray(s)), None, 0)
        for step in (1.0, -1.0):
            cand = m + step
            ok = (cand >= bounds[0]) & (cand <= bounds[1])
            rc = cand / before
            t2 = total - r + rc
            q2 = sq - r * r + rc * rc
            mu2 = t2 / n
            s2 = np.sqrt(np.maximum((q2 - n * mu2 * mu2) / (n - 1), 0.0))
            lc = np.where(ok, loss(mu2, s2), np.inf)
            j = int(np.argmin(lc))
            if lc[j] < best[0]:
                best = (lc[j], j, step)
        if best[1] is None:
            break  # no single move improves: accept (only for degenerate tiny samples)
        m[best[1]] += best[2]
    return m.astype(int)


def build_design(p: DemoParameters, n_subjects: int, seed: int) -> Design:
    """Sites, record ids, H0 dates, randomisation list (permuted blocks within site), deaths, PE responses."""
    g = np.random.default_rng(np.random.SeedSequence([seed, STREAM_DESIGN]))
    n_total = n_subjects + p.screen_failures
    counts = _site_counts(n_total, p.site_weights)
    site_seq = g.permutation(np.repeat(np.arange(len(p.sites)), counts))
    fail = np.zeros(n_total, dtype=bool)
    if p.screen_failures:
        fail[g.choice(n_total, size=p.screen_failures, replace=False)] = True
    # recruitment calendar: H0 in minutes from epoch, first subject on day 0, sorted
    days = np.sort(g.uniform(0, p.recruitment_days, n_total))
    days -= days[0]
    tod = g.integers(7 * 12, 23 * 12, n_total) * 5  # 07:00-23:00, 5-minute grid
    rand_min = (np.floor(days).astype(int) * 1440 + tod).tolist()

    subjects: list[Subject] = []
    numbers = [0] * len(p.sites)
    for i in range(n_total):
        s = int(site_seq[i])
        numbers[s] += 1
        site = p.sites[s]
        subjects.append(Subject(i, f"{site}-{numbers[s]:03d}", site, rand_min[i], screen_failure=bool(fail[i])))

    # randomisation: a new permuted block of kits is sent to a site when its previous block is used up
    kits: list[tuple[str, str]] = []
    open_blocks: dict[str, list[tuple[str, str]]] = {}
    base_block = [p.arms[k % len(p.arms)] for k in range(p.block_size)]
    for subj in subjects:
        if subj.screen_failure:
            continue
        block = open_blocks.get(subj.site)
        if not block:
            arms = [base_block[k] for k in g.permutation(p.block_size)]
            block = [(f"K{len(kits) + k + 1:03d}", a) for k, a in enumerate(arms)]
            kits.extend(block)
            open_blocks[subj.site] = block
        subj.kit_no, subj.arm = block.pop(0)

    randomised = [s for s in subjects if not s.screen_failure]
    # deaths: within each arm, a fixed share dies by day 3, then by day 30, then by day 90 (frailty order)
    frailty = g.random(len(randomised))
    for arm in p.arms:
        idx = [k for k, s in enumerate(randomised) if s.arm == arm]
        idx.sort(key=lambda k: -frailty[k])
        n_arm = len(idx)
        k3 = int(round(p.mortality_d3[arm] * n_arm))
        k30 = int(round(p.mortality_d3_d30[arm] * n_arm))
        k90 = int(round(p.mortality_d30_d90[arm] * n_arm))
        lo_hi = [(p.early_death_min_hours, 71.5)] * k3 + [(72.5, 30 * 24 - 1)] * k30 + [(30 * 24 + 1, 89 * 24)] * k90
        for k, (lo, hi) in zip(idx, lo_hi):
            randomised[k].death_h = round(float(g.uniform(lo, hi)), 2)

    # PE responses: a subject-level latent response shared across the three challenges, then per event and arm
    # standardised to the target mean/SD and calibrated on the exported integers
    latent = g.gamma(4.0, 1.0, len(randomised))
    for event, hour in PE_HOURS.items():
        noise = g.gamma(4.0, 1.0, len(randomised))
        before_all = np.clip(np.rint(g.normal(p.pe_map_before_mean, p.pe_map_before_sd, len(randomised))),
                             *p.pe_map_before_range).astype(int)
        for arm in p.arms:
            idx = [k for k, s in enumerate(randomised)
                   if s.arm == arm and (s.death_h is None or s.death_h > hour + 1.0)]
            if not idx:
                continue
            mean, sd = p.pe_targets[event][arm]
            x = 0.6 * latent[idx] + 0.8 * noise[idx]
            ratio = _standardise(x, mean, sd, p.pe_ratio_floor)
            before = before_all[idx]
            mx = calibrate_pe(before, ratio, mean, sd, p.pe_calibration_tolerance)
            for k, b, m in zip(idx, before.tolist(), mx.tolist()):
                randomised[k].pe[event] = (int(b), int(m))
    return Design(subjects, kits)


def _standardise(x: np.ndarray, mean: float, sd: float, floor: float) -> np.ndarray:
    """Affine map of x to exactly the target mean and sample SD, keeping values above `floor` where possible."""
    if len(x) < 2 or np.std(x) == 0:
        return np.full(len(x), mean)
    r = x
    for _ in range(10):
        r = mean + sd * (r - r.mean()) / r.std(ddof=1)
        if r.min() >= floor:
            break
        r = np.maximum(r, floor)
    return r
