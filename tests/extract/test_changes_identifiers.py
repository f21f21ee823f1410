"""The change report never shows an identifier item's values: the field shows as changed, its values withheld."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from warehouse.extract import land_export
from warehouse.extract.changes import IDENTIFIER_WITHHELD, compare_snapshots, write_changes_table

from extract_samples import DATA_ROWS, write_redcap


def test_identifier_change_is_reported_without_its_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = list(DATA_ROWS)
    rows[0] = rows[0].replace(",AB,", ",INIA0030,")
    a = land_export(write_redcap(tmp_path / "a", rows=rows), data)
    rows[0] = rows[0].replace(",INIA0030,", ",INIB0030,").replace(",72.5,", ",73.1,")
    rows[4] = rows[4].replace(",EF,", ",,")  # an identifier emptied
    b = land_export(write_redcap(tmp_path / "b", rows=rows), data)

    df = compare_snapshots(data, a.export_id, b.export_id)
    changed = {(r["subject_id"], r["field"]): (r["old_value"], r["new_value"]) for r in df.iter_rows(named=True)}
    assert changed[("01-001", "initials")] == (IDENTIFIER_WITHHELD, IDENTIFIER_WITHHELD)
    assert changed[("02-001", "initials")] == (IDENTIFIER_WITHHELD, None)  # emptied: shown as empty
    assert changed[("01-001", "weight")] == ("72.5", "73.1")  # other fields as exported

    con = duckdb.connect()
    write_changes_table(con, data, b.export_id)
    table = con.sql("select * from main.export_changes").fetchall()
    assert ("01-001", "initials") in {(r[2], r[5]) for r in table}
    assert not [r for r in table if {"INIA0030", "INIB0030", "EF"} & {str(c) for c in r}]

    from warehouse.cli import app

    csv = tmp_path / "changes.csv"
    res = CliRunner().invoke(app, ["changes", "--data-dir", str(data), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    assert f"01-001 screening_arm_1  initials: ({IDENTIFIER_WITHHELD}) -> ({IDENTIFIER_WITHHELD})" in res.output
    assert f"02-001 screening_arm_1  initials: ({IDENTIFIER_WITHHELD}) -> (empty)" in res.output
    for text in (res.output, csv.read_text(encoding="utf-8")):
        assert "INIA0030" not in text and "INIB0030" not in text and ",EF," not in text and "'EF'" not in text
    assert IDENTIFIER_WITHHELD in csv.read_text(encoding="utf-8")
