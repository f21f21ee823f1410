"""Issue 18 item 4: the published DuckDB file opens in DuckDB 1.4 and later.

DuckDB 2.x writes its own storage format by default, which 1.x cannot open ("version number 999, can read 64-67");
warehouse/db.py creates build files with storage version v1.4.0 (docs/deliverables.md). The quick test checks the
version of a file connect_build creates; the slow one reads the published demo file with DuckDB 1.4 from a
throwaway virtual environment (pip; skipped with the reason when pip cannot fetch it) and compares what it sees
(tables, comments, row counts, adsl's values) with DuckDB 2.x reading the same file."""

from __future__ import annotations

import json
import subprocess
import sys
import venv

import duckdb
import pytest

from warehouse.db import STORAGE_VERSION, connect_build, storage_version

OLD_DUCKDB = "duckdb==1.4.*"

# Run by both interpreters on the same file; prints one JSON object.
READ_WAREHOUSE = r"""
import json, sys
import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
db = con.execute("select current_database()").fetchall()[0][0]
tables = con.execute(
    "select schema_name, table_name, comment from duckdb_tables() where database_name = ? and not internal "
    "order by all", [db]).fetchall()
counts = {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchall()[0][0] for s, t, _ in tables}
comments = con.execute(
    "select table_name, column_name, comment from duckdb_columns() where database_name = ? and schema_name = 'main' "
    "and table_name in ('adsl', 'adtte') order by all", [db]).fetchall()
adsl = con.execute("select * from main.adsl order by USUBJID").fetchall()
print(json.dumps({"version": duckdb.__version__, "tables": tables, "counts": counts, "comments": comments,
                  "adsl": adsl}, default=str))
"""


def test_connect_build_creates_files_readable_by_duckdb_1_4(tmp_path):
    with connect_build(tmp_path / "b.duckdb") as con:
        con.execute("create table t as select 1 as x")
        con.execute("comment on table t is 'kept'")
        assert storage_version(con) == STORAGE_VERSION + "+" == "v1.4.0+"
    # a later connection (any: DuckDB's default is 'latest') keeps the version the file was created with
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        con.execute("create table u as select 2 as y")
        con.execute("checkpoint")
        assert storage_version(con) == "v1.4.0+"
    with connect_build(tmp_path / "b.duckdb", read_only=True) as con:
        assert con.execute("select comment from duckdb_tables() where table_name = 't'").fetchall() == [("kept",)]
    with connect_build() as con:  # in memory: no file, no version to speak of
        assert storage_version(con) == ""


@pytest.fixture(scope="module")
def old_duckdb(tmp_path_factory):
    """A Python with DuckDB 1.4 (a throwaway venv); skip when pip cannot install it."""
    env = tmp_path_factory.mktemp("duckdb-1.4") / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    try:
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", OLD_DUCKDB], capture_output=True,
                             text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip could not install {OLD_DUCKDB} within 5 minutes")
    if pip.returncode:
        pytest.skip(f"pip could not install {OLD_DUCKDB}: {pip.stderr.strip()[-300:]}")
    return python


def read_with(python, path) -> dict:
    run = subprocess.run([str(python), "-c", READ_WAREHOUSE, str(path)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.slow
def test_duckdb_1_4_reads_the_published_file(demo_build, old_duckdb):
    published = demo_build.published
    with duckdb.connect(str(published), read_only=True) as con:
        assert storage_version(con) == "v1.4.0+"
    old = read_with(old_duckdb, published)
    new = read_with(sys.executable, published)
    assert old["version"].startswith("1.4.") and new["version"].startswith("2.")
    assert old["tables"] == new["tables"] and len(old["tables"]) > 40  # src, staging, intermediate, main
    assert all(comment for _, _, comment in old["tables"])  # every table keeps its COMMENT
    assert old["counts"] == new["counts"] and old["counts"]["main.adsl"] == len(old["adsl"]) > 0
    assert old["comments"] == new["comments"]
    assert ["adsl", "NEBL", "Baseline norepinephrine dose as base (µg/kg/min, rate in effect at H0)"] in (
        old["comments"])
    assert old["adsl"] == new["adsl"]
