"""Recall on the demo study, through the real build (``warehouse.build.run_build``): every problem the generator
injected (its manifest: subject, form, event, instance, field, kind) is a finding of the build on that subject,
form, event, instance and field; the clean demo study yields no error-level finding and publishes.

A window deviation on a subject whose randomisation date-time was removed cannot be checked (no study time): it is
still reported, on the same subject and field (pe_dt), by the rule that the challenge's time from randomisation
must be computable, and the missing rand_dt is a finding of its own (raw: required item; staging: randomised
subject without randomisation date-time)."""

from __future__ import annotations

import polars as pl
import pytest
from marts_inputs import marts_relations
from validate_frames import drop_duplicate_records

demo = pytest.importorskip("warehouse.demo")
extract = pytest.importorskip("warehouse.extract")

from warehouse.validate import validate_stage  # noqa: E402

DUPLICATE_FIELD = "subject_id, event, repeat_instance"


def _match(findings: pl.DataFrame, p: dict, field: str | None = None) -> pl.DataFrame:
    m = findings.filter((pl.col("subject_id") == p["subject"]) & (pl.col("form") == p["form"])
                        & (pl.col("event") == p["event"]))
    if p["instance"] is not None:
        m = m.filter(pl.col("repeat_instance") == str(p["instance"]))
    return m.filter(pl.col("field") == (field or p["field"] or DUPLICATE_FIELD))


# --------------------------------------------------------------------------------------------- the real build


def test_every_injected_problem_is_a_finding_of_the_build(injected_build):
    b = injected_build
    assert b.blocked and "publishing blocked" in b.blocked
    kinds = {p["kind"] for p in b.problems}
    assert kinds >= {"out_of_range", "missing_required", "unknown_code", "ae_end_before_start",
                     "visit_out_of_window", "duplicate_record"}
    # until the extract lands identical duplicate records, the build runs on the export without them (their
    # detection is tested on the raw zone below); then every problem must be found by the build itself
    checked = [p for p in b.problems if not (b.duplicates_dropped and p["kind"] == "duplicate_record")]
    missed = [p for p in checked if _match(b.findings, p).height == 0]
    assert missed == [], f"{len(missed)} of {len(checked)} injected problems not found, e.g. {missed[:3]}"


def test_injected_errors_block_publishing(injected_build):
    b = injected_build
    assert not (b.data_dir / "warehouse.duckdb").exists()
    for kind in ("out_of_range", "missing_required", "unknown_code", "ae_end_before_start"):
        p = next(p for p in b.problems if p["kind"] == kind and p["form"] not in ("randomisation",))
        assert "error" in _match(b.findings, p)["severity"].to_list(), kind


def test_window_deviation_without_randomisation_date_is_still_reported(injected_build):
    b = injected_build
    no_h0 = {p["subject"] for p in b.problems if p["kind"] == "missing_required" and p["field"] == "rand_dt"}
    assert no_h0, "the seed should remove some rand_dt"
    # the randomised subject without rand_dt is a staging finding on rand_dt
    staged = b.findings.filter((pl.col("stage") == "staging") & (pl.col("field") == "rand_dt"))
    assert set(staged["subject_id"].to_list()) == no_h0
    assert set(staged["severity"].to_list()) == {"error"}
    # their PE challenges are reported on pe_dt: the window cannot be checked (and only theirs)
    pe = b.findings.filter((pl.col("form") == "pe_challenge") & (pl.col("field") == "pe_dt")
                           & pl.col("rule").str.contains("window cannot be checked"))
    assert pe.height > 0 and set(pe["subject_id"].to_list()) <= no_h0
    assert all("rand_dt is missing" in m for m in pe["message"].to_list())
    windows = [p for p in b.problems if p["kind"] == "visit_out_of_window" and p["subject"] in no_h0]
    assert all(_match(pe, p).height == 1 for p in windows)


def test_randomised_subject_without_rand_dt_does_not_reconcile_with_adsl(injected_build):
    """stg_randomisation drops a record without rand_dt, so ADSL says ITTFL = N for a randomised subject: the marts
    reconcile ADSL's ITT subjects with every record of the randomisation form, and find exactly these subjects."""
    b = injected_build
    no_h0 = {p["subject"] for p in b.problems if p["kind"] == "missing_required" and p["field"] == "rand_dt"}
    rec = b.findings.filter(pl.col("suite") == "marts_chk_adsl_randomised")
    assert set(rec["subject_id"].to_list()) == {f"ADRESS-{s}" for s in no_h0}
    assert set(rec["severity"].to_list()) == {"error"} and set(rec["field"].to_list()) == {"ITTFL"}


