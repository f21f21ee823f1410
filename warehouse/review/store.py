"""The decisions on findings, durable and outside any build: ``DIR/review/decisions.sqlite``.

Why SQLite (the standard library's): several writers at once (the command line, the page, two data managers) and
readers (a build) without a server. WAL mode lets a build read while someone decides; each batch of decisions is
one ``BEGIN IMMEDIATE`` transaction (writers queue on SQLite's lock, ``busy_timeout``) with ``synchronous=FULL``,
so a decision acknowledged is on disk and a process killed at any point leaves either the whole batch or none of
it. A DuckDB file would admit one writing process only. Triggers make the table append-only: a decision is never
changed or deleted; a later decision supersedes it.

A decision holds the finding's id (a hash of stage, rule, subject, event, instance, form and field) and a
fingerprint of the finding's value (a hash of the value as the findings show it, where an identifier's value is
already withheld), never a value itself.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

ACTIONS = ("accept", "query", "answer", "reopen")
STORE_DIR = "review"
STORE_FILE = "decisions.sqlite"
BUSY_TIMEOUT_MS = 60_000

SCHEMA = """
create table if not exists decisions (
    decision_id integer primary key,
    finding_id text not null,
    value_fingerprint text not null,
    action text not null check (action in ('accept', 'query', 'answer', 'reopen')),
    text text not null,
    decided_by text not null,
    decided_at text not null,
    query_id text
);
create index if not exists decisions_finding on decisions (finding_id, decision_id);
create trigger if not exists decisions_no_update before update on decisions
    begin select raise(abort, 'decisions are append-only'); end;
create trigger if not exists decisions_no_delete before delete on decisions
    begin select raise(abort, 'decisions are append-only'); end;
"""

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": pl.Int64,
    "finding_id": pl.Utf8,
    "value_fingerprint": pl.Utf8,
    "action": pl.Utf8,
    "text": pl.Utf8,
    "decided_by": pl.Utf8,
    "decided_at": pl.Utf8,
    "query_id": pl.Utf8,
}


@dataclass(frozen=True)
class NewDecision:
    """A decision to record: on which finding, for which value (its fingerprint), what, why, by whom."""

    finding_id: str
    value_fingerprint: str
    action: str
    text: str
    decided_by: str


def store_path(data_dir: Path) -> Path:
    """The decisions of a data directory: shared by its blinded and unblinded builds (a finding's id and value
    fingerprint hold no arm)."""
    return Path(data_dir) / STORE_DIR / STORE_FILE


def value_fingerprint(value: str | None) -> str:
    """16 hex digits of SHA-256 over the value as the findings show it (null distinct from empty text)."""
    text = "\x00null" if value is None else "t:" + str(value)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def connect(data_dir: Path, *, create: bool = True) -> sqlite3.Connection:
    """The store's connection (autocommit: transactions are explicit), WAL, full sync, writers wait their turn."""
    path = store_path(data_dir)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    con.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    if create:
        con.execute("pragma journal_mode = wal")
        con.execute("pragma synchronous = full")
        con.executescript(SCHEMA)
    return con


def record(data_dir: Path, decisions: Iterable[NewDecision], now: datetime | None = None) -> pl.DataFrame:
    """Append decisions in one transaction (all or none); returns them as recorded (ids, time, query ids).

    A query gets the id ``Q<decision id, 6 digits>``: unique, and stable (the decision never changes)."""
    items = list(decisions)
    for d in items:
        if d.action not in ACTIONS:
            raise ValueError(f"unknown action {d.action!r} (one of {', '.join(ACTIONS)})")
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    con = connect(data_dir)
    try:
        con.execute("begin immediate")
        try:
            (last,) = con.execute("select coalesce(max(decision_id), 0) from decisions").fetchone()
            rows = []
            for i, d in enumerate(items, start=last + 1):
                query_id = f"Q{i:06d}" if d.action == "query" else None
                rows.append((i, d.finding_id, d.value_fingerprint, d.action, d.text, d.decided_by, at, query_id))
            con.executemany("insert into decisions values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        con.close()
    return pl.DataFrame(rows, schema=DECISION_SCHEMA, orient="row")


def read_decisions(data_dir: Path, finding_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """Every decision (or those on ``finding_ids``), oldest first; empty when none was ever made."""
    if not store_path(data_dir).is_file():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    con = connect(data_dir, create=False)
    try:
        sql = "select * from decisions"
        params: list[str] = []
        if finding_ids is not None:
            params = sorted(set(finding_ids))
            sql += f" where finding_id in ({', '.join('?' * len(params))})" if params else " where false"
        rows = con.execute(sql + " order by decision_id", params).fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return pl.DataFrame(schema=DECISION_SCHEMA)
        raise
    finally:
        con.close()
    return pl.DataFrame(rows, schema=DECISION_SCHEMA, orient="row")


def decisions_digest(data_dir: Path) -> str:
    """What the build fingerprint takes from the decisions: empty when none was ever made (a data directory
    without review builds as before), else the count and the newest id (the table is append-only)."""
    if not store_path(data_dir).is_file():
        return ""
    con = connect(data_dir, create=False)
    try:
        count, newest = con.execute("select count(*), coalesce(max(decision_id), 0) from decisions").fetchone()
    except sqlite3.OperationalError:
        return ""
    finally:
        con.close()
    return f"decisions:{count}:{newest}" if count else ""
