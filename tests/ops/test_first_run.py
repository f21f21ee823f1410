"""What a new user met on a first run (issue 14): a build that must not fail because the temporary Prefect server is
slow to start, commands with nothing to do that answer without any server, a failed build that leaves no partial
file, and top-level reports that always show the published build."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_support import cli

from warehouse.publish import BuildPaths, read_records

UNREACHABLE_API = "http://127.0.0.1:9/api"  # nothing listens on port 9: any Prefect call fails at once


def no_server_env(tmp_path: Path) -> dict:
    """An environment where talking to Prefect fails at once: a command that succeeds in it started no server and
    called no API (a temporary server is never started when PREFECT_API_URL is set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=UNREACHABLE_API)
    return env


def test_up_to_date_and_only_new_answer_before_any_prefect_server(ops_data_dir, tmp_path):
    from warehouse.build import BuildRequest, run_build

    run_build(BuildRequest(data_dir=ops_data_dir))  # the published build is up to date with this code
    before = len(read_records(BuildPaths(ops_data_dir, True)))
    env = no_server_env(tmp_path)

    again = cli("build", "--data-dir", str(ops_data_dir), env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.lstrip().startswith("Up to date:"), again.stdout
    assert "Prefect" not in again.stderr and "Traceback" not in again.stderr

    only_new = cli("build", "--only-new", "--data-dir", str(ops_data_dir), env=env)
    assert only_new.returncode == 0, only_new.stderr
    assert only_new.stdout.startswith("No new export:"), only_new.stdout
    assert len(read_records(BuildPaths(ops_data_dir, True))) == before  # neither started a build


def test_only_new_with_no_export_yet_answers_before_any_server(tmp_path):
    (tmp_path / "incoming").mkdir()
    proc = cli("build", "--only-new", "--export", str(tmp_path / "incoming"), "--data-dir", str(tmp_path / "d"),
               env=no_server_env(tmp_path))
    # a scheduled run (--only-new) that finds nothing yet has nothing to do: not an error, no server
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No new export: nothing at"), proc.stdout
    assert not (tmp_path / "d" / "builds").exists()


def test_a_folder_that_is_not_an_export_is_refused_before_any_server(tmp_path):
    folder = tmp_path / "not-an-export"
    folder.mkdir()
    (folder / "notes.csv").write_text("hello,world\n1,2\n", encoding="utf-8")
    data_dir = tmp_path / "data"
    proc = cli("build", "--export", str(folder), "--data-dir", str(data_dir), env=no_server_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ExportError:"), proc.stderr
    assert "notes.csv" in errors[0] and "no export found" in errors[0]
    quarantined = list((data_dir / "quarantine").iterdir())
    assert len(quarantined) == 1 and (quarantined[0] / "notes.csv").is_file()
    assert "no export found" in (quarantined[0] / "REASON.txt").read_text(encoding="utf-8")
    assert not (data_dir / "warehouse.duckdb").exists()


def test_a_temporary_server_that_does_not_start_in_time_says_what_to_do(ops_data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")  # no server starts in 1 s here
    proc = cli("build", "--force", "--data-dir", str(ops_data_dir), env=env, timeout=300)
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "did not start within 1 s" in errors[0]
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in errors[0] and "PREFECT_API_URL" in errors[0]
    assert "Traceback" not in proc.stderr


def test_the_command_line_gives_the_temporary_server_a_start_up_allowance_for_a_busy_machine():
    code = ("import os; from warehouse.cli import configure_prefect; configure_prefect(False); "
            "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s; print(s.value())")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(float(out.stdout.strip())) >= 120  # Prefect's own default is 20 s; 37 s was measured at load 4-6
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "45"  # the user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(float(out.stdout.strip())) == 45


@pytest.mark.slow
def test_the_readme_build_succeeds_while_both_cores_are_busy(tmp_path):
    """The README's first command (`warehouse build`, fresh Prefect home, temporary server) while two processes
    keep both cores busy: the load under which Prefect's 20 s start-up allowance failed first builds."""
    burn = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end: pass\n"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
        started = time.monotonic()
        proc = cli("build", "--data-dir", str(tmp_path / "data"), env=env, timeout=900)
        seconds = time.monotonic() - started
    finally:
        for b in burners:
            b.kill()
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}"
    assert "Warehouse published:" in proc.stdout
    print(f"README build under load: {seconds:.1f} s")  # shown with -s; not asserted (benchmarks measure)


def test_a_failed_build_leaves_no_partial_file_and_says_why(tmp_path, monkeypatch):
    """A build that fails (not killed) removes its partial build file at once, as the next build would after a
    crash, and its record says failed with the reason (here: DuckDB refused to work in 1 MB of memory)."""
    from warehouse.build import BuildRequest, run_build

    monkeypatch.setenv("WAREHOUSE_DUCKDB_MEMORY", "1MB")
    with pytest.raises(Exception) as failure:
        run_build(BuildRequest(data_dir=tmp_path))
    paths = BuildPaths(tmp_path, True)
    assert not list(paths.builds.glob("*.building*")), list(paths.builds.iterdir())
    records = read_records(paths)
    assert [r.status for r in records] == ["failed"]
    assert type(failure.value).__name__ in records[0].message
    assert not paths.published.exists()


def injected_export(tmp_path: Path) -> Path:
    from warehouse.demo import generate_demo
    from warehouse.build import DEMO_SEED

    return generate_demo(tmp_path / "injected", subjects=32, seed=DEMO_SEED, inject_rate=0.05,
                         formats=("redcap",)).redcap_dir


@pytest.mark.slow
def test_top_level_reports_are_the_published_builds_and_a_blocked_build_says_so(tmp_path):
    from warehouse.build import BuildRequest, PublishBlocked, run_build

    data_dir = tmp_path / "data"
    published = run_build(BuildRequest(data_dir=data_dir))
    reports = BuildPaths(data_dir, True).reports
    top_analysis = (reports / "analysis.html").read_text(encoding="utf-8")
    top_validation = (reports / "validation.html").read_text(encoding="utf-8")
    assert published.build_id in top_validation and "not published" not in top_analysis

    with pytest.raises(PublishBlocked):
        run_build(BuildRequest(data_dir=data_dir, export=injected_export(tmp_path)))
    blocked = next(r for r in read_records(BuildPaths(data_dir, True)) if r.status == "blocked")
    # the top level still shows the published build, byte for byte
    assert (reports / "analysis.html").read_text(encoding="utf-8") == top_analysis
    assert (reports / "validation.html").read_text(encoding="utf-8") == top_validation
    # the blocked build's own pages say so first thing
    for name in ("analysis.html", "validation.html"):
        page = (reports / blocked.build_id / name).read_text(encoding="utf-8")
        body = page.split("<body>", 1)[1]
        assert body.lstrip().startswith("<div class='blocked'") and "blocked: not published" in body[:300]
    assert blocked.errors > 0


def test_a_build_that_fails_to_compile_names_the_first_error_and_status_shows_them_all(tmp_path, monkeypatch):
    """The one-line error names the first compile error (file:line:column); `warehouse status` lists every one."""
    import shutil

    import warehouse.resources
    from warehouse.build import BuildRequest, run_build
    from warehouse.resources import sql_dir

    sql = tmp_path / "sql"
    shutil.copytree(sql_dir(), sql)
    for name in ("marts/adtte.sql", "marts/adae.sql"):
        path = sql / name
        path.write_text(path.read_text(encoding="utf-8").replace("USUBJID", "USUBJIDX", 1), encoding="utf-8")
    monkeypatch.setattr(warehouse.resources, "sql_dir", lambda: sql)  # a project whose two marts are wrong
    with pytest.raises(Exception) as failure:
        run_build(BuildRequest(data_dir=tmp_path / "data"))
    first = str(failure.value).splitlines()[0]
    assert "usubjidx" in first.lower() and ".sql:" in first and "(and 1 more)" in first, first
    proc = cli("status", "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    assert "failed" in proc.stdout
    assert "adtte.sql" in proc.stdout and "adae.sql" in proc.stdout, proc.stdout
