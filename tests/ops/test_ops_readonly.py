"""The read-only session (issue 15): `warehouse query`, `warehouse shell` and `warehouse.connect` read the published
warehouse and nothing else; and (issue 14) query output limits, the SQL shell, `serve` without a Prefect server."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import duckdb
import pytest
from ops_support import cli
from readonly_support import ARMS, make_data_dir, publish_build, tree_state
from typer.testing import CliRunner

import warehouse
from warehouse.cli import app
from warehouse.commands.ops import statement_complete
from warehouse.publish import BuildPaths
from warehouse.readonly import BadInput, check_statement, open_read_only

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("readonly"))


def query(data_dir: Path, sql: str, *args: str):
    return runner.invoke(app, ["query", sql, "--data-dir", str(data_dir), *args])


def assert_one_error_line(result, *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_query_reads_the_published_warehouse(data_dir):
    result = query(data_dir, "select TRT01P, count(*) as n from adsl group by 1", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"TRT01P": "Blinded", "n": 150}]


# -- every attack of issue 15, refused, and nothing written or revealed --------------------------------------------

def attacks(data_dir: Path, out: Path) -> dict[str, str]:
    build = next((data_dir / "builds").glob("*.duckdb"), data_dir / "builds" / "b.duckdb")
    return {
        "read a file": "select * from read_csv('/etc/passwd', header=false)",
        "copy to a file": f"copy (select * from adsl) to '{out / 'x.csv'}'",
        "export the database": f"export database '{out / 'dump'}'",
        "attach the unblinded warehouse": f"attach '{data_dir / 'unblinded' / 'warehouse.duckdb'}' as u; "
                                          "select TRT01P, count(*) from u.main.adsl group by 1",
        "attach alone": f"attach '{data_dir / 'unblinded' / 'warehouse.duckdb'}' as u",
        "install an extension": "install httpfs",
        "load an extension": "load httpfs",
        "write the build file": f"attach '{build}' as w (READ_WRITE); update w.main.adsl set SEX = 'Z'",
        "turn external access back on": "set enable_external_access = true",
        "reset a setting": "reset enable_external_access",
        "switch database": "use memory",
        "create": "create table main.scribble as select 1 as x",
        "insert": "insert into adsl values ('X', 'Z', 'Z')",
        "update": "update adsl set SEX = 'Z'",
        "delete": "delete from adsl",
        "pragma that sets": "pragma threads = 1",
        "call that writes": "call checkpoint()",
        "checkpoint": "checkpoint",
        "import a database": f"import database '{out}'",
        "explain analyze of a copy": f"explain analyze copy (select 1) to '{out / 'e.csv'}'",
        "two reads": "select 1; select 2",
    }


ATTACKS = list(attacks(Path("d"), Path("o")))


@pytest.mark.parametrize("attack", ATTACKS)
def test_query_refuses_what_is_not_a_read(data_dir, tmp_path, attack):
    out = tmp_path / "out"
    out.mkdir()
    before = tree_state(data_dir)
    result = query(data_dir, attacks(data_dir, out)[attack])
    assert_one_error_line(result, "refused")
    assert result.stdout == ""  # no row of /etc/passwd, no arm
    assert not any(arm in result.stdout + result.stderr for arm in ARMS)
    assert list(out.iterdir()) == []  # nothing written
    assert tree_state(data_dir) == before  # every file of the data directory the same bytes, same inode
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), count(*) filter (SEX = 'Z') from adsl").fetchone() == (150, 0)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a not in ("two reads", "attach the unblinded warehouse",
                                                                   "write the build file")])
def test_the_engine_refuses_them_without_the_gate(data_dir, tmp_path, attack):
    """The second layer: DuckDB's own settings refuse each statement even when the gate is bypassed."""
    out = tmp_path / "out"
    out.mkdir()
    before = tree_state(data_dir)
    sql = attacks(data_dir, out)[attack]
    with open_read_only(data_dir / "warehouse.duckdb", blinded=True) as con:
        with pytest.raises(duckdb.Error):
            rel = con.sql(sql)
            if rel is not None:
                rel.fetchall()
            if attack in ("switch database", "pragma that sets"):  # harmless when they run: prove what holds
                con.execute("create table memory.main.t as select 1")
                con.sql("select * from read_csv('/etc/passwd')").fetchall()
            if attack in ("call that writes", "checkpoint"):  # no-ops on a read-only attach: nothing to write
                assert tree_state(data_dir) == before
                raise duckdb.InvalidInputException("nothing written")
        assert con.execute("select current_setting('enable_external_access')").fetchone() == (False,)
        assert con.execute("select current_setting('lock_configuration')").fetchone() == (True,)
    assert list(out.iterdir()) == []
    assert tree_state(data_dir) == before


