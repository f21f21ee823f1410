"""CSV dialect: the study configuration's [export] overrides (encoding, delimiter, decimal mark), what they
change when detection gets a file wrong, and the errors of a wrong override or a wrong delimiter."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from warehouse.extract import ExportError, land_export, read_raw_form
from warehouse.study import load_study

from extract_samples import DATA_HEADER, DATA_ROWS, write_redcap, write_odm, odm_form

DATA = "STUDY_DATA_2024-01-01.csv"
ADRESS = Path(__file__).resolve().parents[2] / "study.toml"  # the demo project's


def study_toml(tmp_path: Path, export_table: str) -> Path:
    """The demo study's configuration with its [export] table replaced."""
    text = ADRESS.read_text(encoding="utf-8")
    assert "\n[export]" in text
    path = tmp_path / "study.toml"
    path.write_text(text.split("\n[export]")[0] + "\n[export]\n" + export_table + "\n", encoding="utf-8")
    return path


def export_json(res) -> dict:
    return json.loads((res.raw_dir / "_meta" / "export.json").read_text(encoding="utf-8"))


def records_by_subject(path: Path, encoding: str, delimiter: str) -> dict[str, dict[str, str]]:
    """The records file read with the csv module: first (non-repeating) row of each record id."""
    out: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding=encoding) as fh:
        for row in csv.DictReader(fh, delimiter=delimiter):
            if not row["redcap_repeat_instrument"]:
                out.setdefault(row["record_id"], row)
    return out


# ---------------------------------------------------------------- the study configuration

def test_demo_study_detects_by_default() -> None:
    study = load_study()
    assert study.export_options() == {"encoding": None, "delimiter": None, "decimal_comma": None}
    assert all(study.parameter_columns()[f"export_{k}"][0] is None for k in ("encoding", "delimiter", "decimal_comma"))


def test_export_table_is_read(tmp_path: Path) -> None:
    study = load_study(study_toml(tmp_path, 'encoding = "cp1252"\ndelimiter = "tab"\ndecimal_comma = true'))
    assert study.export_options() == {"encoding": "cp1252", "delimiter": "\t", "decimal_comma": True}
    assert study.parameter_columns()["export_encoding"][0] == "cp1252"
    assert load_study(study_toml(tmp_path, 'delimiter = "\\t"')).export_delimiter == "\t"  # TOML's own escape
    assert load_study(study_toml(tmp_path, 'encoding = ""')).export_encoding is None  # empty = detect


@pytest.mark.parametrize("table, words", [
    ('delimeter = ";"', "unknown key(s) in [export]: delimeter"),
    ('delimiter = ";;"', "delimiter ';;' must be one character"),
    ('delimiter = 59', "delimiter must be a string"),
    ('encoding = "cp-nope"', "unknown encoding 'cp-nope'"),
    ('decimal_comma = "yes"', "decimal_comma must be true or false"),
])
def test_export_table_errors_name_the_file_and_key(tmp_path: Path, table: str, words: str) -> None:
    path = study_toml(tmp_path, table)
    with pytest.raises(ValueError) as info:
        load_study(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)


# ---------------------------------------------------------------- overrides where detection is wrong

def cp1252_semicolon_export(folder: Path) -> Path:
    """A cp1252, semicolon, decimal-comma export whose first non-ASCII text ('Ã©', e.g. pasted mojibake) is
    also valid UTF-8: detection takes the file for UTF-8 and then refuses it as mixed."""
    rows = [r.replace("72.5", '"72§5"') for r in DATA_ROWS]
    rows[0] = rows[0].replace(",AB,", ",Ã©x,")
    rows[3] = rows[3].replace('"C, D"', "Ærø")
    return write_redcap(folder, rows=rows, sep=";", encoding="cp1252")


