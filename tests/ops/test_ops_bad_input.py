"""Issue 14 item 10: every command given a missing or unreadable file or folder says so in one `error:` line
naming it, exit 2 (no traceback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from readonly_support import make_data_dir
from typer.testing import CliRunner

from warehouse.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    folder = root / "a-folder"
    folder.mkdir()
    text = root / "not-a-database.duckdb"
    text.write_text("USUBJID,SEX\nDEMO-001,F\n", encoding="utf-8")
    bad = root / "bad-data"  # a data directory whose published warehouse (and build file) is not a DuckDB file
    (bad / "builds").mkdir(parents=True)
    (bad / "warehouse.duckdb").write_text("not duckdb\n", encoding="utf-8")
    (bad / "builds" / "b.duckdb").write_text("not duckdb\n", encoding="utf-8")
    return {"missing": root / "missing.duckdb", "missing_dir": root / "no-such-dir", "folder": folder,
            "text": text, "bad_data": bad, "good_data": make_data_dir(root / "good", lock=None),
            "landing_dir": root / "extract-data"}


# (command line with {placeholders}, the path the message must name)
CASES = {
    "compile --database missing": (["compile", "--database", "{missing}"], "missing"),
    "compile --database folder": (["compile", "--database", "{folder}"], "folder"),
    "compile --database not duckdb": (["compile", "--database", "{text}"], "text"),
    "compile --data-dir missing": (["compile", "--data-dir", "{missing_dir}"], "missing_dir"),
    "compile --data-dir a file": (["compile", "--data-dir", "{text}"], "text"),
    "compile build not duckdb": (["compile", "--data-dir", "{bad_data}"], "bad_data"),
    "lineage --data-dir missing": (["lineage", "adsl.SEX", "--data-dir", "{missing_dir}"], "missing_dir"),
    "lineage --data-dir a file": (["lineage", "adsl.SEX", "--data-dir", "{text}"], "text"),
    "lineage published not duckdb": (["lineage", "adsl.SEX", "--data-dir", "{bad_data}"], "bad_data"),
    "docs --data-dir missing": (["docs", "--data-dir", "{missing_dir}"], "missing_dir"),
    "docs --data-dir a file": (["docs", "--data-dir", "{text}"], "text"),
    "docs published not duckdb": (["docs", "--data-dir", "{bad_data}"], "bad_data"),
    "docs --out a folder": (["docs", "--data-dir", "{good_data}", "--out", "{folder}"], "folder"),
    "run --data-dir missing": (["run", "--data-dir", "{missing_dir}"], "missing_dir"),
    "run --data-dir a file": (["run", "--data-dir", "{text}"], "text"),
    "query --data-dir missing": (["query", "select 1", "--data-dir", "{missing_dir}"], "missing_dir"),
    "query --data-dir a file": (["query", "select 1", "--data-dir", "{text}"], "text"),
    "query published not duckdb": (["query", "select 1", "--data-dir", "{bad_data}"], "bad_data"),
    "query --snapshot missing": (["query", "select 1", "--data-dir", "{good_data}", "--snapshot", "nope"], "nope"),
    "shell --data-dir missing": (["shell", "--data-dir", "{missing_dir}"], "missing_dir"),
    "shell published not duckdb": (["shell", "--data-dir", "{bad_data}"], "bad_data"),
    "lock --data-dir missing": (["lock", "--label", "x", "--data-dir", "{missing_dir}"], "missing_dir"),
    "lock published not duckdb": (["lock", "--label", "x", "--data-dir", "{bad_data}"], "bad_data"),
    "status --data-dir missing": (["status", "--data-dir", "{missing_dir}"], "missing_dir"),
    "status --data-dir a file": (["status", "--data-dir", "{text}"], "text"),
    "verify --data-dir missing": (["verify", "--data-dir", "{missing_dir}"], "missing_dir"),
    "build --export missing": (["build", "--export", "{missing}", "--data-dir", "{missing_dir}"], "missing"),
    "build --study missing": (["build", "--study", "{missing_dir}/study.toml", "--data-dir", "{missing_dir}"],
                              "missing_dir"),
    "locks --data-dir missing": (["locks", "--data-dir", "{missing_dir}"], "missing_dir"),
    "locks --data-dir a file": (["locks", "--data-dir", "{text}"], "text"),
    "changes --data-dir missing": (["changes", "--data-dir", "{missing_dir}"], "missing_dir"),
    "changes --data-dir a file": (["changes", "--data-dir", "{text}"], "text"),
    "extract --export missing": (["extract", "--export", "{missing_dir}", "--data-dir", "{landing_dir}"],
                                 "missing_dir"),
    "extract --export not an export": (["extract", "--export", "{text}", "--data-dir", "{landing_dir}"], "text"),
    "extract --data-dir a file": (["extract", "--export", "{folder}", "--data-dir", "{text}"], "text"),
    "export --warehouse missing": (["export", "--warehouse", "{missing}", "--out", "{folder}"], "missing"),
    "export --warehouse folder": (["export", "--warehouse", "{folder}", "--out", "{folder}"], "folder"),
    "export --warehouse not duckdb": (["export", "--warehouse", "{text}", "--out", "{folder}"], "text"),
    "export --data-dir missing": (["export", "--data-dir", "{missing_dir}", "--out", "{folder}"], "missing_dir"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_or_folder_is_one_line_exit_2(places, case):
    args, named = CASES[case]
    argv = [a.format(**places) for a in args]
    before = sorted(p.name for p in places["folder"].iterdir())
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (case, result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, (case, result.stderr)
    assert (places[named].name if named in places else named) in result.stderr, (case, result.stderr)
    assert "Traceback" not in result.output
    assert sorted(p.name for p in places["folder"].iterdir()) == before  # nothing written where it should not be


def test_unreadable_files_are_one_line_exit_2(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: a file without read permission is still readable by root")
    unreadable = tmp_path / "warehouse.duckdb"
    unreadable.write_text("x", encoding="utf-8")
    unreadable.chmod(0)
    for argv in (["compile", "--database", str(unreadable)], ["export", "--warehouse", str(unreadable)],
                 ["query", "select 1", "--data-dir", str(tmp_path)]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2 and result.stderr.startswith("error:") and "permission" in result.stderr
