"""Crash safety: a build SIGKILLed at any stage leaves the published warehouse intact, nothing half-written visible,
and the next build succeeds. Kill points are the WAREHOUSE_CRASH_AT test hook (warehouse.publish.crash_point)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import duckdb
import pytest
from ops_support import PROJECT, build_info, cli, direct_build_code

from warehouse.extract import list_snapshots
from warehouse.pipeline import BuildRequest, run_build
from warehouse.publish import PARTIAL_SUFFIX, SWAP_NAME, BuildPaths, read_records


def warehouse_state(data_dir):
    published = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        return (con.sql("select build_id from src.build_info").fetchall()[0][0],
                con.sql("select count(*), sum(hash(USUBJID, TRT01P, AGE)) from adsl").fetchall()[0])


def assert_nothing_half_written_is_visible(data_dir):
    paths = BuildPaths(data_dir, blinded=True)
    for build_file in paths.builds.glob("*.duckdb"):  # every visible build file is complete
        with duckdb.connect(str(build_file), read_only=True) as con:
            assert con.sql("select count(*) from adsl").fetchall()[0][0] == 32, build_file
    for snapshot in list_snapshots(data_dir):  # the raw zone lists complete snapshots only
        assert (data_dir / "raw" / snapshot["export_id"] / "_meta" / "forms.parquet").is_file()
    for folder in (data_dir / "raw").iterdir():  # a snapshot folder is either complete or hidden (`.tmp-...`)
        assert folder.name.startswith(".") or (folder / "_meta" / "export.json").is_file(), folder


@pytest.mark.parametrize("stage", ["extract", "stage", "transform", "transform:adsl", "publish"])
def test_a_build_killed_at_a_stage_leaves_the_published_warehouse_intact(ops_data_dir, stage):
    before = warehouse_state(ops_data_dir)
    env = {**os.environ, "WAREHOUSE_CRASH_AT": stage}
    proc = subprocess.run([sys.executable, "-c", direct_build_code(ops_data_dir)], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "BUILT" not in proc.stdout
    assert warehouse_state(ops_data_dir) == before  # same build, same rows, readable
    assert_nothing_half_written_is_visible(ops_data_dir)
    if stage == "publish":  # killed after the build was complete, just before the rename
        assert (ops_data_dir / SWAP_NAME).exists()
    if stage != "extract":  # a build record exists from `stage` on: status calls the dead build interrupted
        status = cli("status", "--data-dir", str(ops_data_dir))
        assert status.returncode == 0 and "interrupted" in status.stdout


def test_the_next_build_after_kills_succeeds_and_cleans_up(ops_data_dir):
    result = run_build(BuildRequest(data_dir=ops_data_dir))
    assert build_info(ops_data_dir / "warehouse.duckdb")["build_id"] == result.build_id
    paths = BuildPaths(ops_data_dir, blinded=True)
    assert not list(paths.builds.glob(f"*{PARTIAL_SUFFIX}")) and not (ops_data_dir / SWAP_NAME).exists()
    assert all(r.status != "running" for r in read_records(paths))
    assert len(list(paths.builds.glob("*.duckdb"))) <= 5  # the last K (default 5) build files are kept


@pytest.mark.prefect
def test_a_flow_run_killed_during_transform_leaves_the_warehouse_intact(prefect_harness, ops_data_dir, tmp_path):
    from prefect.settings import PREFECT_API_URL

    data_dir = tmp_path / "flow-kill"
    shutil.copytree(ops_data_dir, data_dir, ignore=shutil.ignore_patterns("locks", ".build.lock"))
    before = warehouse_state(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), WAREHOUSE_CRASH_AT="transform:adsl",
               PREFECT_LOGGING_LEVEL="WARNING")
    code = f"from flows.build import build_warehouse\nbuild_warehouse(data_dir={str(data_dir)!r})\n"
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert warehouse_state(data_dir) == before
    assert list((data_dir / "builds").glob(f"*{PARTIAL_SUFFIX}"))  # the partial build is there, hidden ...
    assert_nothing_half_written_is_visible(data_dir)
    result = run_build(BuildRequest(data_dir=data_dir))  # ... and the next build discards it and publishes
    assert build_info(data_dir / "warehouse.duckdb")["build_id"] == result.build_id
    assert not list((data_dir / "builds").glob(f"*{PARTIAL_SUFFIX}"))