def test_the_build_gives_the_marts_suites_what_they_reconcile_with(clean_build):
    """validate_marts passes the randomisation form itself (src.randomisation: every record) and the staging
    adverse events (staging.stg_adverse_events), so no reconciliation of the marts is skipped."""
    names = {t.split(".")[-1].strip('"') for t in marts_relations(clean_build.build_file)}
    assert {"adsl", "adeff", "adae", "adtte", "randomisation", "stg_adverse_events"} <= names
    marts = clean_build.results.filter(pl.col("stage") == "marts")
    assert marts.filter(pl.col("status") == "skipped").select("suite", "table", "note").rows() == []


# --------------------------------------------------------------------------------------------- duplicates on the raw zone


def land(tmp, rate: float):
    res = demo.generate_demo(tmp / "demo", subjects=32, seed=7, inject_rate=rate, formats=("redcap",))
    dropped = drop_duplicate_records(res.redcap_dir)
    lr = extract.land_export(res.redcap_dir, tmp / "data")
    meta = {k: extract.read_raw_meta(tmp / "data", lr.export_id, k) for k in ("items", "choices", "events", "forms")}
    tables = {f: extract.read_raw_form(tmp / "data", lr.export_id, f) for f in meta["forms"]["form"].to_list()}
    return res, dropped, tables, meta


@pytest.fixture(scope="module")
def injected_raw(gx_loaded, tmp_path_factory):
    """The raw zone of the injected demo with its duplicate records put back (as a lenient extract lands them)."""
    res, dropped, tables, meta = land(tmp_path_factory.mktemp("demo_bad"), 0.1)
    dups = [p for p in res.problems if p["kind"] == "duplicate_record"]
    assert dropped == len(dups) > 0
    for p in dups:
        t = tables[p["form"]]
        row = t.filter((pl.col("subject_id") == p["subject"]) & (pl.col("event") == p["event"])
                       & (pl.col("repeat_instance") == str(p["instance"])))
        assert row.height == 1
        tables[p["form"]] = pl.concat([t, row])
    return res, validate_stage("raw", tables, meta)


def test_raw_recall_of_duplicate_records(injected_raw):
    res, raw = injected_raw
    problems = [p for p in res.problems if p["kind"] == "duplicate_record"]
    missed = [p for p in problems if _match(raw.findings, p).height == 0]
    assert missed == []


def test_raw_findings_are_all_injected_problems(injected_raw):
    """Precision at raw: every raw finding is an injected problem."""
    res, raw = injected_raw
    expected = {(p["subject"], p["form"], p["event"], None if p["instance"] is None else str(p["instance"]),
                 p["field"] or DUPLICATE_FIELD)
                for p in res.problems if p["kind"] in ("unknown_code", "missing_required", "duplicate_record")}
    got = set(raw.findings.select("subject_id", "form", "event", "repeat_instance", "field").rows())
    assert got == expected
    assert not raw.success


# --------------------------------------------------------------------------------------------- the clean study


def test_clean_demo_build_has_no_error_finding(clean_build):
    b = clean_build
    assert b.problems == [] and b.duplicates_dropped == 0
    assert b.blocked is None and b.result.published is not None and b.result.errors == 0
    assert b.findings.filter(pl.col("severity") == "error").height == 0
    # no finding at all, not even a warning: the subject who died before H6 has no primary endpoint value, and
    # none is expected (MISSRSN = DIED BEFORE TIME POINT); raw and staging: every expectation ran
    others = b.findings.filter(pl.col("suite") != "adam_conformance")
    assert others.select("stage", "suite", "subject_id", "message").rows() == []
    # nor does the ADaM conformance suite: the demo marts' former deviations (docs/adam-conformance.md) are fixed
    adam = b.findings.filter(pl.col("suite") == "adam_conformance")
    assert adam.select("rule", "form", "field", "value").rows() == []
    assert b.results.filter(pl.col("stage").is_in(["raw", "staging"]) & (pl.col("status") == "skipped")).height == 0
