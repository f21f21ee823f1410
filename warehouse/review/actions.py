"""Deciding on findings: what `warehouse findings` and the review page call.

A decision names findings of the build under review (an unknown id is refused, nothing recorded), says why
(a reason, the query's text, the site's answer: never empty) and who (the OS account unless named). Its text may
not hold an identifier value of the build's export: identifiers never leave the raw zone, and decisions go into
every later build.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from warehouse.review.source import ReviewError, ReviewSource, review_source
from warehouse.review.store import ACTIONS, NewDecision, record, value_fingerprint

# the statuses each action applies to (anything else is refused with the reason)
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "accept": ("open", "queried", "answered", "accepted"),
    "query": ("open", "queried", "answered", "accepted"),
    "answer": ("queried",),
    "reopen": ("queried", "answered", "accepted"),
}
MAX_TEXT = 2000


def person(by: str | None) -> str:
    """Who decides: the name given, else the OS account."""
    name = (by or "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_text(text: str | None, action: str, source: ReviewSource) -> str:
    """The decision's text, stripped: present, one paragraph at most MAX_TEXT long, and no identifier value."""
    what = {"accept": "a reason", "query": "the query's text", "answer": "the site's answer",
            "reopen": "a reason"}[action]
    clean = " ".join((text or "").split())
    if not clean:
        raise ReviewError(f"{action}: {what} is required (--reason / --text)")
    if len(clean) > MAX_TEXT:
        raise ReviewError(f"{action}: the text is {len(clean)} characters long; at most {MAX_TEXT}")
    if _holds_identifier(clean, source):
        raise ReviewError(f"{action}: the text holds an identifier value of the export; identifiers never leave "
                          "the raw zone: reword it without it")
    return clean


def _holds_identifier(text: str, source: ReviewSource) -> bool:
    from warehouse.validate.identifiers import export_identifier_values

    try:
        _, values = export_identifier_values(source.data_dir, source.export_id)
    except (OSError, FileNotFoundError, ValueError):
        return False  # the raw snapshot is gone: nothing to compare with
    lowered = text.lower()
    if any(v.lower() in lowered for v in values.long):
        return True
    tokens = set(lowered.replace(",", " ").replace(";", " ").split())
    return any(str(v).lower() in tokens for v in values.short.get_column("value").to_list())


def decide(data_dir: Path, action: str, finding_ids: Iterable[str], text: str | None, by: str | None = None,
           blinded: bool = True, source: ReviewSource | None = None) -> pl.DataFrame:
    """Record ``action`` on each finding (one transaction); returns the decisions as recorded.

    Refused (ReviewError, nothing recorded): an unknown action, no id, an unknown id, an empty text, an identifier
    value in the text, an action that does not apply to a finding's status (answer without a query, reopen of an
    open finding)."""
    if action not in ACTIONS:
        raise ReviewError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    ids = list(dict.fromkeys(i.strip() for i in finding_ids if i and i.strip()))
    if not ids:
        raise ReviewError(f"{action}: no finding id given")
    source = source or review_source(data_dir, blinded)
    unknown = [i for i in ids if i not in source.ids()]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ReviewError(f"unknown finding id(s) {shown}: not findings of build {source.build_id}")
    clean = check_text(text, action, source)
    who = person(by)
    rows = source.findings.filter(pl.col("finding_id").is_in(ids)).unique("finding_id", keep="first")
    current = {r["finding_id"]: r for r in rows.iter_rows(named=True)}
    for fid in ids:
        status = current[fid]["review_status"]
        if status not in ALLOWED_FROM[action]:
            raise ReviewError(f"{action} {fid}: the finding is {status}; {action} applies to "
                              f"{' or '.join(ALLOWED_FROM[action])} findings")
    return record(data_dir, [NewDecision(fid, value_fingerprint(current[fid]["value"]), action, clean, who)
                             for fid in ids])
