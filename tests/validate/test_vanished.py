"""Subjects and records of the last published export that a new export no longer has (warehouse/validate/vanished.py).

Real parts throughout: demo exports written by the generator, cut at a line boundary, landed into a real raw zone;
the quick tests write the published build's record as a build does (publish.write_record); the slow ones run whole
builds and read the findings from the build files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.demo import generate_demo
from warehouse.build import BuildRequest, PublishBlocked, run_build
from warehouse.extract.steps import land
from warehouse.publish import BuildPaths, BuildRecord, read_records, write_record
from warehouse.validate.vanished import (
    ACCEPTED_REMOVALS_FILE,
    RECORD_RULE,
    SUBJECT_RULE,
    AcceptedRemovalsError,
    read_accepted_removals,
    reference_export,
    vanished_validation,
)

SUBJECTS = 12


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vanished-demo")
    generate_demo(out, subjects=SUBJECTS, seed=7, inject_rate=0.0, formats=("redcap",))
    return out / "redcap"


def records_file(export: Path) -> Path:
    (path,) = [p for p in export.glob("*.csv") if "_DATA_" in p.name]
    return path


def subject_lines(export: Path) -> tuple[str, list[tuple[str, str]]]:
    """The records CSV as (header, [(subject, line), ...]); the demo writes no value spanning lines."""
    header, *lines = records_file(export).read_text(encoding="utf-8").splitlines(keepends=True)
    return header, [(line.split(",", 1)[0], line) for line in lines]


def cut_copy(export: Path, target: Path, keep_subjects: int, extra_lines: int = 0) -> tuple[list[str], list[str]]:
    """A copy of the export whose records CSV is cut at a line boundary: the lines of the first `keep_subjects`
    subjects, plus `extra_lines` lines of the next one. Returns (subjects kept whole or in part, subjects gone)."""
    shutil.copytree(export, target)
    header, lines = subject_lines(export)
    order = list(dict.fromkeys(s for s, _ in lines))
    end = sum(1 for s, _ in lines if s in set(order[:keep_subjects])) + extra_lines
    assert [s for s, _ in lines[:end]] == sorted([s for s, _ in lines[:end]], key=order.index), "records not grouped"
    records_file(target).write_text(header + "".join(line for _, line in lines[:end]), encoding="utf-8")
    kept = list(dict.fromkeys(s for s, _ in lines[:end]))
    return kept, [s for s in order if s not in kept]


def publish_record(data_dir: Path, export_id: str, build_id: str = "20240101T000000000000Z-test", blinded=True):
    """The record a build writes when it publishes `export_id` (what the check reads to find its reference)."""
    write_record(BuildPaths(data_dir, blinded), BuildRecord(build_id=build_id, started_at=build_id,
                                                            export_id=export_id, blinded=blinded, status="published"))


# -- quick: the check on real landed snapshots ------------------------------------------------------------------


def test_first_export_raises_nothing(demo_export, tmp_path):
    export_id = land(demo_export, tmp_path)
    assert reference_export(tmp_path) is None
    v = vanished_validation(tmp_path, export_id)
    assert v.results.height == 0 and v.findings.height == 0 and v.success


def test_same_export_again_raises_nothing(demo_export, tmp_path):
    export_id = land(demo_export, tmp_path)
    publish_record(tmp_path, export_id)
    v = vanished_validation(tmp_path, export_id)
    assert v.findings.height == 0 and v.success
    assert v.results.get_column("status").to_list() == ["passed", "passed"]
    assert v.results.get_column("element_count").to_list()[0] == SUBJECTS


def test_subjects_cut_off_are_one_error_each_and_records_of_a_half_cut_subject_warnings(demo_export, tmp_path):
    data_dir = tmp_path / "data"
    first = land(demo_export, data_dir)
    publish_record(data_dir, first)
    kept, gone = cut_copy(demo_export, tmp_path / "cut", keep_subjects=SUBJECTS // 2, extra_lines=2)
    cut = land(tmp_path / "cut", data_dir)

    v = vanished_validation(data_dir, cut)
    assert not v.success
    errors = v.findings.filter(pl.col("severity") == "error")
    assert errors.get_column("expectation_type").unique().to_list() == [SUBJECT_RULE]
    assert sorted(errors.get_column("subject_id").to_list()) == sorted(gone)
    assert len(gone) == SUBJECTS - SUBJECTS // 2 - 1
    sites = dict(pl.read_parquet(data_dir / "raw" / first / "eligibility.parquet")
                 .select("subject_id", "site_id").iter_rows())
    for row in errors.iter_rows(named=True):
        assert row["site_id"] == sites[row["subject_id"]]
        assert row["subject_id"] in row["message"] and first in row["message"] and "eligibility" in row["message"]
        assert ACCEPTED_REMOVALS_FILE in row["message"]
    # the subject cut in the middle: still present, its later records gone -> warnings naming form and event
    half = kept[-1]
    warnings = v.findings.filter(pl.col("severity") == "warning")
    assert warnings.height > 0
    assert warnings.get_column("subject_id").unique().to_list() == [half]
    assert warnings.get_column("expectation_type").unique().to_list() == [RECORD_RULE]
    assert warnings.filter(pl.col("form").is_null() | pl.col("event").is_null()).height == 0
    keys = ["subject_id", "event", "repeat_instance"]
    for (form,), rows in warnings.group_by(["form"]):
        before = pl.read_parquet(data_dir / "raw" / first / f"{form}.parquet").select(keys)
        after = pl.read_parquet(data_dir / "raw" / cut / f"{form}.parquet").select(keys)
        lost = before.join(after, on=keys, how="anti", nulls_equal=True).filter(pl.col("subject_id") == half)
        assert sorted(rows.select(keys).rows(), key=str) == sorted(lost.rows(), key=str), form
    results = {r["expectation_type"]: r for r in v.results.iter_rows(named=True)}
    assert results[SUBJECT_RULE]["unexpected_count"] == len(gone) and results[SUBJECT_RULE]["severity"] == "error"
    assert results[RECORD_RULE]["unexpected_count"] == warnings.height
    assert results[RECORD_RULE]["severity"] == "warning"


def test_accepted_removals_clear_the_findings_they_name(demo_export, tmp_path):
    data_dir = tmp_path / "data"
    publish_record(data_dir, land(demo_export, data_dir))
    kept, gone = cut_copy(demo_export, tmp_path / "cut", keep_subjects=SUBJECTS - 2, extra_lines=1)
    cut = land(tmp_path / "cut", data_dir)
    half = kept[-1]
    warnings = vanished_validation(data_dir, cut).findings.filter(pl.col("severity") == "warning")
    form = warnings.get_column("form")[0]
    (data_dir / ACCEPTED_REMOVALS_FILE).write_text(
        "# removals the data manager accepted\n"
        "subject_id,form,event,repeat_instance,reason,who,when\n"
        f"{gone[0]},,,,test record deleted in REDCap,J. Smith (DM),2024-03-02\n"
        f"{half},{form},,,forms deleted in REDCap,J. Smith (DM),2024-03-02\n", encoding="utf-8")
    v = vanished_validation(data_dir, cut)
    errors = v.findings.filter(pl.col("severity") == "error")
    assert errors.get_column("subject_id").to_list() == gone[1:]
    left = v.findings.filter(pl.col("severity") == "warning")
    assert left.height == warnings.filter(pl.col("form") != form).height
    assert form not in left.get_column("form").to_list()
    note = v.results.filter(pl.col("expectation_type") == SUBJECT_RULE).get_column("note")[0]
    assert "1 subject(s) accepted as removed" in note


@pytest.mark.parametrize("text, expected", [
    ("subject_id,reason,who\n01-001,x,y\n", "header lacks column(s) when"),
    ("subject_id,reason,who,when,colour\n01-001,x,y,z,red\n", "unknown column(s) colour"),
    ("subject_id,reason,who,when\n01-001,,J. Smith,2024-03-02\n", ":2: field 'reason' is empty (subject 01-001)"),
    ("subject_id,form,event,reason,who,when\n01-001,,h0_arm_1,x,y,z\n", ":2: field 'form' is empty"),
    ("subject_id,reason,who,when\n01-001,x,y,z,extra\n", ":2: 5 values for 4 columns"),
])
def test_a_malformed_acceptance_file_names_file_line_and_field(tmp_path, text, expected):
    (tmp_path / ACCEPTED_REMOVALS_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(AcceptedRemovalsError) as err:
        read_accepted_removals(tmp_path)
    assert expected in str(err.value) and str(tmp_path / ACCEPTED_REMOVALS_FILE) in str(err.value)


def test_reference_is_the_newest_published_build_of_either_root_never_a_blocked_one(demo_export, tmp_path):
    data_dir = tmp_path / "data"
    first = land(demo_export, data_dir)
    cut_copy(demo_export, tmp_path / "cut", keep_subjects=3)
    cut = land(tmp_path / "cut", data_dir)
    publish_record(data_dir, first, "20240101T000000000000Z-a", blinded=False)
    write_record(BuildPaths(data_dir, True), BuildRecord(build_id="20240201T000000000000Z-b", started_at="x",
                                                         export_id=cut, status="blocked"))
    assert reference_export(data_dir).export_id == first  # the blocked cut export is not the reference
    assert not vanished_validation(data_dir, cut).success  # so building it again is blocked again
    publish_record(data_dir, cut, "20240301T000000000000Z-c", blinded=True)
    assert reference_export(data_dir).export_id == cut


# -- slow: whole builds -------------------------------------------------------------------------------------------


def build_findings(data_dir: Path, build_id: str) -> pl.DataFrame:
    with duckdb.connect(str(BuildPaths(data_dir, True).build_file(build_id)), read_only=True) as con:
        return con.sql("select * from main.findings").pl()


@pytest.mark.slow
def test_a_cut_export_is_blocked_until_its_removals_are_accepted(demo_export, tmp_path):
    data_dir = tmp_path / "data"
    first = run_build(BuildRequest(data_dir=data_dir, export=demo_export))
    assert first.published is not None and first.errors == 0
    assert build_findings(data_dir, first.build_id).filter(
        pl.col("expectation_type").is_in([SUBJECT_RULE, RECORD_RULE])).height == 0

    _, gone = cut_copy(demo_export, tmp_path / "cut", keep_subjects=SUBJECTS // 2)
    with pytest.raises(PublishBlocked, match="raw/every subject of the last published export"):
        run_build(BuildRequest(data_dir=data_dir, export=tmp_path / "cut"))
    blocked = read_records(BuildPaths(data_dir, True))[0]
    assert blocked.status == "blocked"
    findings = build_findings(data_dir, blocked.build_id)
    vanished = findings.filter(pl.col("expectation_type") == SUBJECT_RULE)
    assert sorted(vanished.get_column("subject_id").to_list()) == sorted(gone)
    assert vanished.get_column("severity").unique().to_list() == ["error"]
    assert findings.filter(pl.col("severity") == "error").height == len(gone)  # nothing else blocks it
    assert findings.filter(pl.col("expectation_type") == RECORD_RULE).height == 0  # whole subjects only
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.adsl").fetchall()[0][0] == SUBJECTS  # old one stays

    rows = "".join(f"{s},,,,test subject removed,J. Smith (DM),2024-03-02\n" for s in gone)
    (data_dir / ACCEPTED_REMOVALS_FILE).write_text("subject_id,form,event,repeat_instance,reason,who,when\n" + rows,
                                                   encoding="utf-8")
    second = run_build(BuildRequest(data_dir=data_dir, export=tmp_path / "cut"))
    assert second.published is not None and second.errors == 0
    assert second.subjects == SUBJECTS - len(gone)
    with duckdb.connect(str(second.published), read_only=True) as con:
        history = con.sql("select subject_id, status from main.findings_history where expectation_type = ?",
                          params=[SUBJECT_RULE]).pl()
    assert sorted(history.get_column("subject_id").to_list()) == sorted(gone)
    assert history.get_column("status").unique().to_list() == ["closed"]  # accepted: closed, kept in the history
