"""Accidents and hostile inputs around an export (issue 15): links in an export, a killed demo generation, killed
landings, and errors that quote too much."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ops_support import PROJECT, cli, read_randomisation

from warehouse.extract import ExportError, land_export


def small_redcap_export(tmp_path: Path) -> Path:
    from warehouse.demo import generate_demo

    return generate_demo(tmp_path / "gen", subjects=4, seed=7, formats=("redcap",)).redcap_dir


def test_a_symbolic_link_in_an_export_is_refused_without_reading_its_target(tmp_path):
    export = small_redcap_export(tmp_path)
    (export / "notes.csv").symlink_to("/etc/passwd")
    data_dir = tmp_path / "data"
    with pytest.raises(ExportError) as refused:
        land_export(export, data_dir)
    message = str(refused.value)
    assert message.startswith("notes.csv:") and "symbolic link" in message
    assert "root" not in message and "passwd" not in message  # nothing of the target is quoted
    # nothing landed; the quarantine keeps the reason and no copy of the link's target
    assert not (data_dir / "landing").exists() or not any((data_dir / "landing").iterdir())
    [quarantined] = list((data_dir / "quarantine").iterdir())
    assert not (quarantined / "notes.csv").exists()
    assert "symbolic link" in (quarantined / "REASON.txt").read_text(encoding="utf-8")
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert b"root:x:0:0" not in path.read_bytes(), path


def test_a_symlinked_records_file_is_refused_in_one_line_by_the_cli(tmp_path):
    export = small_redcap_export(tmp_path)
    records = next(export.glob("*_DATA_*.csv"))
    records.unlink()
    records.symlink_to("/etc/passwd")
    proc = cli("build", "--export", str(export), "--data-dir", str(tmp_path / "data"),
               env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "symbolic link" in line and "root:" not in line


def test_an_export_error_with_a_huge_detail_stays_a_short_line():
    error = ExportError("records.csv", "header: " + ",".join(f"c{i}" for i in range(100_000)), location=1)
    assert len(str(error)) < 800 and "more characters" in str(error)
    assert "\n" not in str(error)


def test_a_killed_landing_leaves_temporaries_that_the_next_landing_removes(tmp_path):
    export = small_redcap_export(tmp_path)
    data_dir = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = [data_dir / "landing" / f".tmp-0123456789abcdef-{dead.pid}-abc123",
             data_dir / "raw" / f".tmp-0123456789abcdef-{dead.pid}-abc123"]
    alive = data_dir / "raw" / f".tmp-0123456789abcdef-{os.getpid()}-def456"  # a landing still running
    for folder in [*stale, alive]:
        folder.mkdir(parents=True)
        (folder / "part.parquet").write_bytes(b"half")
    land_export(export, data_dir)
    assert not any(p.exists() for p in stale)
    assert alive.exists()


@pytest.mark.slow
def test_a_demo_generation_killed_midway_leaves_no_randomisation_list_in_the_blinded_directory(tmp_path):
    data_dir = tmp_path / "data"
    code = ("from pathlib import Path\nfrom warehouse.build import BuildRequest, run_build\n"
            f"run_build(BuildRequest(data_dir=Path({str(data_dir)!r})))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WAREHOUSE_CRASH_AT": "demo"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    restricted = list(data_dir.rglob("randomisation*.csv"))
    assert restricted, "the kill came after the list was written: the test must see it somewhere"
    assert all("unblinded" in p.relative_to(data_dir).parts for p in restricted), restricted
    kit_arms = read_randomisation(restricted[0])
    labels = {label for _, label in kit_arms.values()}
    for path in data_dir.rglob("*"):
        if path.is_file() and "unblinded" not in path.relative_to(data_dir).parts:
            text = path.read_bytes().decode("utf-8", errors="replace")
            assert not any(label in text for label in labels), path
    # the next build removes what the killed generation left, and leaves no list outside unblinded/
    from warehouse.build import BuildRequest, run_build

    run_build(BuildRequest(data_dir=data_dir))
    assert not list((data_dir / "unblinded").glob(".demo-*"))
    assert all("unblinded" in p.relative_to(data_dir).parts for p in data_dir.rglob("randomisation*.csv"))


def test_a_published_file_changed_after_publish_is_reported_not_trusted(ops_data_dir, tmp_path):
    """Tamper evidence: the build file's hash is recorded when it is completed; `status` and `verify` check the
    published file against it, and a build does not take a changed file for up to date."""
    import shutil

    import duckdb

    from warehouse.build import BuildRequest, run_build
    from warehouse.publish import BuildPaths, verify_published

    data_dir = tmp_path / "tamper"
    shutil.copytree(ops_data_dir, data_dir, ignore=shutil.ignore_patterns("locks", ".build.lock"))
    run_build(BuildRequest(data_dir=data_dir, force=True))
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    ok = cli("verify", "--data-dir", str(data_dir), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "CHANGED" not in ok.stdout and "as recorded" in ok.stdout

    published = data_dir / "warehouse.duckdb"
    os.chmod(published, 0o644)  # what root (or a careless owner) can do whatever the mode says
    with duckdb.connect(str(published)) as con:
        con.execute("update main.adsl set SEX = 'Z'")
    assert not verify_published(BuildPaths(data_dir, True)).ok

    status = cli("status", "--data-dir", str(data_dir), env=env)
    assert status.returncode == 1 and "CHANGED after build" in status.stderr, status.stderr
    verify = cli("verify", "--data-dir", str(data_dir), env=env)
    assert verify.returncode == 1 and "CHANGED" in verify.stdout, verify.stdout
    # a build does not call a changed published file up to date: it rebuilds and publishes a trusted one
    rebuilt = run_build(BuildRequest(data_dir=data_dir))
    assert not rebuilt.up_to_date
    assert verify_published(BuildPaths(data_dir, True)).ok
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select count(*) from main.adsl where SEX = 'Z'").fetchall()[0][0] == 0
