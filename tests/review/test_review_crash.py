"""A build killed mid-way (SIGKILL) while a data manager decides loses no decision: every decision acknowledged
before, during and after the kill is in the store, the store is intact, and the next build reads them all."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import duckdb
import polars as pl
import pytest
from review_helpers import INJECT_RATE, SEED, SUBJECTS, demo_request, fresh_copy

from warehouse.build import PublishBlocked, run_build
from warehouse.review.actions import decide
from warehouse.review.source import review_source
from warehouse.review.store import read_decisions, store_path

pytestmark = pytest.mark.slow

BUILD = f"""
import sys
from pathlib import Path
from warehouse.build import BuildRequest, DirectRunner, run
request = BuildRequest(data_dir=Path(sys.argv[1]), demo_subjects={SUBJECTS}, demo_seed={SEED},
                       demo_inject_rate={INJECT_RATE})
run(request, DirectRunner(say=lambda stage, message: print(stage, message, flush=True)))
"""


def test_a_killed_build_loses_no_decision(injected_review, tmp_path):
    data = fresh_copy(injected_review, tmp_path / "data")
    source = review_source(data)
    ids = source.findings.filter(pl.col("severity") == "error")["finding_id"].to_list()
    acknowledged: list[int] = []
    stop = threading.Event()

    def keep_deciding() -> None:  # one decision at a time, as a data manager clicking through the list
        for fid in ids:
            if stop.is_set():
                return
            recorded = decide(data, "query", [fid], "please check", "dm-dave", source=source)
            acknowledged.extend(recorded["decision_id"].to_list())

    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    decider = threading.Thread(target=keep_deciding)
    try:
        decider.start()
        for line in proc.stdout:  # kill it in the middle: once it is running the models
            if line.startswith("transform"):
                break
        else:
            pytest.fail("the build ended before its transform")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = len(acknowledged)
        time.sleep(1.0)  # decisions go on after the kill
    finally:
        stop.set()
        decider.join(timeout=120)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < killed_at < len(acknowledged), "decisions were made both before and after the kill"
    stored = read_decisions(data)
    assert stored["decision_id"].to_list() == sorted(acknowledged)  # none lost, none half-written
    con = sqlite3.connect(store_path(data))
    assert con.execute("pragma integrity_check").fetchall() == [("ok",)]
    con.close()
    # the next build (after the killed one) reads every decision
    with pytest.raises(PublishBlocked):
        run_build(demo_request(data))
    newest = review_source(data)
    with duckdb.connect(str(newest.build_file), read_only=True) as db:
        copied = db.sql("select decision_id from main.finding_decisions order by 1").fetchall()
    assert [r[0] for r in copied] == sorted(acknowledged)
    queried = newest.findings.filter(pl.col("review_status") == "queried").height
    assert queried == len(acknowledged)
