"""Crash safety: a build SIGKILLed at any stage leaves the published warehouse intact, nothing half-written visible,
and the next build succeeds. Kill points are the WAREHOUSE_CRASH_AT test hook (warehouse.publish.crash_point)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from pathlib import Path

import duckdb
import pytest
from ops_support import PROJECT, build_info, cli, direct_build_code

from warehouse.extract import list_snapshots
from warehouse.build import BuildRequest, run_build
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
    result = run_build(BuildRequest(data_dir=ops_data_dir, force=True))
    assert not result.up_to_date
    assert build_info(ops_data_dir / "warehouse.duckdb")["build_id"] == result.build_id
    paths = BuildPaths(ops_data_dir, blinded=True)
    assert not list(paths.builds.glob(f"*{PARTIAL_SUFFIX}")) and not (ops_data_dir / SWAP_NAME).exists()
    assert all(r.status != "running" for r in read_records(paths))
    assert len(list(paths.builds.glob("*.duckdb"))) <= 5  # the last K (default 5) build files are kept


@pytest.mark.prefect
@pytest.mark.parametrize("stage", ["transform:adsl",
                                   pytest.param("extract", marks=pytest.mark.slow),
                                   pytest.param("stage", marks=pytest.mark.slow),
                                   pytest.param("publish", marks=pytest.mark.slow)])
def test_a_flow_run_killed_at_a_stage_leaves_the_warehouse_intact(prefect_harness, ops_data_dir, tmp_path, stage):
    """A flow run SIGKILLed at each stage, then a flow build on the same Prefect server that completes at once."""
    from prefect.settings import PREFECT_API_URL

    data_dir = tmp_path / "flow-kill"
    ignore = ["locks", ".build.lock"] + (["raw", "landing"] if stage == "extract" else [])  # extract must run
    shutil.copytree(ops_data_dir, data_dir, ignore=shutil.ignore_patterns(*ignore))
    before = warehouse_state(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), WAREHOUSE_CRASH_AT=stage,
               PREFECT_LOGGING_LEVEL="WARNING")
    code = f"from flows.build import build_warehouse\nbuild_warehouse(data_dir={str(data_dir)!r}, force=True)\n"
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert warehouse_state(data_dir) == before
    if stage.startswith("transform"):
        assert list((data_dir / "builds").glob(f"*{PARTIAL_SUFFIX}"))  # the partial build is there, hidden ...
    assert_nothing_half_written_is_visible(data_dir)
    # ... the next flow build on the same Prefect server discards it and publishes at once: the killed run's
    # concurrency slot is reclaimed, not waited for until its lease runs out
    from flows import progress
    from flows.build import build_warehouse, concurrency_name
    from prefect.client.orchestration import get_client

    said: list[str] = []
    collect = lambda stage, message: said.append(f"{stage}: {message}")  # noqa: E731
    progress.subscribe(collect)
    try:
        result = build_warehouse(data_dir=str(data_dir), force=True)
    finally:
        progress.unsubscribe(collect)
    assert any(line.startswith("lock: reclaiming the concurrency slot") for line in said), said
    assert build_info(data_dir / "warehouse.duckdb")["build_id"] == result.build_id
    assert not list((data_dir / "builds").glob(f"*{PARTIAL_SUFFIX}"))
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(concurrency_name("ADRESS", data_dir)).active_slots == 0


@pytest.mark.slow
def test_after_a_killed_cli_build_the_next_build_with_the_same_prefect_home_completes(ops_data_dir, tmp_path):
    """`warehouse build` killed mid-transform with a temporary Prefect server, then `warehouse build` again with
    the same Prefect home: it used to wait forever for the slot the dead run had leased."""
    data_dir = tmp_path / "cli-kill"
    shutil.copytree(ops_data_dir, data_dir, ignore=shutil.ignore_patterns("locks", ".build.lock"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), WAREHOUSE_LOCK_TIMEOUT="60")
    # output to a file, not a pipe: the killed build's temporary Prefect server outlives it (Prefect starts it as a
    # child process that nothing reaps) and would hold a pipe open
    with open(tmp_path / "killed.log", "w") as log:
        killed = subprocess.run([sys.executable, "-m", "warehouse.cli", "build", "--force", "--data-dir", str(data_dir)],
                                env={**env, "WAREHOUSE_CRASH_AT": "transform:adsl"}, cwd=PROJECT, stdout=log,
                                stderr=subprocess.STDOUT, timeout=600)
    stop_servers_of(tmp_path / "prefect-home")
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    again = cli("build", "--force", "--data-dir", str(data_dir), env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reclaiming the concurrency slot" in again.stderr
    assert not list((data_dir / "builds").glob(f"*{PARTIAL_SUFFIX}"))


def test_a_lock_killed_while_it_copies_leaves_no_lock_and_the_next_lock_succeeds(ops_data_dir, tmp_path):
    """`warehouse lock` SIGKILLed mid-copy (WAREHOUSE_CRASH_AT=lock, after the first chunk of the published file):
    the half-made copy stays in a hidden `.tmp-` folder, no lock is listed or queryable, the published warehouse
    is untouched, and the same label can be locked next."""
    import hashlib
    import json

    from warehouse.publish import list_locks

    data_dir = tmp_path / "lock-kill"  # the published file and the raw metadata a manifest reads, nothing else
    shutil.copytree(ops_data_dir, data_dir, ignore=shutil.ignore_patterns(
        "locks", "builds", "landing", "demo", "reports", "dev", "unblinded", ".build.lock"))
    paths = BuildPaths(data_dir, blinded=True)
    before = warehouse_state(data_dir)
    label, locks = "interim-1", data_dir / "locks"

    killed = cli("lock", "--label", label, "--data-dir", str(data_dir),
                 env={**os.environ, "WAREHOUSE_CRASH_AT": "lock"})
    assert killed.returncode == -signal.SIGKILL, (
        f"`warehouse lock` was not killed (rc {killed.returncode}): does lock_snapshot call crash_point('lock') in its "
        f"copy loop?\n{killed.stdout}{killed.stderr[-2000:]}")
    assert "Locked" not in killed.stdout
    hidden = list(locks.glob(f".tmp-{label}-*"))
    assert len(hidden) == 1 and not (hidden[0] / "manifest.json").exists()  # the half-made copy, hidden
    assert (hidden[0] / "warehouse.duckdb").stat().st_size <= paths.published.stat().st_size
    assert not (locks / label).exists() and list_locks(paths) == []
    listed = cli("locks", "--data-dir", str(data_dir))
    assert listed.returncode == 0 and listed.stdout.strip() == "no locked snapshots", listed.stdout
    missing = cli("query", "select 1", "--snapshot", label, "--data-dir", str(data_dir))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no locked snapshot")
    assert warehouse_state(data_dir) == before  # the published warehouse is intact and readable

    again = cli("lock", "--label", label, "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"Locked {label}:")
    assert not list(locks.glob(".tmp-*"))  # the dead lock's folder was cleaned up
    manifest = json.loads((locks / label / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["file"]["sha256"] == hashlib.sha256(paths.published.read_bytes()).hexdigest()
    assert manifest["build_id"] == before[0] and manifest["tables"]["main.adsl"]["rows"] == 32
    assert [m["label"] for m in list_locks(paths)] == [label]
    snapshot = cli("query", "select count(*) from adsl", "--snapshot", label, "--format", "csv",
                   "--data-dir", str(data_dir))
    assert snapshot.returncode == 0 and snapshot.stdout.splitlines()[1] == "32", snapshot.stderr


def stop_servers_of(prefect_home) -> int:
    """Stop the temporary Prefect servers a killed command left running for this Prefect home."""
    stopped = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server" in cmdline and f"PREFECT_HOME={prefect_home}".encode() in environ:
            os.kill(int(proc.name), signal.SIGKILL)
            stopped += 1
    return stopped