def test_engine_cannot_attach_the_arms_or_write_the_build_file(data_dir):
    build = next((data_dir / "builds").glob("*.duckdb"))
    before = tree_state(data_dir)
    with open_read_only(data_dir / "warehouse.duckdb") as con:
        for sql in (f"attach '{data_dir / 'unblinded' / 'warehouse.duckdb'}' as u",
                    f"attach '{build}' as w (READ_WRITE)", f"attach '{build}' as w"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        attached = {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}
        assert "warehouse" in attached and not attached & {"u", "w"}
    assert tree_state(data_dir) == before


def test_the_gate_lets_reads_through(data_dir):
    for sql in ("select 1", "with a as (select 1 as x) select * from a", "from adsl", "describe adsl",
                "show tables", "summarize adsl", "pragma table_info('adsl')", "call pragma_version()",
                "explain select * from adsl", "pivot adsl on SEX using count(*)"):
        assert check_statement(sql) == sql
        result = query(data_dir, sql, "--format", "csv")
        assert result.exit_code == 0, (sql, result.stderr)


# -- where a session may open a file from -----------------------------------------------------------------------

@pytest.mark.parametrize("label", ["../unblinded", "..", "/etc", "interim-1/../../unblinded", "nope", ".tmp-x"])
def test_snapshot_labels_are_locks_of_this_data_directory(data_dir, label):
    result = query(data_dir, "select TRT01P, count(*) from adsl group by 1", "--snapshot", label)
    assert_one_error_line(result)
    assert result.stdout == "" and not any(arm in result.stderr for arm in ARMS)


def test_a_snapshot_label_opens_its_lock(data_dir):
    result = query(data_dir, "select count(*) as n from adsl", "--snapshot", "interim-1", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["n", "150"]


def test_a_link_in_the_locks_folder_cannot_reach_the_unblinded_warehouse(tmp_path):
    data_dir = make_data_dir(tmp_path, lock=None)
    (data_dir / "locks").mkdir()
    (data_dir / "locks" / "evil").symlink_to(data_dir / "unblinded")
    result = query(data_dir, "select TRT01P from adsl", "--snapshot", "evil")
    assert_one_error_line(result)
    assert not any(arm in result.stdout for arm in ARMS)


def test_a_blinded_session_never_opens_the_unblinded_warehouse(tmp_path):
    data_dir = make_data_dir(tmp_path, lock=None)
    # the unblinded root passed as the data directory: its build says unblinded
    result = query(data_dir / "unblinded", "select TRT01P, count(*) from adsl group by 1")
    assert_one_error_line(result, "unblinded")
    assert not any(arm in result.stdout for arm in ARMS)
    # a published file that is a link into DIR/unblinded
    (data_dir / "warehouse.duckdb").unlink()
    (data_dir / "warehouse.duckdb").symlink_to(data_dir / "unblinded" / "warehouse.duckdb")
    result = query(data_dir, "select TRT01P, count(*) from adsl group by 1")
    assert_one_error_line(result, "unblinded")
    assert not any(arm in result.stdout for arm in ARMS)
    with pytest.raises(BadInput):
        warehouse.connect(data_dir)
    # --unblinded is the way to the arms
    result = query(data_dir, "select distinct TRT01P from adsl order by 1", "--unblinded", "--format", "csv")
    assert result.exit_code == 0 and result.stdout.splitlines()[1:] == sorted(ARMS)


# -- item 8 of issue 15: a new connection sees the new build ------------------------------------------------------

def test_connect_sees_the_build_published_after_it_opened(tmp_path):
    data_dir = make_data_dir(tmp_path, subjects=150, lock=None)
    published = data_dir / "warehouse.duckdb"
    held = duckdb.connect(str(published), read_only=True)  # a notebook's plain connection, kept open
    first = warehouse.connect(data_dir)
    assert first.execute("select count(*) from adsl").fetchone() == (150,)
    publish_build(BuildPaths(data_dir, blinded=True), "20250102T000000000000Z-e2", subjects=7)
    again = warehouse.connect(data_dir)
    assert again.execute("select count(*) from adsl").fetchone() == (7,)
    assert again.execute("select build_id from src.build_info").fetchone() == ("20250102T000000000000Z-e2",)
    assert first.execute("select count(*) from adsl").fetchone() == (150,)  # an open connection keeps its build
    for con in (first, again, held):
        con.close()
    third = warehouse.connect(str(data_dir))
    assert third.execute("select count(*) from adsl").fetchone() == (7,)
    with pytest.raises(duckdb.Error):
        third.sql("select * from read_csv('/etc/passwd')").fetchall()
    third.close()


# -- issue 14 item 8: csv and json are not cut at 100 rows --------------------------------------------------------

def test_csv_and_json_give_every_row_the_table_says_what_it_cut(data_dir):
    csv_out = query(data_dir, "select USUBJID from adsl order by 1", "--format", "csv")
    assert csv_out.exit_code == 0 and len(csv_out.stdout.splitlines()) == 1 + 150
    json_out = query(data_dir, "select USUBJID from adsl order by 1", "--format", "json")
    assert json_out.exit_code == 0 and len(json.loads(json_out.stdout)) == 150
    limited = query(data_dir, "select USUBJID from adsl order by 1", "--format", "csv", "--limit", "5")
    assert len(limited.stdout.splitlines()) == 6 and "--limit 5" in limited.stderr
    table = query(data_dir, "select USUBJID from adsl order by 1")
    assert table.exit_code == 0
    assert "DEMO-099" in table.stdout and "DEMO-100" not in table.stdout
    assert "100 row(s), more not shown" in table.stderr
    everything = query(data_dir, "select USUBJID from adsl order by 1", "--limit", "0")
    assert "DEMO-149" in everything.stdout and "150 row(s)" in everything.stderr


# -- issue 14 item 9: a SQL prompt ---------------------------------------------------------------------------------

def test_shell_runs_piped_sql(data_dir, tmp_path):
    # a `duckdb` on the PATH must not be used (it would bypass the gate): this one leaves a mark if run
    fake = tmp_path / "bin" / "duckdb"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    session = ("select count(*) as subjects\n  from adsl\n  where SEX = 'F';\n"
               ".tables\n"
               "select ';' as semi; select 2 as two;\n"
               "-- a comment\n"
               "select 'last' as tail")
    proc = cli("shell", "--data-dir", str(data_dir), "--format", "csv", input=session, env=env)
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("\n")
    assert blocks[:2] == ["subjects", "50"]
    assert "main,adsl,150" in proc.stdout and "semi\n;\n" in proc.stdout and "two\n2\n" in proc.stdout
    assert proc.stdout.rstrip().endswith("tail\nlast")
    assert not (tmp_path / "ran").exists()


def test_shell_stops_at_the_first_error_in_one_line(data_dir, tmp_path):
    before = tree_state(data_dir)
    session = (f"select 1 as one;\ncopy adsl to '{tmp_path / 'x.csv'}';\nselect 3 as three;\n")
    proc = cli("shell", "--data-dir", str(data_dir), "--format", "csv", input=session)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "COPY" in errors[0] and "Traceback" not in proc.stderr
    assert "one\n1" in proc.stdout and "three" not in proc.stdout
    assert not (tmp_path / "x.csv").exists() and tree_state(data_dir) == before


def test_shell_given_python_says_so_in_one_line(data_dir):
    result = runner.invoke(app, ["shell", "--data-dir", str(data_dir)], input="q('select 1')\n")
    assert_one_error_line(result, "syntax error")
    assert "Traceback" not in result.output


def test_shell_quits_on_dot_quit(data_dir):
    result = runner.invoke(app, ["shell", "--data-dir", str(data_dir), "--format", "csv"],
                           input="select 1 as a;\n.quit\nselect 2 as b;\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "a\n1\n"


def test_statement_complete():
    assert statement_complete("select 1;")
    assert statement_complete("select 1;  -- done")
    assert statement_complete("select 1\n from t\n;")
    assert not statement_complete("select ';'")
    assert not statement_complete("select 'it''s;'")
    assert not statement_complete("select 1 /* ; */")
    assert not statement_complete('select 1 as ";"')
    assert not statement_complete("select 1 -- ;")


# -- issue 14 item 3: serve needs a Prefect server ------------------------------------------------------------------

def test_serve_without_a_prefect_server_refuses_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile that could name a server
    proc = cli("serve", "--data-dir", str(tmp_path / "data"), env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert "PREFECT_API_URL" in proc.stderr and "prefect server start" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_unreadable_file_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop root from reading")
    data_dir = make_data_dir(tmp_path, lock=None)
    published = data_dir / "warehouse.duckdb"
    mode = published.stat().st_mode
    os.chmod(published, 0)
    try:
        result = query(data_dir, "select 1")
        assert_one_error_line(result, "permission")
    finally:
        os.chmod(published, stat.S_IMODE(mode))
