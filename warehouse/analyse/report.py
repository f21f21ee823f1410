"""The analysis report: one self-contained HTML page (inline SVG figures, inline CSS, no script, no fetch), rendered
from templates/analysis.html.j2. The functions here format the tables' cells; the template escapes them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.analyse import Analysis
from warehouse.analyse.figure_cache import report_figures
from warehouse.templates import Markup, render


def fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_p(value: object) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> dict:
    """A table for the template: cells from column ``numeric_from`` on are numbers (right-aligned)."""
    return {"headers": headers, "rows": rows, "numeric_from": numeric_from}


def baseline_table(frame: pl.DataFrame, arms: list[str]) -> dict:
    rows = []
    for (characteristic,), group in frame.group_by(["characteristic"], maintain_order=True):
        cells = []
        for arm in arms:
            values = {r["statistic"]: r["value"] for r in group.filter(pl.col("arm") == arm).iter_rows(named=True)}
            if "mean" in values:
                cells.append(f"{fmt(values['mean'])} ± {fmt(values.get('sd'))} (median {fmt(values.get('median'))})")
            elif "%" in values:
                cells.append(f"{fmt(values.get('n (%)'), 0)} ({fmt(values['%'], 0)}%)")
            else:
                cells.append(fmt(next(iter(values.values()), None), 0))
        rows.append([characteristic, *cells])
    return table(["", *arms], rows)


def primary_tables(frame: pl.DataFrame, arms: list[str]) -> list[dict]:
    """Descriptive statistics by time point and arm; at the primary time point, the comparison when there is one."""
    rows = [[r["avisit"], r["arm"], fmt(r["n"], 0), fmt(r["mean"]), fmt(r["sd"])]
            for r in frame.iter_rows(named=True)]
    out = [table(["Time point", "Arm", "n", "Mean", "SD"], rows, numeric_from=2)]
    primary = frame.filter(pl.col("is_primary")).row(0, named=True) if "diff" in frame.columns else None
    if primary and primary.get("diff") is not None:
        out.append(table(
            ["Comparison at H6", "Difference", "95% CI", "t-test p", "Welch p", "ANCOVA on H0: difference",
             "95% CI", "p"],
            [[primary["comparison"], fmt(primary["diff"], 3),
              f"{fmt(primary['ci_low'], 3)} to {fmt(primary['ci_high'], 3)}", fmt_p(primary["p_ttest"]),
              fmt_p(primary["p_welch"]), fmt(primary["adj_diff"], 3),
              f"{fmt(primary['adj_ci_low'], 3)} to {fmt(primary['adj_ci_high'], 3)}", fmt_p(primary["p_ancova"])]],
        ))
    return out


def mortality_table(frame: pl.DataFrame) -> dict:
    has_p = "p_fisher" in frame.columns
    rows = [[r["landmark"], r["arm"], f"{r['deaths']} / {r['n']}", fmt(r["pct"], 0) + "%",
             fmt_p(r.get("p_fisher")) if has_p else ""] for r in frame.iter_rows(named=True)]
    return table(["Landmark", "Arm", "Deaths / known", "%", "Fisher p"], rows, numeric_from=2)


def secondary_table(frame: pl.DataFrame) -> dict:
    rows = []
    for r in frame.iter_rows(named=True):
        if r["kind"] == "binary":
            value = f"{fmt(r.get('events'), 0)} / {r['n']} ({fmt(r.get('pct'), 0)}%)"
        else:
            value = f"{fmt(r['mean'])} ± {fmt(r['sd'])}"
        rows.append([r["param"] or r["paramcd"], r["avisit"], r["arm"], fmt(r["n"], 0), value,
                     r.get("test") or "", fmt_p(r.get("p"))])
    return table(["Endpoint", "Time", "Arm", "n", "Mean ± SD or events", "Test", "p"], rows, numeric_from=3)


def teae_table(frame: pl.DataFrame, arms: list[str]) -> dict:
    rows = []
    keys = frame.select("category", "aebodsys", "aedecod").unique(maintain_order=True)
    for key in keys.iter_rows(named=True):
        part = frame.filter((pl.col("category") == key["category"])
                            & pl.col("aebodsys").eq_missing(key["aebodsys"])
                            & pl.col("aedecod").eq_missing(key["aedecod"]))
        label = key["aedecod"] or key["aebodsys"] or key["category"]
        indent = Markup("&nbsp;" * (4 if key["aedecod"] else 2 if key["aebodsys"] else 0))
        cells = []
        for arm in arms:
            r = part.filter(pl.col("arm") == arm)
            cells.append(f"{r['subjects'][0]} ({fmt(r['pct'][0], 0)}%)" if r.height else "")
        rows.append([indent + label, *cells])  # Markup + str: the label is escaped
    n_safety = {r["arm"]: r["n_safety"] for r in frame.unique("arm").iter_rows(named=True)}
    return table(["Subjects with", *[f"{a} (N={n_safety.get(a, 0)})" for a in arms]], rows)


def render_analysis_report(study: str, build_id: str, analysis: Analysis, marts: dict[str, pl.DataFrame],
                           blocked: bool = False, figure_cache: Path | None = None) -> str:
    """The page; ``blocked``: the banner of a build that is not published, first thing in the body;
    ``figure_cache``: where figures drawn from the same data by an earlier build are kept (figure_cache.py)."""
    arms = analysis.arms
    t = analysis.tables
    svgs = report_figures({**marts, "ar_km": t["ar_km"]}, arms, figure_cache)
    figures = {name: Markup(svg) for name, svg in svgs.items()}  # SVG made by matplotlib: markup, not text
    return render(
        "analysis.html.j2", study=study, build_id=build_id, blocked=blocked, blinded=analysis.blinded,
        baseline=baseline_table(t["ar_baseline"], arms), primary=primary_tables(t["ar_primary"], arms),
        mortality=mortality_table(t["ar_mortality"]),
        logrank_p=None if analysis.logrank_p is None else fmt_p(analysis.logrank_p),
        secondary=secondary_table(t["ar_secondary"]), teae=teae_table(t["ar_teae"], arms), figures=figures)
