"""Findings: one row per failing row and field, and their history across builds.

A finding's identity (``finding_id``) is a hash of what the data manager would call "the same problem":
stage, rule, subject, event, repeat instance, form and field. The value is *not* part of the identity, so a value
corrected to another wrong value keeps the finding open; a value corrected to a good one closes it at the next build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timezone

import polars as pl

FINDINGS_COLUMNS: list[str] = [
    "finding_id",
    "stage",
    "suite",
    "rule",
    "expectation_type",
    "severity",
    "subject_id",
    "site_id",
    "event",
    "repeat_instance",
    "form",
    "field",
    "value",
    "message",
]

HISTORY_EXTRA_COLUMNS: list[str] = [
    "status",
    "first_seen_build",
    "first_seen_at",
    "last_seen_build",
    "last_seen_at",
    "closed_build",
    "closed_at",
]
HISTORY_COLUMNS: list[str] = FINDINGS_COLUMNS + HISTORY_EXTRA_COLUMNS

_TS = pl.Datetime("us", "UTC")
FINDINGS_SCHEMA: dict[str, pl.DataType] = {c: pl.Utf8 for c in FINDINGS_COLUMNS}
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    **FINDINGS_SCHEMA,
    "status": pl.Utf8,
    "first_seen_build": pl.Utf8,
    "first_seen_at": _TS,
    "last_seen_build": pl.Utf8,
    "last_seen_at": _TS,
    "closed_build": pl.Utf8,
    "closed_at": _TS,
}

_ID_PARTS = ("stage", "rule", "subject_id", "event", "repeat_instance", "form", "field")


def finding_id(
    stage: str | None,
    rule: str | None,
    subject_id: str | None,
    event: str | None,
    repeat_instance: str | None,
    form: str | None,
    field: str | None,
) -> str:
    """Stable identity of a finding: 16 hex digits of SHA-256 over its identifying parts (nulls as empty)."""
    text = "\x1f".join("" if p is None else str(p) for p in (stage, rule, subject_id, event, repeat_instance, form, field))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


def findings_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (dicts with FINDINGS_COLUMNS minus finding_id) -> a findings frame, ids computed, one row per id."""
    if not rows:
        return empty_findings()
    for r in rows:
        r["finding_id"] = finding_id(*(r.get(p) for p in _ID_PARTS))
    columns = {c: [r.get(c) for r in rows] for c in FINDINGS_COLUMNS}
    try:
        frame = pl.DataFrame(columns, schema=FINDINGS_SCHEMA)
    except (TypeError, pl.exceptions.PolarsError):  # a value that is not text (e.g. a number in a suite's meta)
        frame = pl.DataFrame({c: [None if v is None else str(v) for v in vals] for c, vals in columns.items()},
                             schema=FINDINGS_SCHEMA)
    # rows sharing every identifying part (e.g. both copies of a duplicated record) are one finding
    return frame.unique(subset=["finding_id"], keep="first", maintain_order=True)


def _as_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def empty_history() -> pl.DataFrame:
    return pl.DataFrame(schema=HISTORY_SCHEMA)


def update_findings_history(
    previous: pl.DataFrame | None,
    current: pl.DataFrame,
    build_id: str,
    built_at: datetime,
    stages: Iterable[str] | None = None,
) -> pl.DataFrame:
    """The findings history after a build.

    - a finding in ``current`` is open; ``first_seen_*`` is kept from ``previous`` when it was seen before (also when
      it had been closed and came back: it reopens), ``last_seen_*`` is this build; its text columns come from
      ``current``;
    - an open finding of ``previous`` absent from ``current`` is closed by this build (``closed_*``), its
      ``last_seen_*`` unchanged;
    - a closed finding of ``previous`` absent from ``current`` is carried unchanged.

    ``stages``: the stages this build validated. Findings of other stages are carried unchanged (a build that stopped
    at the staging gate does not close marts findings). Default: every stage is in scope.
    A naive ``built_at`` is taken as UTC.
    """
    at = _as_utc(built_at)
    cur = current.select(FINDINGS_COLUMNS).cast(FINDINGS_SCHEMA).unique(
        subset=["finding_id"], keep="first", maintain_order=True
    )
    prev = empty_history() if previous is None or previous.height == 0 else previous.select(HISTORY_COLUMNS).cast(HISTORY_SCHEMA)
    if stages is not None:
        in_scope = pl.col("stage").is_in(list(stages))
        carried_out_of_scope = prev.filter(~in_scope)
        prev = prev.filter(in_scope)
    else:
        carried_out_of_scope = empty_history()

    prev_first = prev.select("finding_id", "first_seen_build", "first_seen_at")
    seen = (
        cur.join(prev_first, on="finding_id", how="left")
        .with_columns(
            status=pl.lit("open"),
            first_seen_build=pl.coalesce(pl.col("first_seen_build"), pl.lit(build_id)),
            first_seen_at=pl.coalesce(pl.col("first_seen_at"), pl.lit(at, dtype=_TS)),
            last_seen_build=pl.lit(build_id),
            last_seen_at=pl.lit(at, dtype=_TS),
            closed_build=pl.lit(None, dtype=pl.Utf8),
            closed_at=pl.lit(None, dtype=_TS),
        )
        .select(HISTORY_COLUMNS)
    )
    gone = prev.join(cur.select("finding_id"), on="finding_id", how="anti")
    closing = gone.filter(pl.col("status") == "open").with_columns(
        status=pl.lit("closed"),
        closed_build=pl.lit(build_id),
        closed_at=pl.lit(at, dtype=_TS),
    )
    stay_closed = gone.filter(pl.col("status") != "open")
    return pl.concat([seen, closing, stay_closed, carried_out_of_scope], how="vertical").cast(HISTORY_SCHEMA)
