"""Each finding's review status from its decisions, and whether a build's error findings block publishing.

The status is the outcome of the finding's decisions in order:
- ``accept`` -> accepted, while the finding's value is the one accepted (same value fingerprint); an acceptance of
  another value has lapsed (a later export changed the value): the finding is open again, to be judged anew;
- ``query`` -> queried (the query id is kept), ``answer`` -> answered, ``reopen`` -> open;
- no decision -> open.
Only an acceptance is bound to the value: a query or an answer stays with the finding (the site was asked about
this subject's field, whatever it holds now).

Publishing is blocked by an error finding whose status is open (nobody accepted or queried it), by a failed error
rule that has no finding to decide on (e.g. an expectation that could not run), and by a failed error rule whose
findings were capped (rows beyond the cap were never shown, so nobody decided on them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from warehouse.review.store import DECISION_SCHEMA, value_fingerprint

STATUSES = ("open", "queried", "answered", "accepted")

STATUS_SCHEMA: dict[str, pl.DataType] = {
    "finding_id": pl.Utf8,
    "review_status": pl.Utf8,
    "review_decisions": pl.Int64,
    "last_action": pl.Utf8,
    "last_decided_by": pl.Utf8,
    "last_decided_at": pl.Utf8,
    "query_id": pl.Utf8,
    "accepted_by": pl.Utf8,
    "accepted_at": pl.Utf8,
    "accepted_reason": pl.Utf8,
    "acceptance_lapsed": pl.Boolean,
}

REVIEW_COLUMNS: dict[str, str] = {  # column -> its description in the build's catalog
    "review_status": "The data manager's review: open (nobody decided), queried (sent to the site), answered "
                     "(the site replied) or accepted (correct as entered: does not block publishing)",
    "review_decisions": "Number of decisions recorded on the finding (main.finding_decisions)",
    "last_action": "The latest decision: accept, query, answer or reopen",
    "last_decided_by": "Who made the latest decision",
    "last_decided_at": "When the latest decision was made (UTC, ISO 8601)",
    "query_id": "Id of the latest query sent to the site about the finding",
    "accepted_by": "Who accepted the value (while accepted)",
    "accepted_at": "When the value was accepted (UTC, ISO 8601)",
    "accepted_reason": "Why the value is correct as entered",
    "acceptance_lapsed": "An acceptance was made for another value: a later export changed it, so it is judged again",
}


def _walk(decisions: list[dict], fingerprint: str) -> dict:
    """One finding's status from its decisions (oldest first) and its current value's fingerprint."""
    out: dict = {"review_status": "open", "review_decisions": len(decisions), "query_id": None,
                 "accepted_by": None, "accepted_at": None, "accepted_reason": None, "acceptance_lapsed": False}
    for d in decisions:
        action = d["action"]
        if action == "accept":
            holds = d["value_fingerprint"] == fingerprint
            out["review_status"] = "accepted" if holds else "open"
            out["acceptance_lapsed"] = not holds
        else:
            out["review_status"] = {"query": "queried", "answer": "answered", "reopen": "open"}[action]
            out["acceptance_lapsed"] = False
            if action == "query":
                out["query_id"] = d["query_id"]
        if out["review_status"] == "accepted":
            out.update(accepted_by=d["decided_by"], accepted_at=d["decided_at"], accepted_reason=d["text"])
        else:
            out.update(accepted_by=None, accepted_at=None, accepted_reason=None)
    last = decisions[-1] if decisions else {}
    out.update(last_action=last.get("action"), last_decided_by=last.get("decided_by"),
               last_decided_at=last.get("decided_at"))
    return out


def review_status(findings: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """STATUS_SCHEMA, one row per finding of ``findings`` (``finding_id``, ``value``)."""
    if findings.height == 0:
        return pl.DataFrame(schema=STATUS_SCHEMA)
    decisions = decisions if decisions.height else pl.DataFrame(schema=DECISION_SCHEMA)
    by_finding: dict[str, list[dict]] = {}
    for d in decisions.sort("decision_id").iter_rows(named=True):
        by_finding.setdefault(d["finding_id"], []).append(d)
    rows = []
    for fid, value in findings.select("finding_id", "value").unique("finding_id", keep="first").iter_rows():
        rows.append({"finding_id": fid, **_walk(by_finding.get(fid, []), value_fingerprint(value))})
    return pl.DataFrame(rows, schema=STATUS_SCHEMA)


def with_review(findings: pl.DataFrame, status: pl.DataFrame) -> pl.DataFrame:
    """``findings`` with the review columns (a finding without a status row is open)."""
    base = findings.drop([c for c in STATUS_SCHEMA if c != "finding_id" and c in findings.columns])
    joined = base.join(status, on="finding_id", how="left")
    return joined.with_columns(pl.col("review_status").fill_null("open"),
                               pl.col("review_decisions").fill_null(0),
                               pl.col("acceptance_lapsed").fill_null(False))


@dataclass
class Blocking:
    """Why a build's validation blocks publishing, after the review: empty lists -> it publishes."""

    open_errors: int = 0  # error findings nobody accepted or queried
    undecidable_rules: list[str] = field(default_factory=list)  # failed error rules with no finding to decide on
    capped_rules: list[str] = field(default_factory=list)  # failed error rules whose findings were capped

    @property
    def blocked(self) -> bool:
        return bool(self.open_errors or self.undecidable_rules or self.capped_rules)


