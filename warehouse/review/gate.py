"""The review in a build: the decisions read once at the findings step, the review status of every finding,
whether the build's error findings still block publishing, and the copy of the decisions the build keeps.

Read once, used throughout: the gate, the build's tables and its report see the same decisions, even while
someone decides during the build (a decision made after the read counts from the next build on).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from warehouse.review.status import (REVIEW_COLUMNS, Blocking, blocking, review_status, summary_line,
                                     with_review)
from warehouse.review.store import read_decisions

DECISION_COLUMNS: dict[str, str] = {
    "decision_id": "Id of the decision (increasing; decisions are never changed or deleted)",
    "finding_id": "The finding decided on (main.findings, main.findings_history)",
    "value_fingerprint": "Hash of the finding's value when decided: an acceptance holds while the value is the same",
    "action": "accept (correct as entered), query (sent to the site), answer (the site's reply) or reopen",
    "text": "The reason, the query's text or the site's answer",
    "decided_by": "Who decided (the OS account unless named)",
    "decided_at": "When (UTC, ISO 8601)",
    "query_id": "Id of the query (a query decision), as on the site's query sheet",
}


@dataclass
class Review:
    """The decisions as the build read them and what they make of its findings."""

    decisions: pl.DataFrame
    reviewed: pl.DataFrame  # this build's findings with the review columns
    gate: Blocking

    @property
    def blocked(self) -> bool:
        return self.gate.blocked

    def summary(self) -> str:
        """The build summary's review line; empty when no decision was ever made (nothing to say)."""
        return summary_line(self.reviewed) if self.decisions.height else ""

    def with_review(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Any findings frame (``finding_id``, ``value``: the findings, their history) with its review columns."""
        if frame.height == 0:
            return frame
        return with_review(frame, review_status(frame, self.decisions))


def review_build(data_dir, validations: list, cap: int) -> Review:
    """The decisions of ``data_dir`` applied to a build's validations (``cap``: findings per expectation)."""
    frames = [v.findings for v in validations if v.findings.height]
    results = [v.results for v in validations if v.results.height]
    findings = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
        schema={"finding_id": pl.Utf8, "value": pl.Utf8, "severity": pl.Utf8})
    decisions = read_decisions(data_dir)
    reviewed = with_review(findings, review_status(findings, decisions))
    gate = blocking(pl.concat(results, how="diagonal_relaxed") if results else pl.DataFrame(), reviewed, cap)
    return Review(decisions, reviewed, gate)


def write_decisions(con: duckdb.DuckDBPyConnection, review: Review, quote) -> None:
    """main.finding_decisions: the decisions the build read, with the table's and columns' descriptions."""
    con.register("_decisions", review.decisions.to_arrow())
    con.execute("create or replace table main.finding_decisions as select * from _decisions order by decision_id")
    con.unregister("_decisions")
    con.execute("comment on table main.finding_decisions is 'The data manager''s decisions on findings as this "
                "build read them (DIR/review/decisions.sqlite, append-only): accept, query, answer, reopen, with "
                "who, when and why.'")
    for column, text in DECISION_COLUMNS.items():
        con.execute(f'comment on column main.finding_decisions."{column}" is {quote(text)}')


def comment_review_columns(con: duckdb.DuckDBPyConnection, table: str, quote) -> None:
    present = {r[0] for r in con.execute(f"describe main.{table}").fetchall()}
    for column, text in REVIEW_COLUMNS.items():
        if column in present:
            con.execute(f'comment on column main.{table}."{column}" is {quote(text)}')
