"""The analysis report: one self-contained HTML page (inline SVG figures, inline CSS, no script, no fetch)."""

from __future__ import annotations

import polars as pl

from warehouse.analysis import Analysis, esc
from warehouse.analysis.figures import (
    hemodynamics_figure,
    kaplan_meier_figure,
    ne_trajectories_figure,
    pe_response_figure,
)

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}figure{margin:1em 0}
"""


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


def table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def baseline_section(frame: pl.DataFrame, arms: list[str]) -> str:
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
        rows.append([esc(characteristic), *cells])
    return table(["", *arms], rows)


def primary_section(frame: pl.DataFrame, arms: list[str]) -> str:
    rows = [[esc(r["avisit"]), esc(r["arm"]), fmt(r["n"], 0), fmt(r["mean"]), fmt(r["sd"])]
            for r in frame.iter_rows(named=True)]
    out = table(["Time point", "Arm", "n", "Mean", "SD"], rows, numeric_from=2)
    primary = frame.filter(pl.col("is_primary")).row(0, named=True) if "diff" in frame.columns else None
    if primary and primary.get("diff") is not None:
        out += table(
            ["Comparison at H6", "Difference", "95% CI", "t-test p", "Welch p", "ANCOVA on H0: difference",
             "95% CI", "p"],
            [[esc(primary["comparison"]), fmt(primary["diff"], 3),
              f"{fmt(primary['ci_low'], 3)} to {fmt(primary['ci_high'], 3)}", fmt_p(primary["p_ttest"]),
              fmt_p(primary["p_welch"]), fmt(primary["adj_diff"], 3),
              f"{fmt(primary['adj_ci_low'], 3)} to {fmt(primary['adj_ci_high'], 3)}", fmt_p(primary["p_ancova"])]],
        )
    return out


def mortality_section(frame: pl.DataFrame, logrank: float | None) -> str:
    has_p = "p_fisher" in frame.columns
    rows = [[esc(r["landmark"]), esc(r["arm"]), f"{r['deaths']} / {r['n']}", fmt(r["pct"], 0) + "%",
             fmt_p(r.get("p_fisher")) if has_p else ""] for r in frame.iter_rows(named=True)]
    out = table(["Landmark", "Arm", "Deaths / known", "%", "Fisher p"], rows, numeric_from=2)
    if logrank is not None:
        out += f"<p class=note>Log-rank test of time to death: p = {fmt_p(logrank)}.</p>"
    return out


def secondary_section(frame: pl.DataFrame) -> str:
    rows = []
    for r in frame.iter_rows(named=True):
        if r["kind"] == "binary":
            value = f"{fmt(r.get('events'), 0)} / {r['n']} ({fmt(r.get('pct'), 0)}%)"
        else:
            value = f"{fmt(r['mean'])} ± {fmt(r['sd'])}"
        rows.append([esc(r["param"] or r["paramcd"]), esc(r["avisit"]), esc(r["arm"]), fmt(r["n"], 0), value,
                     esc(r.get("test") or ""), fmt_p(r.get("p"))])
    return table(["Endpoint", "Time", "Arm", "n", "Mean ± SD or events", "Test", "p"], rows, numeric_from=3)


def teae_section(frame: pl.DataFrame, arms: list[str]) -> str:
    rows = []
    keys = frame.select("category", "aebodsys", "aedecod").unique(maintain_order=True)
    for key in keys.iter_rows(named=True):
        part = frame.filter((pl.col("category") == key["category"])
                            & pl.col("aebodsys").eq_missing(key["aebodsys"])
                            & pl.col("aedecod").eq_missing(key["aedecod"]))
        label = key["aedecod"] or key["aebodsys"] or key["category"]
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" if key["aedecod"] else ("&nbsp;&nbsp;" if key["aebodsys"] else "")
        cells = []
        for arm in arms:
            r = part.filter(pl.col("arm") == arm)
            cells.append(f"{r['subjects'][0]} ({fmt(r['pct'][0], 0)}%)" if r.height else "")
        rows.append([indent + esc(label), *cells])
    n_safety = {r["arm"]: r["n_safety"] for r in frame.unique("arm").iter_rows(named=True)}
    return table(["Subjects with", *[f"{a} (N={n_safety.get(a, 0)})" for a in arms]], rows)


def render_analysis_report(study: str, build_id: str, analysis: Analysis, marts: dict[str, pl.DataFrame]) -> str:
    arms = analysis.arms
    t = analysis.tables
    blinding = ("<p class=note><strong>Blinded build:</strong> treatment arms are pooled; no comparison is "
                "made.</p>" if analysis.blinded else
                "<p class=note><strong>Unblinded build.</strong> Restricted: for the statistician and the data "
                "monitoring committee.</p>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(study)} analysis report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(study)}: analysis report</h1><p class=note>Build <code>{esc(build_id)}</code></p>{blinding}"
        f"<h2 id=baseline>Disposition and baseline characteristics</h2>{baseline_section(t['ar_baseline'], arms)}"
        f"<h2 id=primary>Primary endpoint: phenylephrine response</h2>{primary_section(t['ar_primary'], arms)}"
        f"<figure>{pe_response_figure(marts['adeff'], arms)}</figure>"
        f"<h2 id=mortality>Mortality</h2>{mortality_section(t['ar_mortality'], analysis.logrank_p)}"
        f"<figure>{kaplan_meier_figure(t['ar_km'], arms)}</figure>"
        f"<h2 id=secondary>Secondary endpoints</h2>{secondary_section(t['ar_secondary'])}"
        f"<h2 id=hemodynamics>Hemodynamics over 24 hours</h2>"
        f"<figure>{hemodynamics_figure(marts['hemodynamics'], arms)}</figure>"
        f"<figure>{ne_trajectories_figure(marts['hemodynamics'], arms)}</figure>"
        f"<h2 id=safety>Treatment-emergent adverse events</h2>{teae_section(t['ar_teae'], arms)}"
        "</body></html>"
    )