def blocking(results: pl.DataFrame, reviewed: pl.DataFrame, cap: int) -> Blocking:
    """What blocks publishing: ``results`` (validation_results rows), ``reviewed`` (findings with_review)."""
    out = Blocking()
    if results.height == 0:
        return out
    failed = results.filter((pl.col("severity") == "error") & ~pl.col("success").fill_null(False))
    if failed.height == 0:  # no error rule failed: nothing blocks (as before any review)
        return out
    errors = reviewed.filter(pl.col("severity") == "error") if reviewed.height else reviewed
    if errors.height:
        out.open_errors = errors.filter(pl.col("review_status") == "open").height
    counts: Counter = Counter()
    if errors.height:
        counts.update((r["stage"], r["suite"], r["rule"]) for r in errors.iter_rows(named=True))
    for r in failed.select("stage", "suite", "rule").unique(maintain_order=True).iter_rows(named=True):
        key, name = (r["stage"], r["suite"], r["rule"]), f"{r['stage']}/{r['rule']}"
        if counts[key] == 0:
            out.undecidable_rules.append(name)
        elif counts[key] >= cap:
            out.capped_rules.append(name)
    return out


def review_counts(reviewed: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{severity: {status: findings}} for error and warning findings (every status present, zero when none)."""
    out = {sev: {s: 0 for s in STATUSES} for sev in ("error", "warning")}
    if reviewed.height:
        for (sev, st), n in Counter(zip(reviewed["severity"].to_list(),
                                        reviewed["review_status"].to_list())).items():
            out.setdefault(sev, {s: 0 for s in STATUSES})[st] = n
    return out


def accepted_by(reviewed: pl.DataFrame, severity: str = "error") -> list[tuple[str, int]]:
    """(person, accepted findings of ``severity``), most first then by name."""
    if reviewed.height == 0:
        return []
    rows = reviewed.filter((pl.col("severity") == severity) & (pl.col("review_status") == "accepted"))
    return sorted(Counter(rows["accepted_by"].to_list()).items(), key=lambda kv: (-kv[1], kv[0]))


def summary_line(reviewed: pl.DataFrame) -> str:
    """The build summary's review line: errors accepted (and by whom), queried, answered, still open."""
    counts = review_counts(reviewed)["error"]
    who = ", ".join(f"{name} {n}" for name, n in accepted_by(reviewed))
    return (f"Review: {counts['accepted']} error finding(s) accepted" + (f" (by {who})" if who else "")
            + f", {counts['queried']} queried, {counts['answered']} answered, {counts['open']} open")