def test_detection_refuses_the_export_and_says_how_to_override(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        land_export(cp1252_semicolon_export(tmp_path / "x"), tmp_path / "data")
    err = info.value
    assert (err.file, err.location, err.field) == (DATA, 5, "initials")  # 'Ærø' of 01-002, line 5
    assert "mixes UTF-8" in err.reason and "encoding = ..." in err.reason and "--encoding" in err.reason


def test_study_override_lands_it_exactly(tmp_path: Path) -> None:
    folder = cp1252_semicolon_export(tmp_path / "x")
    study = load_study(study_toml(tmp_path, 'encoding = "cp1252"\ndelimiter = ";"\ndecimal_comma = true'))
    data = tmp_path / "data"
    res = land_export(folder, data, **study.export_options())
    assert res.new and res.forms == {"demographics": (3, 3), "hemodynamics": (3, 2)}
    expected = records_by_subject(folder / DATA, "cp1252", ";")
    assert expected["01-001"]["initials"] == "Ã©x" and expected["01-002"]["initials"] == "Ærø"
    demo = read_raw_form(data, res.export_id, "demographics")
    for subject, row in expected.items():
        got = demo.filter(pl.col("subject_id") == subject).row(0, named=True)
        assert {c: got[c] for c in ("initials", "weight", "sex")} == {
            c: row[c] or None for c in ("initials", "weight", "sex")}, subject
    info = export_json(res)
    rec = next(f for f in info["files"] if f["role"] == "records")
    assert (rec["encoding"], rec["delimiter"]) == ("cp1252", ";")
    assert info["overrides"] == {"encoding": "cp1252", "delimiter": ";", "decimal_comma": True}
    assert info["decimal_comma"] is True and info["decimal_comma_fields"] == ["weight"]
    # an export lands once: the same content again is a no-op whatever the overrides say
    again = land_export(folder, data)
    assert again.export_id == res.export_id and not again.new


def test_pipe_delimited_export_lands_with_the_delimiter_override(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x", sep="|")
    res = land_export(folder, tmp_path / "data", delimiter="pipe")
    expected = records_by_subject(folder / DATA, "utf-8", "|")
    demo = read_raw_form(tmp_path / "data", res.export_id, "demographics")
    assert sorted(demo["subject_id"].to_list()) == sorted(expected)
    assert dict(demo.select("subject_id", "initials").rows()) == {s: r["initials"] for s, r in expected.items()}
    assert res.forms["hemodynamics"] == (3, 2)


def test_bom_wins_over_an_encoding_override(tmp_path: Path) -> None:
    rows = [r.replace(",AB,", ",Zoë,") for r in DATA_ROWS]
    folder = write_redcap(tmp_path / "x", rows=rows, encoding="utf-8-sig")
    res = land_export(folder, tmp_path / "data", encoding="cp1252")
    demo = read_raw_form(tmp_path / "data", res.export_id, "demographics")
    assert demo.filter(pl.col("subject_id") == "01-001")["initials"].item() == "Zoë"  # not 'ZoÃ«'


# ---------------------------------------------------------------- a wrong override

def test_wrong_encoding_override_names_file_line_and_field(tmp_path: Path) -> None:
    rows = [r.replace("site_02,EF", "site_02,Ærø") for r in DATA_ROWS]  # 02-001, record 5, line 6
    folder = write_redcap(tmp_path / "x", rows=rows, encoding="cp1252")
    data = tmp_path / "data"
    assert land_export(folder, data).new  # detected as cp1252
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data2", encoding="utf-8")
    err = info.value
    assert (err.file, err.location, err.field) == (DATA, 6, "initials")
    assert "cannot be decoded as utf-8" in err.reason and "the encoding override is 'utf-8'" in err.reason
    assert str(err).startswith(f"{DATA} line 6, field 'initials': ")
    (q,) = (tmp_path / "data2" / "quarantine").iterdir()
    assert (q / "REASON.txt").read_text(encoding="utf-8").splitlines()[0] == str(err)


def test_wrong_delimiter_override_names_the_file_and_the_header_it_read(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x")
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data", delimiter=";")
    err = info.value
    assert (err.file, err.location) == (DATA, 1)
    assert "the override's delimiter ';'" in err.reason and "'record_id,redcap_event_name," in err.reason
    assert "looks delimited by ','" in err.reason


@pytest.mark.parametrize("kw, words", [({"encoding": "klingon"}, "unknown encoding 'klingon'"),
                                       ({"delimiter": '"'}, "must be one character other than a quote")])
def test_invalid_override_is_refused_before_reading(tmp_path: Path, kw: dict, words: str) -> None:
    data = tmp_path / "data"
    with pytest.raises(ExportError) as info:
        land_export(write_redcap(tmp_path / "x"), data, **kw)
    assert "CSV dialect override" in info.value.reason and words in info.value.reason
    assert not data.exists()  # nothing landed, nothing quarantined: the export is not at fault


# ---------------------------------------------------------------- the declared decimal mark

def test_declared_decimal_mark_is_recorded_and_the_other_mark_noted(tmp_path: Path) -> None:
    comma = write_redcap(tmp_path / "c", rows=[r.replace("72.5", '"72§5"') for r in DATA_ROWS])
    res = land_export(comma, tmp_path / "data", decimal_comma=False)
    info = export_json(res)
    assert info["decimal_comma"] is False and info["decimal_comma_fields"] == ["weight"]
    assert any("decimal comma values in numeric field(s) weight" in n for n in info["notes"])
    dot = write_redcap(tmp_path / "d")  # weight 72.5
    info = export_json(land_export(dot, tmp_path / "data", decimal_comma=True))
    assert info["decimal_comma"] is True and info["decimal_comma_fields"] == []
    assert any("decimal dot values in numeric field(s) weight" in n for n in info["notes"])
    # detected (no override): a dot export is not decimal comma, and nothing is noted
    info = export_json(land_export(write_redcap(tmp_path / "e", rows=DATA_ROWS[:3]), tmp_path / "data"))
    assert info["decimal_comma"] is False and not any("decimal" in n for n in info["notes"])


def test_overrides_do_not_apply_to_odm(tmp_path: Path) -> None:
    x = write_odm(tmp_path / "odm.xml", [("01-001", [odm_form("1", hd_map="65")])])
    res = land_export(x, tmp_path / "data", encoding="cp1252", decimal_comma=True)
    info = export_json(res)
    assert info["overrides"] == {} and info["decimal_comma"] is False
    assert any("overrides not used" in n for n in info["notes"])


# ---------------------------------------------------------------- a wrong delimiter, no override

@pytest.mark.parametrize("name, kw, seen, looks", [
    ("pipe", {"sep": "|"}, "'record_id|redcap_event_name|redcap_repeat_instrument|redcap_'", "'|'"),
    ("tab", {"header": DATA_HEADER.replace(",", "\t", 1)}, "'record_id\\tredcap_event_name'", "'\\t'"),
])
def test_wrong_delimiter_names_file_detected_delimiter_and_header(tmp_path: Path, name: str, kw: dict, seen: str,
                                                                  looks: str) -> None:
    with pytest.raises(ExportError) as info:
        land_export(write_redcap(tmp_path / name, **kw), tmp_path / "data")
    err = info.value
    assert (err.file, err.location) == (DATA, 1)
    assert "the detected delimiter ','" in err.reason and f"first column {seen}" in err.reason
    assert f"looks delimited by {looks}" in err.reason
    assert "[export] table" in err.reason and "--delimiter" in err.reason
    assert "no records CSV" not in err.reason


def test_header_quoted_as_one_value_is_not_blamed_on_the_delimiter(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        land_export(write_redcap(tmp_path / "x", header=f'"{DATA_HEADER}"'), tmp_path / "data")
    assert info.value.location == 1 and "one quoted value" in info.value.reason

