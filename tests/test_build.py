"""End to end: demo export -> raw -> staging -> SQL models -> marts -> validation -> published DuckDB."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.build import BuildRequest, run_build


def query(path: Path, sql: str):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_unblinded_demo_build_has_every_subject_and_the_arms(demo_build):
    assert demo_build.published is not None and demo_build.published.name == "warehouse.duckdb"
    assert demo_build.published.parent.name == "unblinded"
    assert query(demo_build.published, "select count(*), count(distinct USUBJID) from adsl") == [(32, 32)]
    # arm counts must agree with the restricted randomisation list the build read
    rand_file = demo_build.published.parent / "restricted" / "randomisation.csv"
    with rand_file.open(newline="") as fh:
        arm_of_kit = {row["kit_no"]: row["arm_label"] for row in csv.DictReader(fh)}
    kits = query(demo_build.published, "select KITNO, TRT01P from adsl")
    assert all(arm_of_kit[kit] == arm for kit, arm in kits)
    counts = dict(query(demo_build.published, "select TRT01P, count(*) from adsl group by 1"))
    assert set(counts) == {"Dexmedetomidine", "Placebo"}
    assert sum(counts.values()) == 32


def test_marts_and_findings_are_in_the_warehouse(demo_build):
    tables = {r[0] for r in query(demo_build.published, "select table_name from information_schema.tables")}
    assert {"adsl", "findings", "findings_history", "validation_results"} <= tables
    assert demo_build.errors == 0
    assert demo_build.report.is_file()


def test_adsl_columns_are_documented(demo_build):
    undocumented = query(
        demo_build.published,
        "select column_name from duckdb_columns() where table_name = 'adsl' and (comment is null or comment = '')",
    )
    assert undocumented == []


def test_every_table_and_column_of_the_warehouse_is_described(demo_build):
    where = ("database_name = current_database() and not internal "
             "and schema_name in ('src', 'staging', 'intermediate', 'main') and (comment is null or comment = '')")
    assert query(demo_build.published, f"select schema_name, table_name from duckdb_tables() where {where}") == []
    assert query(demo_build.published,
                 f"select schema_name, table_name, column_name from duckdb_columns() where {where}") == []
    # a staged eCRF item is described by its label (and units) from the export's metadata, and models inherit it
    labels = dict(query(demo_build.published, "select table_name || '.' || column_name, comment from duckdb_columns() "
                                              "where column_name = 'lactate' and schema_name in ('src', 'staging')"))
    assert labels["labs.lactate"] == "Lactate (mmol/L)" and labels["stg_labs.lactate"]


@pytest.mark.slow
def test_blinded_build_masks_treatment(tmp_path):
    result = run_build(BuildRequest(data_dir=tmp_path))
    assert result.published == tmp_path / "warehouse.duckdb"
    assert query(result.published, "select distinct TRT01P from adsl") == [("Blinded",)]
    # every arm variable as TRT01P is: the label, and no arm number
    assert query(result.published, "select distinct ARM, ARMCD, ACTARM, ACTARMCD, TRT01A, TRT01PN, TRT01AN "
                                   "from adsl") == [("Blinded", "Blinded", "Blinded", "Blinded", "Blinded", None, None)]
    assert query(result.published, "select distinct TRTP, TRTA from adeff") == [("Blinded", "Blinded")]
    assert query(result.published, "select count(*) from src.randomisation_list") == [(0,)]
    assert not (tmp_path / "unblinded").exists()


@pytest.mark.slow
def test_a_rebuild_is_skipped_only_while_export_code_and_study_are_unchanged(tmp_path):
    from warehouse.publish import BuildPaths, read_records
    from warehouse.study import load_study

    first = run_build(BuildRequest(data_dir=tmp_path))
    again = run_build(BuildRequest(data_dir=tmp_path))
    assert again.up_to_date and not first.up_to_date
    assert again.build_id == first.build_id and again.model_runs == []
    assert (again.subjects, again.errors, again.warnings) == (first.subjects, first.errors, first.warnings)
    assert sorted(again.tables) == sorted(first.tables)
    assert len(read_records(BuildPaths(tmp_path, True))) == 1

    forced = run_build(BuildRequest(data_dir=tmp_path, force=True))
    assert not forced.up_to_date and forced.build_id != first.build_id

    # a changed study parameter changes what the marts hold: the next build is a real one
    study_file = tmp_path / "study.toml"
    source = load_study().source.read_text(encoding="utf-8")
    changed = source.replace("teae_window_hours = 24", "teae_window_hours = 48")
    assert changed != source
    study_file.write_text(changed, encoding="utf-8")
    other = run_build(BuildRequest(data_dir=tmp_path, study=load_study(study_file)))
    assert not other.up_to_date and other.build_id not in (first.build_id, forced.build_id)
    records = read_records(BuildPaths(tmp_path, True))
    assert len(records) == 3 and len({r.fingerprint for r in records}) == 2


def test_cli_build_of_a_missing_folder_says_so_in_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [sys.executable, "-m", "warehouse.cli", "build", "--export", str(missing), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and str(missing) in proc.stderr


def test_cli_build_of_an_empty_folder_says_so_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "warehouse.cli", "build", "--export", str(empty), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "empty" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "d" / "warehouse.duckdb").exists()


@pytest.mark.prefect
def test_flow_builds_and_publishes(prefect_harness, tmp_path):
    from flows.build import build_warehouse

    result = build_warehouse(data_dir=str(tmp_path))
    assert query(result.published, "select count(*) from adsl") == [(32,)]
    assert result.errors == 0
    # one task per SQL model ran: every model's table is there
    assert {r.name for r in result.model_runs} >= {"adsl", "stg_randomisation", "int_vasopressor_segments"}


def test_a_failed_model_stops_only_its_descendants_and_the_build_names_them(demo_build, tmp_path):
    """The model loop the flow and the direct build share (transform.steps.run_models), on a copy of a real build."""
    import shutil

    from warehouse.transform.models import ModelError
    from warehouse.transform.steps import plan_models, run_models, transform_model

    build_file = tmp_path / "copy.duckdb"
    shutil.copyfile(demo_build.published, build_file)
    build_file.chmod(0o644)
    models = plan_models(build_file)

    def run_one(path, model):
        if model.name == "int_pe_response":
            raise RuntimeError("injected failure")
        return transform_model(path, model)

    result = run_models(build_file, models, run_one)
    assert result.failed == {"int_pe_response": "injected failure"}
    assert set(result.skipped) == {"adeff"} and result.skipped["adeff"] == "int_pe_response"
    ran = {r.name for r in result.runs}
    assert {"adsl", "adae", "adtte", "hemodynamics", "int_vfd"} <= ran and "adeff" not in ran
    assert len(ran) == len(models) - 2
    with pytest.raises(ModelError, match="int_pe_response: injected failure.*not run because of them: adeff"):
        result.raise_for_failures()
