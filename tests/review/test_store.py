"""The decisions store and the review status it gives findings (quick tier: no build).

Expected statuses are worked out by hand from the decisions' order and the rule of warehouse/review/status.py:
the last decision decides; an acceptance holds only for the value it was made on."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import polars as pl
import pytest

from warehouse.review.status import blocking, review_counts, review_status, summary_line, with_review
from warehouse.review.store import (NewDecision, decisions_digest, read_decisions, record, store_path,
                                    value_fingerprint)


def findings(*rows: tuple[str, str | None, str]) -> pl.DataFrame:
    """(finding_id, value, severity) rows, with the stage/suite/rule the gate groups by."""
    return pl.DataFrame([{"finding_id": f, "value": v, "severity": s, "stage": "staging", "suite": "s",
                          "rule": f"rule-{f[0]}"} for f, v, s in rows])


def decide(data_dir: Path, fid: str, value: str | None, action: str, text: str = "why", who: str = "dm") -> None:
    record(data_dir, [NewDecision(fid, value_fingerprint(value), action, text, who)])


def test_no_store_means_no_decision_and_an_empty_digest(tmp_path):
    assert read_decisions(tmp_path).height == 0
    assert decisions_digest(tmp_path) == ""
    assert not store_path(tmp_path).exists()  # reading never creates it


def test_statuses_follow_the_last_decision_and_an_acceptance_binds_the_value(tmp_path):
    decide(tmp_path, "a1", "534.4", "accept", "site confirmed", "alice")   # a1: accepted (same value)
    decide(tmp_path, "b1", "7", "query", "please check")                    # b1: queried, query id Q000002
    decide(tmp_path, "c1", "9", "query", "please check")                    # c1: queried, then answered
    decide(tmp_path, "c1", "9", "answer", "entered as on the source")
    decide(tmp_path, "d1", "1.0", "accept", "ok", "bob")                    # d1: accepted for 1.0 ...
    decide(tmp_path, "e1", "5", "accept", "ok")                             # e1: accepted, then reopened
    decide(tmp_path, "e1", "5", "reopen", "not convinced")
    decide(tmp_path, "f1", None, "accept", "missing by design")             # f1: null value accepted
    frame = findings(("a1", "534.4", "error"), ("b1", "7", "error"), ("c1", "9", "error"),
                     ("d1", "2.0", "error"),  # ... and the value is now 2.0: lapsed, open
                     ("e1", "5", "error"), ("f1", None, "warning"), ("g1", "x", "error"))  # g1: no decision
    status = {r["finding_id"]: r for r in review_status(frame, read_decisions(tmp_path)).iter_rows(named=True)}
    assert {k: v["review_status"] for k, v in status.items()} == {
        "a1": "accepted", "b1": "queried", "c1": "answered", "d1": "open", "e1": "open", "f1": "accepted",
        "g1": "open"}
    assert status["a1"]["accepted_by"] == "alice" and status["a1"]["accepted_reason"] == "site confirmed"
    assert status["b1"]["query_id"] == "Q000002" and status["c1"]["query_id"] == "Q000003"
    assert status["d1"]["acceptance_lapsed"] is True and status["d1"]["accepted_by"] is None
    assert status["e1"]["acceptance_lapsed"] is False and status["e1"]["last_action"] == "reopen"
    assert status["g1"]["review_decisions"] == 0 and status["c1"]["review_decisions"] == 2
    reviewed = with_review(frame, review_status(frame, read_decisions(tmp_path)))
    assert review_counts(reviewed)["error"] == {"open": 3, "queried": 1, "answered": 1, "accepted": 1}
    assert summary_line(reviewed) == ("Review: 1 error finding(s) accepted (by alice 1), 1 queried, 1 answered, "
                                      "3 open")


def test_a_null_value_and_the_text_null_are_different_values():
    assert value_fingerprint(None) != value_fingerprint("") != value_fingerprint("None")
    assert value_fingerprint("534.4") == value_fingerprint("534.4")


def results(*rules: tuple[str, bool]) -> pl.DataFrame:
    return pl.DataFrame([{"stage": "staging", "suite": "s", "rule": r, "severity": "error", "success": ok}
                         for r, ok in rules])


def test_the_gate_blocks_on_open_errors_rules_without_findings_and_capped_rules(tmp_path):
    frame = findings(("a1", "1", "error"), ("a2", "2", "error"), ("b1", "3", "error"), ("w1", "4", "warning"))
    decide(tmp_path, "a1", "1", "accept")
    decide(tmp_path, "a2", "2", "query")
    reviewed = with_review(frame, review_status(frame, read_decisions(tmp_path)))
    # rule-a: both decided; rule-b: b1 open -> blocks; the warning never blocks
    gate = blocking(results(("rule-a", False), ("rule-b", False)), reviewed, cap=1000)
    assert gate.blocked and gate.open_errors == 1 and not gate.undecidable_rules
    decide(tmp_path, "b1", "3", "accept")
    reviewed = with_review(frame, review_status(frame, read_decisions(tmp_path)))
    assert not blocking(results(("rule-a", False), ("rule-b", False)), reviewed, cap=1000).blocked
    # a failed error rule without any finding cannot be decided on: it blocks
    gate = blocking(results(("rule-a", False), ("rule-z", False)), reviewed, cap=1000)
    assert gate.blocked and gate.undecidable_rules == ["staging/rule-z"] and gate.open_errors == 0
    # rule-a has 2 findings: with a cap of 2 its rows beyond the cap were never seen
    gate = blocking(results(("rule-a", False)), reviewed, cap=2)
    assert gate.blocked and gate.capped_rules == ["staging/rule-a"]
    # nothing failed: nothing blocks, whatever the findings say
    assert not blocking(results(("rule-a", True)), reviewed, cap=1000).blocked


def test_decisions_are_append_only(tmp_path):
    decide(tmp_path, "a1", "1", "accept")
    con = sqlite3.connect(store_path(tmp_path))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("update decisions set text = 'changed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("delete from decisions")
    con.close()
    assert read_decisions(tmp_path)["text"].to_list() == ["why"]
    assert decisions_digest(tmp_path) == "decisions:1:1"


def test_an_unknown_action_records_nothing(tmp_path):
    decide(tmp_path, "a1", "1", "accept")
    with pytest.raises(ValueError, match="unknown action 'close'"):
        record(tmp_path, [NewDecision("a2", "x", "query", "t", "dm"), NewDecision("a3", "x", "close", "t", "dm")])
    assert read_decisions(tmp_path)["finding_id"].to_list() == ["a1"]


def _process_decides(data_dir: str, worker: int, n: int) -> None:
    for i in range(n):
        record(Path(data_dir), [NewDecision(f"p{worker}-{i}", "fp", "query", "t", f"proc{worker}")])


def test_concurrent_writers_lose_nothing(tmp_path):
    """4 processes and 4 threads, 25 single decisions each, all at once: 200 decisions, ids 1..200, query ids
    unique."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_decides, args=(str(tmp_path), w, 25)) for w in range(4)]
    threads = [threading.Thread(target=lambda w=w: [record(tmp_path, [NewDecision(f"t{w}-{i}", "fp", "query", "t",
                                                                               f"thread{w}")]) for i in range(25)])
               for w in range(4)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    stored = read_decisions(tmp_path)
    assert stored.height == 200
    assert sorted(stored["decision_id"].to_list()) == list(range(1, 201))
    assert stored["query_id"].n_unique() == 200
    assert set(stored["finding_id"].to_list()) == ({f"p{w}-{i}" for w in range(4) for i in range(25)}
                                                   | {f"t{w}-{i}" for w in range(4) for i in range(25)})
