"""Duplicate record keys: rows identical in every value land (all kept, noted in export.json); rows that
differ in any value are an ExportError naming both places, and the export is quarantined."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from warehouse.extract import ExportError, land_export, read_raw_form
from warehouse.extract.rawzone import read_export_json

from extract_samples import DATA_ROWS, odm_form, write_odm, write_redcap

KEYS = ["subject_id", "event", "repeat_instance"]


def rows_with_key(data: Path, export_id: str, form: str, key: tuple) -> pl.DataFrame:
    df = read_raw_form(data, export_id, form)
    return df.filter(pl.struct(KEYS) == pl.struct([pl.lit(k, dtype=pl.String).alias(c) for c, k in zip(KEYS, key)]))


def fails_and_quarantines(export: Path, data: Path) -> ExportError:
    with pytest.raises(ExportError) as info:
        land_export(export, data)
    assert not (data / "raw").exists() or not [p for p in (data / "raw").iterdir() if not p.name.startswith(".")]
    (q,) = (data / "quarantine").iterdir()
    assert (q / "REASON.txt").read_text().splitlines()[0] == str(info.value)
    return info.value


# ---------------------------------------------------------------- REDCap

def test_redcap_identical_duplicate_of_a_repeating_instance_lands(tmp_path: Path) -> None:
    rows = DATA_ROWS + [DATA_ROWS[2]]  # 01-001 hemodynamics instance 2, again: records 3 and 7, lines 4 and 8
    data = tmp_path / "data"
    res = land_export(write_redcap(tmp_path / "x", rows=rows), data)
    assert res.new and res.forms["hemodynamics"] == (4, 2)
    dup = rows_with_key(data, res.export_id, "hemodynamics", ("01-001", "icu_arm_1", "2"))
    assert dup.get_column("_source_row").to_list() == ["3", "7"]
    assert dup.get_column("hd_map").to_list() == ["70", "70"]
    notes = read_export_json(data, res.export_id)["notes"]
    (note,) = [n for n in notes if "identical duplicate record" in n]
    assert "record '01-001'" in note and "instance '2'" in note and "lines 4 and 8" in note


def test_redcap_identical_duplicate_of_an_event_row_lands(tmp_path: Path) -> None:
    # a multi-line value before the duplicates: lines are counted as physical lines, not records
    rows = [DATA_ROWS[0].replace(",AB,", ',"A\nB",')] + DATA_ROWS[1:] + [DATA_ROWS[3]]
    data = tmp_path / "data"
    res = land_export(write_redcap(tmp_path / "x", rows=rows), data)
    dup = rows_with_key(data, res.export_id, "demographics", ("01-002", "screening_arm_1", None))
    assert dup.height == 2 and dup.get_column("_source_row").to_list() == ["4", "7"]
    assert dup.get_column("initials").to_list() == ["C, D", "C, D"]
    (note,) = [n for n in read_export_json(data, res.export_id)["notes"] if "identical duplicate" in n]
    assert "lines 6 and 9" in note


@pytest.mark.parametrize("changed, field", [
    ("01-001,icu_arm_1,hemodynamics,2,site_01,,,,,,,71,2", "hd_map"),  # a value
    ("01-001,icu_arm_1,hemodynamics,2,site_01,,,,,,,70,", "hemodynamics_complete"),  # a value made empty
    ("01-001,icu_arm_1,hemodynamics,2,site_02,,,,,,,70,2", "site_id"),  # another data access group
])
def test_redcap_duplicate_with_different_values_is_an_error(tmp_path: Path, changed: str, field: str) -> None:
    data = tmp_path / "data"
    err = fails_and_quarantines(write_redcap(tmp_path / "x", rows=DATA_ROWS + [changed]), data)
    assert "duplicate record key" in err.reason and "lines 4 and 8" in err.reason
    assert "different values" in err.reason and err.field == field and err.location == 8


def test_redcap_duplicate_event_row_differing_in_a_checkbox_is_an_error(tmp_path: Path) -> None:
    changed = DATA_ROWS[0].replace(",1,0,72.5,", ",1,1,72.5,")  # comorbidities___2 0 -> 1
    err = fails_and_quarantines(write_redcap(tmp_path / "x", rows=DATA_ROWS + [changed]), tmp_path / "data")
    assert err.field == "comorbidities___2" and "lines 2 and 8" in err.reason
    assert "'0' on line 2 and '1' on line 8" in err.reason


# ---------------------------------------------------------------- ODM

def test_odm_identical_duplicate_lands_with_distinct_paths(tmp_path: Path) -> None:
    x = write_odm(tmp_path / "odm.xml", [
        ("01-001", [odm_form("1", hd_map="65", hd_hr="90"), odm_form("2", hd_map="70"), odm_form("2", hd_map="70")]),
        ("01-002", [odm_form("1", hd_map="60")]),
    ])
    data = tmp_path / "data"
    res = land_export(x, data)
    assert res.forms["hemodynamics"] == (4, 2)
    dup = rows_with_key(data, res.export_id, "hemodynamics", ("01-001", "icu", "2"))
    paths = dup.get_column("_source_path").to_list()
    assert len(paths) == 2 and paths[0] != paths[1]
    assert paths[1].endswith("/FormData[@FormOID='hemodynamics'][@FormRepeatKey='2'][2]")
    (note,) = [n for n in read_export_json(data, res.export_id)["notes"] if "identical duplicate record" in n]
    assert "subject '01-001'" in note and paths[0] in note and paths[1] in note


def test_odm_duplicate_with_different_values_is_an_error(tmp_path: Path) -> None:
    x = write_odm(tmp_path / "odm.xml", [
        ("01-001", [odm_form("2", hd_map="70", hd_hr="88"), odm_form("2", hd_map="70")]),
    ])
    err = fails_and_quarantines(x, tmp_path / "data")
    assert "duplicate record key" in err.reason and "different values" in err.reason and err.field == "hd_hr"
    assert str(err.location).endswith("/FormData[@FormOID='hemodynamics'][@FormRepeatKey='2'][2]")
    assert "[@FormRepeatKey='2'] and" in err.reason  # the first one's place


def test_odm_subject_given_twice(tmp_path: Path) -> None:
    same = [("01-001", [odm_form("1", hd_map="65")]), ("01-002", [odm_form("1", hd_map="60")]),
            ("01-001", [odm_form("1", hd_map="65"), odm_form("2", hd_map="61")])]
    data = tmp_path / "data"
    res = land_export(write_odm(tmp_path / "a" / "odm.xml", same), data)
    dup = rows_with_key(data, res.export_id, "hemodynamics", ("01-001", "icu", "1"))
    assert dup.height == 2 and dup.get_column("_source_path").str.contains(r"SubjectKey='01-001'\]\[2\]").to_list() \
        == [False, True]
    assert any("identical duplicate record" in n for n in read_export_json(data, res.export_id)["notes"])
    differ = same[:2] + [("01-001", [odm_form("1", hd_map="66")])]
    err = fails_and_quarantines(write_odm(tmp_path / "b" / "odm.xml", differ), tmp_path / "data2")
    assert err.field == "hd_map" and "'65'" in err.reason and "'66'" in err.reason


# ---------------------------------------------------------------- the demo study's injected duplicates

@pytest.mark.parametrize("fmt", ["redcap", "odm"])
def test_demo_injected_duplicates_land_twice(tmp_path: Path, fmt: str) -> None:
    demo = pytest.importorskip("warehouse.demo")
    out = demo.generate_demo(tmp_path / "demo", subjects=32, seed=7, inject_rate=0.1, formats=(fmt,))
    dups = [p for p in out.problems if p["kind"] == "duplicate_record"]
    assert dups, "the demo injects duplicate records at this rate"
    data = tmp_path / "data"
    res = land_export(out.redcap_dir if fmt == "redcap" else out.odm_file, data)
    assert res.new
    for form in {p["form"] for p in dups}:
        df = read_raw_form(data, res.export_id, form)
        counts = df.group_by(KEYS).len()
        want = pl.DataFrame([{"subject_id": p["subject"], "event": p["event"], "repeat_instance": str(p["instance"])}
                             for p in dups if p["form"] == form])
        got = want.join(counts, on=KEYS, how="left")
        assert got.get_column("len").to_list() == [2] * want.height, form
        # and no other key of the table is duplicated
        assert counts.filter(pl.col("len") > 1).height == want.unique().height
    notes = read_export_json(data, res.export_id)["notes"]
    assert len([n for n in notes if "identical duplicate record (" in n]) == min(len(dups), 50)
