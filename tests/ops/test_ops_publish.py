"""Publishing for analysts: atomic swap under a reader, last K builds, locked snapshots, read-only query and shell."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from ops_support import PROJECT, build_info, cli

from warehouse.build import BuildRequest, run_build
from warehouse.publish import BuildPaths, lock_snapshot, prune_builds, read_records


def test_prune_keeps_the_last_k_the_published_and_the_locked(tmp_path):
    paths = BuildPaths(tmp_path, blinded=True)
    paths.builds.mkdir(parents=True)
    ids = [f"2024010{i}T000000000000Z-abcdef01" for i in range(1, 9)]  # oldest first
    for build_id in ids:
        paths.build_file(build_id).write_bytes(build_id.encode())
    os.link(paths.build_file(ids[0]), paths.published)  # the published build is the oldest
    lock_dir = tmp_path / "locks" / "interim-1"
    lock_dir.mkdir(parents=True)
    (lock_dir / "manifest.json").write_text(json.dumps({"label": "interim-1", "build_id": ids[1]}))

    removed = prune_builds(paths, keep=3)

    left = sorted(p.name.removesuffix(".duckdb") for p in paths.builds.glob("*.duckdb"))
    assert left == sorted([ids[0], ids[1], *ids[-3:]])
    assert {p.name.removesuffix(".duckdb") for p in removed} == set(ids[2:5])
    assert paths.published.read_bytes() == ids[0].encode()


def test_rebuilding_the_same_export_gives_the_same_table_hashes(ops_data_dir):
    paths = BuildPaths(ops_data_dir, blinded=True)
    first = lock_snapshot(paths, "hash-a")
    run_build(BuildRequest(data_dir=ops_data_dir, force=True))
    proc = cli("lock", "--label", "hash-b", "--data-dir", str(ops_data_dir), "--note", "rebuild check")
    assert proc.returncode == 0, proc.stderr
    a = json.loads((first / "manifest.json").read_text())
    b = json.loads((ops_data_dir / "locks" / "hash-b" / "manifest.json").read_text())

    assert a["build_id"] != b["build_id"]
    assert a["exports"] == b["exports"] and a["exports"][0]["files"]
    assert a["file"]["sha256"] != b["file"]["sha256"]  # the files differ (build ids, times) ...
    assert {t: v["sha256"] for t, v in a["tables"].items()} == {t: v["sha256"] for t, v in b["tables"].items()}
    assert a["tables"]["main.adsl"]["rows"] == 32
    assert a["tables"]["src.build_info"]["excluded_columns"] == ["build_id", "built_at"]
    assert {"duckdb", "prefect", "polars", "python"} <= set(a["packages"])
    assert a["code_version"] and b["note"] == "rebuild check"
    # a lock is read-only, complete, and never overwritten
    for f in (first / "warehouse.duckdb", first / "manifest.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o444
    with duckdb.connect(str(first / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from adsl").fetchall() == [(32,)]
    again = cli("lock", "--label", "hash-a", "--data-dir", str(ops_data_dir))
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert not list((ops_data_dir / "locks").glob(".tmp-*"))
    listed = cli("locks", "--data-dir", str(ops_data_dir))
    assert "hash-a" in listed.stdout and "hash-b" in listed.stdout


READER = textwrap.dedent("""
    import sys, duckdb
    path = sys.argv[1]
    con = duckdb.connect(path, read_only=True)
    def state(c):
        return (c.sql("select build_id from src.build_info").fetchall()[0][0],
                c.sql("select count(*), sum(hash(USUBJID)) from adsl").fetchall()[0])
    print("OLD", *state(con), flush=True)
    sys.stdin.readline()                       # the test publishes a new build meanwhile
    print("SAME", *state(con), flush=True)     # the open connection still reads the old build, whole
    con.close()
    fresh = duckdb.connect(path, read_only=True)
    print("NEW", *state(fresh), flush=True)    # the next connection sees the new build
""")


def test_a_reader_keeps_its_view_during_a_publish_and_the_next_connection_sees_the_new_build(ops_data_dir):
    published = BuildPaths(ops_data_dir, blinded=True).published
    before = build_info(published)["build_id"]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
    try:
        old = reader.stdout.readline().split()
        assert old[:2] == ["OLD", before], reader.stderr.read() if reader.poll() is not None else old
        result = run_build(BuildRequest(data_dir=ops_data_dir, force=True))  # publishes while the reader reads
        assert result.published == published and result.build_id != before
        assert build_info(published)["build_id"] == result.build_id
        out, err = reader.communicate("go\n", timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}
    assert lines["SAME"] == " ".join(old[1:])
    assert lines["NEW"].split()[0] == result.build_id


def test_query_prints_a_table_and_refuses_to_write(ops_data_dir):
    proc = cli("query", "select count(*) as n, min(TRT01P) as arm from adsl", "--data-dir", str(ops_data_dir))
    assert proc.returncode == 0, proc.stderr
    assert "32" in proc.stdout and "Blinded" in proc.stdout
    csv_out = cli("query", "select USUBJID from adsl order by 1 limit 2", "--format", "csv",
                  "--data-dir", str(ops_data_dir))
    assert csv_out.stdout.splitlines()[0] == "USUBJID" and len(csv_out.stdout.splitlines()) == 3
    write = cli("query", "create table main.scribble as select 1 as x", "--data-dir", str(ops_data_dir))
    assert write.returncode == 2
    assert write.stderr.startswith("error:") and write.stderr.count("\n") == 1
    with duckdb.connect(str(ops_data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert not con.sql("select * from information_schema.tables where table_name = 'scribble'").fetchall()


def test_shell_is_a_read_only_sql_session(ops_data_dir):
    session = "select count(*) as subjects\n  from adsl;\ncreate table main.scribble (x int);\n"
    proc = cli("shell", "--data-dir", str(ops_data_dir), input=session)
    assert proc.returncode == 2, proc.stderr  # the second statement is refused, in one line
    assert "32" in proc.stdout
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "create" in error.lower() and "Traceback" not in proc.stderr
    import duckdb

    with duckdb.connect(str(ops_data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert not con.execute("select * from duckdb_tables() where table_name = 'scribble'").fetchall()


def test_status_lists_recent_builds(ops_data_dir):
    proc = cli("status", "--data-dir", str(ops_data_dir))
    assert proc.returncode == 0, proc.stderr
    records = read_records(BuildPaths(ops_data_dir, blinded=True))
    assert records and records[0].build_id in proc.stdout
    published_line = next(line for line in proc.stdout.splitlines() if line.startswith("* "))
    assert build_info(ops_data_dir / "warehouse.duckdb")["build_id"] in published_line
    assert "published" in published_line and records[0].export_id in published_line


@pytest.mark.parametrize("args", [("query", "select 1"), ("shell",)])
def test_analyst_commands_without_a_warehouse_say_so_in_one_line(tmp_path, args):
    proc = cli(*args, "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "warehouse build" in proc.stderr
