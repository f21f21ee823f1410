"""What a build's validation shows in the orchestrator: a markdown summary and a table of findings, as plain data.

No Prefect here: ``flows/`` hands these to ``prefect.artifacts.create_markdown_artifact(markdown=...)`` and
``create_table_artifact(table=...)``.
"""

from __future__ import annotations

import polars as pl

TABLE_COLUMNS = ["severity", "stage", "site_id", "subject_id", "event", "repeat_instance", "form", "field", "value",
                 "rule", "message"]
_SEVERITY_ORDER = {"error": 0, "warning": 1}


def _cell(v) -> str:
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def _all(validations: list, attr: str) -> pl.DataFrame:
    frames = [getattr(v, attr) for v in validations if getattr(v, attr).height]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def findings_markdown(validations: list, build_id: str, top_rules: int = 10, blocked: bool | None = None) -> str:
    """A markdown summary of a build's validation: the verdict, one line per stage (failed expectations by
    severity, findings, skipped), the rules failing most (errors first) and the findings by site. ``blocked``:
    the build's gate (None: blocked when an error expectation failed); failed error expectations whose every
    finding the data manager accepted or queried do not block (warehouse/review/)."""
    errors = sum(v.errors for v in validations)
    findings = _all(validations, "findings")
    results = _all(validations, "results")
    if blocked is None:
        blocked = errors > 0
    if blocked:
        verdict = f"**Publishing blocked**: {errors} failed error expectation(s)."
    elif errors:
        verdict = (f"**Published**: {errors} failed error expectation(s), every error finding of them accepted or "
                   "queried in the review.")
    else:
        verdict = "**Passed**: no error expectation failed; the build publishes."
    lines = [f"# Validation of build `{build_id}`", "", verdict, "",
             "| stage | result | failed (error) | failed (warning) | findings | skipped |",
             "|---|---|---:|---:|---:|---:|"]
    for v in validations:
        lines.append(f"| {v.stage} | {'passed' if v.success else 'FAILED'} | {v.errors} | {v.warnings} | "
                     f"{v.findings.height} | {v.skipped} |")
    if results.height:
        failed = results.filter(pl.col("success") == False)  # noqa: E712
        if failed.height:
            failed = (failed.with_columns(_o=pl.col("severity").replace_strict(_SEVERITY_ORDER, default=2))
                      .sort(["_o", "unexpected_count"], descending=[False, True], nulls_last=True))
            lines += ["", f"## Failed rules ({failed.height})", "", "| severity | stage | table | rule | failing rows |",
                      "|---|---|---|---|---:|"]
            for r in failed.head(top_rules).iter_rows(named=True):
                lines.append(f"| {r['severity']} | {r['stage']} | {_cell(r['table'])} | {_cell(r['rule'])} | "
                             f"{'' if r['unexpected_count'] is None else r['unexpected_count']} |")
            if failed.height > top_rules:
                lines.append(f"\n… and {failed.height - top_rules} more failed rule(s): see the validation report.")
    if findings.height:
        by_site = (findings.with_columns(pl.col("site_id").fill_null("(no site)"))
                   .group_by("site_id").agg((pl.col("severity") == "error").sum().alias("errors"),
                                            (pl.col("severity") == "warning").sum().alias("warnings"))
                   .sort("site_id"))
        lines += ["", "## Findings by site", "", "| site | error | warning |", "|---|---:|---:|"]
        lines += [f"| {_cell(r['site_id'])} | {r['errors']} | {r['warnings']} |" for r in by_site.iter_rows(named=True)]
    return "\n".join(lines) + "\n"


def findings_table_rows(findings: pl.DataFrame, limit: int = 500) -> list[dict]:
    """The findings as rows for a table artifact: errors first, then by site, subject, form; at most ``limit``
    rows; every value a string (empty for null)."""
    if findings.height == 0:
        return []
    cols = [c for c in TABLE_COLUMNS if c in findings.columns]
    ordered = (findings.with_columns(_o=pl.col("severity").replace_strict(_SEVERITY_ORDER, default=2))
               .sort(["_o", "site_id", "subject_id", "form", "event", "field"], nulls_last=True)
               .head(max(int(limit), 0)).select(cols))
    return [{c: ("" if v is None else str(v)) for c, v in row.items()} for row in ordered.iter_rows(named=True)]
