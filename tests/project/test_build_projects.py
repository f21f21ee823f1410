"""Any study as a project folder (issue 17): for each real multi-form export, `warehouse init` writes a project and
a build of it publishes (or blocks on findings), never fails: one subject-mart row per record id, every staging
column described, lineage to the raw item. And the command line does the same with `--project`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.build import BuildRequest, PublishBlocked, run_build
from warehouse.project import init_project
from warehouse.publish import BuildPaths, read_records
from warehouse.resources import PROJECT_ENV, use_project

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]
EXPORTS = ["redcap/clinical-trial-1", "redcap/longitudinal", "redcap/repeating-instruments",
           "redcap/arm-single-longitudinal", "redcap/vignette-repeating", "redcap/checkboxes-1",
           "odm/openclinica_juno_demo_fullextract.xml", "odm/redcap_pycap_test_simple_project.xml",
           "odm/redcap_pycap_test_long_project.xml"]


@pytest.fixture
def restore_project():
    before = os.environ.get(PROJECT_ENV)
    yield
    if before is None:
        os.environ.pop(PROJECT_ENV, None)
    else:
        os.environ[PROJECT_ENV] = before


def raw_subjects(data_dir: Path, export_id: str) -> set[str]:
    files = [f for f in (data_dir / "raw" / export_id).glob("*.parquet")]
    return set(pl.concat([pl.read_parquet(f, columns=["subject_id"]) for f in files]).get_column("subject_id"))


@pytest.mark.parametrize("name", EXPORTS)
def test_init_then_build_publishes_a_described_warehouse(shared_fixtures, tmp_path, name, restore_project):
    export = shared_fixtures / name
    init_project(export, tmp_path / "project")
    use_project(tmp_path / "project")
    data_dir = tmp_path / "data"
    try:
        result = run_build(BuildRequest(data_dir=data_dir, export=export))
        build_file, export_id = result.published, result.export_id
    except PublishBlocked:  # findings that block are a data manager's business, not a failure of the build
        record = read_records(BuildPaths(data_dir, True))[0]
        build_file, export_id = BuildPaths(data_dir, True).build_file(record.build_id), record.export_id
    assert build_file.exists()
    with duckdb.connect(str(build_file), read_only=True) as con:
        subjects = [r[0] for r in con.sql("select subject_id from main.subjects").fetchall()]
        assert len(subjects) == len(set(subjects)) == len(raw_subjects(data_dir, export_id))
        undescribed = con.sql("select table_name, column_name from duckdb_columns() where schema_name = 'staging' "
                              "and (comment is null or comment = '')").fetchall()
        assert undescribed == []
        lineage = con.sql("select column_name, raw_form, raw_item from main.lineage where table_name = 'subjects' "
                          "and column_name = 'subject_id'").fetchall()
        assert any(form and item for _, form, item in lineage), lineage  # the chain reaches the raw item
        catalog = {r[0] for r in con.sql("select table_name from main.catalog").fetchall()}
        assert {"subjects", "findings"} <= catalog


def test_the_command_line_inits_and_builds_a_project(shared_fixtures, tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    export = shared_fixtures / "redcap" / "clinical-trial-1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != PROJECT_ENV}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600)

    init = cli("init", "--export", str(export), "--out", str(tmp_path / "ct1"))
    assert init.returncode == 0, init.stderr
    build = cli("build", "--project", str(tmp_path / "ct1"), "--export", str(export))
    assert build.returncode == 0, build.stderr[-2000:]
    published = tmp_path / "ct1" / "data" / "warehouse.duckdb"  # the project's own data directory
    assert f"Warehouse published: {published}" in build.stdout
    query = cli("query", "select count(*) from subjects", "--project", str(tmp_path / "ct1"), "--format", "csv")
    assert query.returncode == 0 and query.stdout.splitlines()[1] == "500", query.stdout + query.stderr
    not_a_project = cli("build", "--project", str(tmp_path), "--export", str(export))
    assert not_a_project.returncode == 2 and "no study.toml" in not_a_project.stderr


def test_a_suite_file_gx_refuses_fails_the_build_by_name(shared_fixtures, tmp_path, restore_project):
    """The build's GX worker judges the project's suite files while validation runs (issue 19: GX is not imported
    in the build's process): a file GX refuses fails the build with its name and GX's reason, before any finding is
    recorded, and nothing is published."""
    import json

    export = shared_fixtures / "redcap" / "clinical-trial-1"
    project = tmp_path / "project"
    init_project(export, project)
    bad = project / "expectations" / "staging" / "zz_lovely.json"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text(json.dumps({"name": "zz_lovely", "meta": {"table": "*"}, "expectations": [
        {"type": "expect_column_values_to_be_lovely", "kwargs": {"column": "subject_id"},
         "meta": {"severity": "error", "rule": "subjects are lovely"}}]}))
    use_project(project)
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError) as err:
        run_build(BuildRequest(data_dir=data_dir, export=export))
    assert "zz_lovely.json" in str(err.value) and "expect_column_values_to_be_lovely" in str(err.value)
    assert not (data_dir / "warehouse.duckdb").exists()
    record = read_records(BuildPaths(data_dir, True))[0]
    assert record.status == "failed"
    from warehouse.validate import gx_process

    assert gx_process.current_worker() is None  # the failed build's worker is gone
