"""Landing, snapshots and the read API, on a small REDCap export built in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl

from warehouse.extract import land_export, list_snapshots, read_raw_form, read_raw_meta
from warehouse.extract.errors import ExportError
from warehouse.extract.land import _file_key, copy_landing, export_id_of, file_hash, file_sha256

from extract_samples import write_redcap

KEYS = ["subject_id", "event", "repeat_instance", "site_id"]
PROV = ["_export_id", "_source_file", "_source_row", "_source_path", "_file_sha256"]


def test_land_splits_forms_with_keys_and_provenance(redcap_export: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = land_export(redcap_export, data)
    assert res.new and res.format == "redcap"
    assert res.raw_dir == data / "raw" / res.export_id
    assert res.forms == {"demographics": (3, 3), "hemodynamics": (3, 2)}
    demo = read_raw_form(data, res.export_id, "demographics")
    assert demo.columns[:4] == KEYS and demo.columns[-5:] == PROV
    assert all(dt == pl.String for dt in demo.dtypes)
    assert demo.columns[4:-5] == ["record_id", "initials", "sex", "comorbidities___1", "comorbidities___2",
                                   "weight", "demographics_complete"]
    row = demo.filter(pl.col("subject_id") == "01-002").row(0, named=True)
    assert row["initials"] == "C, D" and row["event"] == "screening_arm_1" and row["site_id"] == "site_01"
    assert row["repeat_instance"] is None and row["_source_row"] == "4" and row["_source_path"] is None
    assert row["_file_sha256"] == file_sha256(redcap_export / "STUDY_DATA_2024-01-01.csv")
    assert demo.filter(pl.col("subject_id") == "02-001")["weight"].item() is None  # empty -> null
    hd = read_raw_form(data, res.export_id, "hemodynamics")
    assert hd.select("subject_id", "event", "repeat_instance", "hd_map").rows() == [
        ("01-001", "icu_arm_1", "1", "65"), ("01-001", "icu_arm_1", "2", "70"), ("02-001", "icu_arm_1", "1", "58")]
    assert "record_id" not in hd.columns  # the record id lives in the first form (as in REDCap's ODM)


def test_metadata_tables(redcap_export: Path, tmp_path: Path) -> None:
    res = land_export(redcap_export, tmp_path / "data")
    items = read_raw_meta(tmp_path / "data", res.export_id, "items")
    by = {r["item"]: r for r in items.iter_rows(named=True)}
    assert by["comorbidities___2"]["choice_label"] == "diabetes"
    assert by["comorbidities___2"]["variable"] == "comorbidities"
    assert by["initials"]["identifier"] is True and by["sex"]["required"] is True
    assert (by["weight"]["validation"], by["weight"]["min"], by["weight"]["max"], by["weight"]["units"]) == \
        ("number", "30", "250", "kg")
    assert by["hemodynamics_complete"]["form"] == "hemodynamics"
    choices = read_raw_meta(tmp_path / "data", res.export_id, "choices")
    assert choices.filter(pl.col("item") == "sex").select("code", "label").rows() == [("1", "Male"), ("2", "Female")]
    forms = read_raw_meta(tmp_path / "data", res.export_id, "forms")
    rep = dict(forms.select("form", "repeating").rows())
    assert rep == {"demographics": False, "hemodynamics": True}
    events = read_raw_meta(tmp_path / "data", res.export_id, "events")
    assert events.select("event", "label").rows() == [("screening_arm_1", "Screening"), ("icu_arm_1", "ICU stay")]


def test_same_content_lands_once_even_renamed(redcap_export: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = land_export(redcap_export, data)
    mtime = (first.raw_dir / "demographics.parquet").stat().st_mtime_ns
    renamed = tmp_path / "renamed"
    shutil.copytree(redcap_export, renamed)
    (renamed / "STUDY_DATA_2024-01-01.csv").rename(renamed / "other_name.csv")
    again = land_export(renamed, data)
    assert again.export_id == first.export_id and again.new is False
    assert again.forms == first.forms
    assert (first.raw_dir / "demographics.parquet").stat().st_mtime_ns == mtime
    assert len(list_snapshots(data)) == 1
    hashes = {f.name: file_sha256(f) for f in redcap_export.iterdir()}
    assert first.export_id == export_id_of(hashes)


def test_new_content_of_the_same_sizes_lands_as_new(redcap_export: Path, tmp_path: Path) -> None:
    """Content that differs from a landed snapshot in one byte (same sizes) is new, gets its own id, and its
    landing copy holds the bytes it was hashed from."""
    data = tmp_path / "data"
    first = land_export(redcap_export, data)
    edited = tmp_path / "edited"
    shutil.copytree(redcap_export, edited)
    records = edited / "STUDY_DATA_2024-01-01.csv"
    text = records.read_bytes()
    at = text.rindex(b"1")
    records.write_bytes(text[:at] + b"2" + text[at + 1:])  # same length, one value changed
    second = land_export(edited, data)
    hashes = {f.name: file_sha256(f) for f in edited.iterdir()}
    assert second.new is True and second.export_id == export_id_of(hashes) != first.export_id
    assert (second.landing_dir / records.name).read_bytes() == records.read_bytes()
    assert [s["export_id"] for s in list_snapshots(data)] == [first.export_id, second.export_id]


def test_a_file_that_changes_while_it_lands_fails_the_landing(tmp_path: Path) -> None:
    """The landing copy is checked against each file's stat taken before it was hashed: a file rewritten after
    its hash fails with the file named (and lands nothing); an unchanged one is copied byte for byte."""
    import pytest

    source = tmp_path / "export"
    source.mkdir()
    f = source / "records.csv"
    f.write_bytes(b"record_id,x\n1,2\n")
    before = {f.name: _file_key(f)}
    target = tmp_path / "unchanged"
    target.mkdir()
    copy_landing([f], target, before)
    assert (target / f.name).read_bytes() == f.read_bytes()

    f.write_bytes(b"record_id,x\n1,3,4\n")
    target = tmp_path / "rewritten"
    target.mkdir()
    with pytest.raises(ExportError, match="changed while it was being landed") as err:
        copy_landing([f], target, before)
    assert err.value.file == f.name


def test_a_memoised_hash_is_not_reused_once_the_file_changed(tmp_path: Path) -> None:
    """The hash memo is keyed by the file's stat: the same bytes are hashed once; rewritten bytes (a new size or
    mtime) are hashed again."""
    f = tmp_path / "records.csv"
    f.write_bytes(b"record_id,x\n1,2\n")
    first = file_hash(f)
    assert first == file_sha256(f) == file_hash(f)
    f.write_bytes(b"record_id,x\n1,22\n")
    assert file_hash(f) == file_sha256(f) != first


def test_snapshots_stay_readable_oldest_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = land_export(write_redcap(tmp_path / "a"), data)
    from extract_samples import DATA_ROWS
    b = land_export(write_redcap(tmp_path / "b", rows=DATA_ROWS + ["03-001,screening_arm_1,,,site_03,GH,2,0,0,,0,,"]),
                    data)
    assert a.export_id != b.export_id
    snaps = list_snapshots(data)
    assert [s["export_id"] for s in snaps] == [a.export_id, b.export_id]
    assert {"export_id", "landed_at", "format", "files"} <= set(snaps[0])
    assert read_raw_form(data, a.export_id, "demographics").height == 3
    assert read_raw_form(data, b.export_id, "demographics").height == 4
    landing = data / "landing" / a.export_id
    assert sorted(p.name for p in landing.iterdir()) == sorted(p.name for p in (tmp_path / "a").iterdir())
    info = json.loads((a.raw_dir / "_meta" / "export.json").read_text())
    assert info["records"]["hemodynamics"] == {"rows": 3, "subjects": 2}
    roles = {f["name"]: f["role"] for f in info["files"]}
    assert roles["STUDY_DATA_2024-01-01.csv"] == "records" and roles["STUDY_Events_2024-01-01.csv"] == "events"


def test_semicolon_cp1252_decimal_comma(tmp_path: Path) -> None:
    from extract_samples import DATA_ROWS
    rows = [r.replace("72.5", '"72§5"').replace("AB", "Ærø") for r in DATA_ROWS]
    folder = write_redcap(tmp_path / "x", rows=rows, sep=";", encoding="cp1252")
    res = land_export(folder, tmp_path / "data")
    demo = read_raw_form(tmp_path / "data", res.export_id, "demographics")
    row = demo.filter(pl.col("subject_id") == "01-001").row(0, named=True)
    assert row["weight"] == "72,5" and row["initials"] == "Ærø"
    info = json.loads((res.raw_dir / "_meta" / "export.json").read_text())
    assert info["decimal_comma"] is True and info["decimal_comma_fields"] == ["weight"]
    rec = next(f for f in info["files"] if f["role"] == "records")
    assert rec["encoding"] == "cp1252" and rec["delimiter"] == ";"


def test_utf8_bom_and_tab(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x", sep="\t", encoding="utf-8-sig")
    res = land_export(folder, tmp_path / "data")
    assert res.forms["demographics"] == (3, 3)
    assert read_raw_form(tmp_path / "data", res.export_id, "demographics")["record_id"].to_list()[0] == "01-001"


def test_overrides(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x", sep=";")
    res = land_export(folder, tmp_path / "data", delimiter=";", encoding="utf-8")
    assert res.forms["hemodynamics"] == (3, 2)


def test_classic_project_without_events_keeps_rows_with_data(tmp_path: Path) -> None:
    header = "record_id,redcap_repeat_instrument,redcap_repeat_instance,initials,sex,comorbidities___1," \
             "comorbidities___2,weight,demographics_complete,hd_map,hemodynamics_complete"
    rows = ["1,,,AB,1,0,0,70,2,,", "1,hemodynamics,1,,,,,,,60,2", "2,,,CD,2,0,0,,0,,"]
    res = land_export(write_redcap(tmp_path / "x", header=header, rows=rows, events=None), tmp_path / "data")
    assert res.forms == {"demographics": (2, 2), "hemodynamics": (1, 1)}
    demo = read_raw_form(tmp_path / "data", res.export_id, "demographics")
    assert demo["event"].null_count() == 2 and demo["site_id"].null_count() == 2


def test_raw_parquet_dictionary_encodes_keys_and_codes_only(redcap_export: Path, tmp_path: Path) -> None:
    """Codes (a radio item, a form status) and the record keys are dictionary-encoded; a free number is not (its
    dictionary would only fill up); min/max statistics are written for the subject and the record number only."""
    import pyarrow.parquet as pq

    res = land_export(redcap_export, tmp_path / "data")
    meta = pq.ParquetFile(res.raw_dir / "demographics.parquet").metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    group = meta.row_group(0)

    def dictionary(column: str) -> bool:
        return any("DICTIONARY" in e for e in group.column(names.index(column)).encodings)

    def has_stats(column: str) -> bool:
        return group.column(names.index(column)).is_stats_set

    assert dictionary("subject_id") and dictionary("sex") and dictionary("demographics_complete")
    assert dictionary("_export_id")
    assert not dictionary("initials") and not dictionary("_source_row")
    assert has_stats("subject_id") and has_stats("_source_row")
    assert not has_stats("sex") and not has_stats("initials")
    hemo = pq.ParquetFile(res.raw_dir / "hemodynamics.parquet").metadata
    hnames = [hemo.schema.column(i).name for i in range(hemo.num_columns)]
    assert not any("DICTIONARY" in e for e in hemo.row_group(0).column(hnames.index("hd_map")).encodings)
