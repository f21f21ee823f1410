"""The build a review reads: the newest finished build of the data directory (a blocked build when the latest
build was blocked: its error findings are what keeps it from publishing), else the published warehouse.

The findings come from that build's file (read-only); their review status is derived live from the decisions
store, so the review always shows every decision made since the build (the build keeps its own copy, as of when
it ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.publish import BuildPaths, read_records
from warehouse.review.status import STATUS_SCHEMA, review_status, with_review
from warehouse.review.store import read_decisions


class ReviewError(Exception):
    """Bad input to the review (an unknown finding id, an empty reason, no build yet): one line a person acts on."""


@dataclass
class ReviewSource:
    """The build under review and its findings (with the live review status)."""

    data_dir: Path
    blinded: bool
    build_id: str
    export_id: str
    build_file: Path
    published: bool
    findings: pl.DataFrame  # main.findings + the review columns of status.STATUS_SCHEMA

    def ids(self) -> set[str]:
        return set(self.findings.get_column("finding_id").to_list()) if self.findings.height else set()

    def finding(self, finding_id: str) -> dict:
        rows = self.findings.filter(pl.col("finding_id") == finding_id)
        if rows.height == 0:
            raise ReviewError(f"unknown finding id {finding_id} (not a finding of build {self.build_id})")
        return rows.row(0, named=True)


def build_under_review(paths: BuildPaths) -> tuple[Path, bool]:
    """(build file, published?) of the newest finished build whose file is kept, else the published warehouse."""
    for record in read_records(paths):
        if record.status in ("published", "blocked") and paths.build_file(record.build_id).is_file():
            return paths.build_file(record.build_id), record.status == "published"
    if paths.published.is_file():
        return paths.published, True
    raise ReviewError(f"no build to review in {paths.root}: run `warehouse build` first")


def read_findings(build_file: Path) -> tuple[str, str, pl.DataFrame]:
    """(build id, export id, findings without any review columns a build stored) of a build file."""
    try:
        with duckdb.connect(str(build_file), read_only=True) as con:
            build_id, export_id = con.execute("select build_id, export_id from src.build_info").fetchall()[0]
            findings = con.sql("select * from main.findings").pl()
    except duckdb.Error as err:
        raise ReviewError(f"{build_file}: cannot read its findings ({str(err).splitlines()[0]})") from None
    stored = [c for c in STATUS_SCHEMA if c != "finding_id" and c in findings.columns]
    return build_id, export_id, findings.drop(stored)


def review_source(data_dir: Path, blinded: bool = True) -> ReviewSource:
    """The build under review with its findings' current review status."""
    paths = BuildPaths(Path(data_dir), blinded)
    build_file, published = build_under_review(paths)
    build_id, export_id, findings = read_findings(build_file)
    decisions = read_decisions(data_dir, findings.get_column("finding_id").to_list() if findings.height else [])
    reviewed = with_review(findings, review_status(findings, decisions)) if findings.height else findings
    return ReviewSource(Path(data_dir), blinded, build_id, export_id, build_file, published, reviewed)


FILTERS = ("site_id", "form", "rule", "severity", "review_status")


def filter_findings(findings: pl.DataFrame, **wanted: str | None) -> pl.DataFrame:
    """Findings whose columns equal the given values (site_id, form, rule, severity, review_status; None: any).
    ``rule`` also matches a part of the rule's text (rules are sentences)."""
    out = findings
    for column, value in wanted.items():
        if value in (None, ""):
            continue
        if column not in FILTERS:
            raise ReviewError(f"unknown filter {column}")
        if column == "rule":
            out = out.filter((pl.col("rule") == value) | pl.col("rule").str.contains(value, literal=True))
        else:
            out = out.filter(pl.col(column) == value)
    return out


def history(source: ReviewSource, finding_id: str) -> tuple[dict, pl.DataFrame]:
    """A finding (as the build under review has it) and every decision on it, oldest first."""
    finding = source.finding(finding_id)
    return finding, read_decisions(source.data_dir, [finding_id])
