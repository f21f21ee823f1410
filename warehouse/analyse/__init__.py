"""Analysis results: tables in the warehouse (`ar_*`) and a self-contained HTML analysis report.

Computed from the marts of a build. A blinded build has one pooled treatment group, so the tables and the
report pool the arms and compare nothing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.analyse.results import (
    baseline_characteristics,
    kaplan_meier,
    logrank_p,
    mortality,
    primary_endpoint,
    secondary_endpoints,
    teae_summary,
)

RESULT_TABLES = {
    "ar_baseline": "Disposition and baseline characteristics by planned arm (randomised subjects).",
    "ar_primary": "Primary endpoint: PE response by arm and time point; at H6 the difference with 95% CI, "
    "t-test p and the ANCOVA on the H0 response.",
    "ar_mortality": "Mortality by day 3, 28 and 90 by arm among subjects with known status, Fisher's exact p.",
    "ar_secondary": "Secondary endpoints by arm: descriptive statistics and a two-arm test.",
    "ar_teae": "Treatment-emergent adverse events by actual treatment (safety set): subjects with any, serious, "
    "by body system and term.",
    "ar_km": "Kaplan-Meier estimate of survival by arm, one row per distinct time.",
}


@dataclass
class Analysis:
    tables: dict[str, pl.DataFrame]
    logrank_p: float | None
    arms: list[str]
    blinded: bool


MARTS = ("adsl", "adeff", "adae", "adtte", "hemodynamics")  # what the trial analysis reads


def read_marts(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    return {name: con.sql(f"select * from main.{name}").pl() for name in MARTS}


def write_no_analysis(reports_dir: Path, build_id: str, study: str, present: list[str], blocked: bool) -> Path:
    """The analysis report of a build whose project has no ADaM marts: says so, writes no ar_* table."""
    from warehouse.templates import render

    target = reports_dir / build_id / "analysis.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render("no_analysis.html.j2", study=study, build_id=build_id, needed=list(MARTS),
                             present=present, blocked=blocked), encoding="utf-8")
    return target


def analyse(marts: dict[str, pl.DataFrame], arm_labels: list[str]) -> Analysis:
    """Every analysis table from the marts; arm_labels in comparison order (first - second)."""
    adsl = marts["adsl"]
    groups = sorted(g for g in adsl.filter(pl.col("ITTFL") == "Y").get_column("TRT01P").unique().to_list() if g)
    arms = [a for a in arm_labels if a in groups] + [g for g in groups if g not in arm_labels]
    tables = {
        "ar_baseline": baseline_characteristics(adsl),
        "ar_primary": primary_endpoint(marts["adeff"], arm_labels),
        "ar_mortality": mortality(marts["adtte"], arm_labels),
        "ar_secondary": secondary_endpoints(marts["adeff"], arm_labels),
        "ar_teae": teae_summary(marts["adae"], adsl),
        "ar_km": kaplan_meier(marts["adtte"]),
    }
    blinded = not set(arm_labels) <= set(groups)
    return Analysis(tables, logrank_p(marts["adtte"], arm_labels), arms, blinded)


# Descriptions of the analysis tables' columns (a column is described where the table has it).
RESULT_COLUMNS = {
    "avisit": "Time point (AVISIT of ADEFF)",
    "arm": "Treatment arm (TRT01P); 'Blinded' pools every subject in a blinded build",
    "is_primary": "True for the primary comparison (PE response at H6)",
    "n": "Number of subjects with a value",
    "mean": "Mean", "sd": "Standard deviation (n - 1)", "median": "Median", "q1": "First quartile",
    "q3": "Third quartile", "min": "Minimum", "max": "Maximum",
    "diff": "Difference between the arms (first arm minus second)",
    "ci_low": "Lower bound of the 95% confidence interval of the difference (pooled-variance t)",
    "ci_high": "Upper bound of the 95% confidence interval of the difference (pooled-variance t)",
    "p_ttest": "Two-sided p of Student's t-test (pooled variance)",
    "p_welch": "Two-sided p of Welch's t-test",
    "adj_diff": "Difference between the arms adjusted for the H0 value (ANCOVA)",
    "adj_ci_low": "Lower bound of the 95% confidence interval of the adjusted difference",
    "adj_ci_high": "Upper bound of the 95% confidence interval of the adjusted difference",
    "p_ancova": "Two-sided p of the arm effect in the ANCOVA on the H0 value",
    "comparison": "Which arms are compared, in which order",
    "paramcd": "Parameter code (PARAMCD of ADEFF)", "param": "Parameter (PARAM of ADEFF)",
    "kind": "continuous or binary", "test": "Test of the difference between the arms",
    "p": "Two-sided p of that test", "p_mannwhitney": "Two-sided p of the Mann-Whitney U test",
    "events": "Number of events (subjects with the flag, deaths)", "pct": "Percentage of the subjects",
    "characteristic": "Baseline characteristic", "statistic": "Statistic shown (n, mean (SD), n (%), ...)",
    "value": "The statistic's value, formatted", "unit": "Unit of the characteristic",
    "time": "Days from H0", "at_risk": "Subjects at risk just before the time", "censored": "Subjects censored at the time",
    "survival": "Kaplan-Meier estimate of survival after the time",
    "landmark": "Mortality landmark (D3, D28, D90)", "day": "Landmark day from H0", "deaths": "Deaths by the landmark",
    "p_fisher": "Two-sided p of Fisher's exact test",
    "category": "TEAE summary row: any TEAE, serious, by body system, by term...",
    "aebodsys": "Body system (AEBODSYS)", "aedecod": "Preferred term (AEDECOD)",
    "subjects": "Subjects with at least one such event", "n_safety": "Subjects of the safety population (SAFFL)",
}


def write_tables(con: duckdb.DuckDBPyConnection, analysis: Analysis) -> None:
    for name, frame in analysis.tables.items():
        con.register("_frame", frame.to_arrow())
        con.execute(f"create or replace table main.{name} as select * from _frame")
        con.unregister("_frame")
        description = RESULT_TABLES[name].replace("'", "''")
        con.execute(f"comment on table main.{name} is '{description}'")
        for column in frame.columns:
            if column in RESULT_COLUMNS:
                text = RESULT_COLUMNS[column].replace("'", "''")
                con.execute(f'comment on column main.{name}."{column}" is \'{text}\'')


def analyse_build(build_file: Path, reports_dir: Path, build_id: str, arm_labels: list[str],
                  blocked: bool = False) -> Path:
    """Compute the analysis of a build, store its tables in the build, and write the HTML report (in the build's
    own report folder; a blocked build's report says so at the top; the published one is copied to the top level
    at publish)."""
    from warehouse.analyse.report import render_analysis_report
    from warehouse.validate.report import mark_blocked

    with duckdb.connect(str(build_file)) as con:
        present = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'main' "
                                             "and database_name = current_database()").fetchall()}
        if not set(MARTS) <= present:  # a study project without the trial's ADaM marts: nothing to analyse
            study = con.execute("select study_id from src.build_info").fetchall()[0][0]
            return write_no_analysis(reports_dir, build_id, study, sorted(set(MARTS) & present), blocked)
        marts = read_marts(con)
        analysis = analyse(marts, arm_labels)
        write_tables(con, analysis)
        study = con.execute("select study_id from src.build_info").fetchall()[0][0]
    target = reports_dir / build_id / "analysis.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    # figures drawn only when their data changed: DIR/cache (DIR/unblinded/cache), beside the compile cache
    page = render_analysis_report(study, build_id, analysis, marts,
                                  figure_cache=reports_dir.parent / "cache" / "figures")
    target.write_text(mark_blocked(page) if blocked else page, encoding="utf-8")
    return target


def esc(value: object) -> str:
    return "" if value is None else html.escape(str(value))
