"""The review in a build's validation report and in its Prefect artifacts: open, queried, answered and accepted
counts, and the accepted findings with who accepted them, when and why (plain values and markdown: the report's
template escapes them; flows/ hands the markdown to Prefect)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.review.status import STATUSES, review_counts

ACCEPTED_SHOWN = 500
ACCEPTED_COLUMNS = ["severity", "stage", "site_id", "subject_id", "event", "form", "field", "value", "rule",
                    "accepted_by", "accepted_at", "accepted_reason"]


def review_section(history: pl.DataFrame) -> dict | None:
    """The report's review section from the build's findings history (its open rows are this build's findings);
    None when the history has no review columns (a build without the review step)."""
    if "review_status" not in history.columns:
        return None
    current = history.filter(pl.col("status") == "open") if history.height else history
    accepted = current.filter(pl.col("review_status") == "accepted") if current.height else current
    if accepted.height:
        accepted = (accepted.with_columns(_o=pl.col("severity").replace_strict({"error": 0, "warning": 1}, default=2))
                    .sort(["_o", "site_id", "subject_id", "form", "field"], nulls_last=True))
    rows = accepted.head(ACCEPTED_SHOWN).select(ACCEPTED_COLUMNS).to_dicts() if accepted.height else []
    return {"statuses": list(STATUSES), "counts": review_counts(current), "columns": ACCEPTED_COLUMNS,
            "accepted": rows, "accepted_total": accepted.height}


def _cell(v) -> str:
    return "" if v is None else " ".join(str(v).split()).replace("|", "\\|")


def review_markdown(build_file: Path, limit: int = 50) -> str:
    """The artifacts' review section, read from a build file's findings: counts by severity and status, then
    the accepted findings with their reasons (the first ``limit``). Empty when the build has no review columns."""
    import duckdb

    try:
        with duckdb.connect(str(build_file), read_only=True) as con:
            findings = con.sql("select * from main.findings").pl()
    except duckdb.Error:
        return ""
    section = review_section(findings.with_columns(status=pl.lit("open"))) if findings.height else None
    if section is None:
        return ""
    lines = ["## Review", "", "| severity | " + " | ".join(STATUSES) + " |", "|---|" + "---:|" * len(STATUSES)]
    for sev in ("error", "warning"):
        lines.append(f"| {sev} | " + " | ".join(str(section["counts"][sev][s]) for s in STATUSES) + " |")
    if section["accepted"]:
        lines += ["", f"### Accepted findings ({section['accepted_total']})", "",
                  "| severity | site | subject | form | field | value | rule | by | when | reason |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in section["accepted"][:limit]:
            lines.append("| " + " | ".join(_cell(r[c]) for c in ("severity", "site_id", "subject_id", "form", "field",
                                                                   "value", "rule", "accepted_by", "accepted_at",
                                                                   "accepted_reason")) + " |")
        if section["accepted_total"] > limit:
            lines.append(f"\n… and {section['accepted_total'] - limit} more: see the validation report.")
    return "\n".join(lines) + "\n"
