"""The change report between two snapshots: library, warehouse table and `warehouse changes`."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from warehouse.extract import land_export
from warehouse.extract.changes import (CHANGES_SCHEMA, SnapshotNotFound, change_summary, compare_snapshots,
                                       write_changes_table)

from extract_samples import DATA_HEADER, DATA_ROWS, DICTIONARY, write_redcap

EXPECTED = [
    # form, change, subject_id, event, repeat_instance, field, old_value, new_value
    ("demographics", "added", "03-001", "screening_arm_1", None, None, None, None),
    ("demographics", "changed", "01-001", "screening_arm_1", None, "weight", "72.5", "73.1"),
    ("demographics", "changed", "01-002", "screening_arm_1", None, "comorbidities___1", "0", "1"),
    ("hemodynamics", "removed", "02-001", "icu_arm_1", "1", None, None, None),
]


@pytest.fixture
def two_snapshots(tmp_path: Path) -> tuple[Path, str, str]:
    """Snapshot A (the sample export) and B: a record added, one removed, a decimal and a checkbox changed;
    B also holds an identical duplicate of a row (one record, not a change)."""
    data = tmp_path / "data"
    a = land_export(write_redcap(tmp_path / "a"), data)
    rows = list(DATA_ROWS)
    rows[0] = rows[0].replace(",72.5,", ",73.1,")  # weight, a decimal
    rows[3] = rows[3].replace(",2,0,1,80,", ",2,1,1,80,")  # comorbidities___1 0 -> 1, a checkbox
    del rows[5]  # 02-001 hemodynamics instance 1 removed
    rows += ["03-001,screening_arm_1,,,site_03,GH,2,0,0,,0,,", rows[1]]  # a record added; a duplicate
    b = land_export(write_redcap(tmp_path / "b", rows=rows), data)
    return data, a.export_id, b.export_id


def test_compare_snapshots_exact_rows(two_snapshots) -> None:
    data, a, b = two_snapshots
    df = compare_snapshots(data, a, b)
    assert df.schema == pl.Schema(CHANGES_SCHEMA)
    assert df.rows() == EXPECTED
    back = compare_snapshots(data, b, a[:6])  # the other way round; a unique prefix is enough
    assert sorted(back.select("change", "subject_id", "field", "old_value", "new_value").rows(), key=str) == sorted(
        [("removed", "03-001", None, None, None), ("changed", "01-001", "weight", "73.1", "72.5"),
         ("changed", "01-002", "comorbidities___1", "1", "0"), ("added", "02-001", None, None, None)], key=str)
    assert compare_snapshots(data, a, a).height == 0
    summary = change_summary(df, ["demographics", "hemodynamics", "other"])
    assert summary.rows() == [("demographics", 1, 0, 2, 2), ("hemodynamics", 0, 1, 0, 0), ("other", 0, 0, 0, 0)]


def test_unknown_snapshot(two_snapshots) -> None:
    data, a, _ = two_snapshots
    with pytest.raises(SnapshotNotFound, match="no snapshot 'feedbeef'"):
        compare_snapshots(data, a, "feedbeef")


def test_forms_and_fields_in_one_snapshot_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = land_export(write_redcap(tmp_path / "a"), data)
    dictionary = DICTIONARY + 'hd_hr,hemodynamics,,text,HR,,bpm,integer,20,250,,,,,,,,\n'
    header = DATA_HEADER.replace("hd_map,", "hd_map,hd_hr,")
    rows = []
    for r in DATA_ROWS:  # hd_hr (new) between hd_map and hemodynamics_complete, empty
        head, hd_map, complete = r.rsplit(",", 2)
        rows.append(f"{head},{hd_map},,{complete}")
    rows[1] = rows[1].replace(",65,,2", ",65,88,2")
    b = land_export(write_redcap(tmp_path / "b", dictionary=dictionary, header=header, rows=rows), data)
    df = compare_snapshots(data, a.export_id, b.export_id)
    assert df.rows() == [("hemodynamics", "changed", "01-001", "icu_arm_1", "1", "hd_hr", None, "88")]


def test_write_changes_table(two_snapshots) -> None:
    data, a, b = two_snapshots
    con = duckdb.connect()
    assert write_changes_table(con, data, b) == 4
    got = con.sql("select * exclude (from_export_id, to_export_id) from main.export_changes").fetchall()
    assert got == EXPECTED
    assert con.sql("select distinct from_export_id, to_export_id from main.export_changes").fetchall() == [(a, b)]
    assert write_changes_table(con, data, a) == 0  # the first snapshot: nothing before it
    cols = [d[0] for d in con.sql("select * from main.export_changes").description]
    assert cols == list(CHANGES_SCHEMA) + ["from_export_id", "to_export_id"]
    assert con.sql("select comment from duckdb_tables() where table_name = 'export_changes'").fetchall()[0][0]


def test_cli_changes(two_snapshots, tmp_path: Path) -> None:
    from warehouse.cli import app

    data, a, b = two_snapshots
    runner = CliRunner()
    res = runner.invoke(app, ["changes", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert a in out and b in out
    assert "demographics" in out and "hemodynamics" in out
    lines = [ln.split() for ln in out.splitlines()]
    assert ["demographics", "1", "0", "2", "2"] in lines and ["hemodynamics", "0", "1", "0", "0"] in lines
    assert "demographics  01-001 screening_arm_1  weight: '72.5' -> '73.1'" in out
    assert "demographics  01-002 screening_arm_1  comorbidities___1: '0' -> '1'" in out
    assert "demographics  03-001 screening_arm_1  record added" in out
    assert "hemodynamics  02-001 icu_arm_1 #1  record removed" in out

    csv = tmp_path / "changes.csv"
    res = runner.invoke(app, ["changes", "--data-dir", str(data), "--from", b, "--to", a, "--limit", "1",
                              "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    assert "... and 3 more change(s)" in res.output
    assert pl.read_csv(csv, infer_schema=False).height == 4


def test_cli_unknown_export_id(two_snapshots) -> None:
    from warehouse.cli import app

    data, a, _ = two_snapshots
    res = CliRunner().invoke(app, ["changes", "--data-dir", str(data), "--from", a, "--to", "0123abcd"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [res.output.strip()]
    assert "no snapshot '0123abcd'" in res.output
    res = CliRunner().invoke(app, ["changes", "--data-dir", str(data / "nothing")])
    assert res.exit_code == 2 and "need two snapshots" in res.output
