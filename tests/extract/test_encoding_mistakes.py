"""Encoding mistakes caught: UTF-8 read as cp1252 (a wrong override) and files double-encoded at the source are
refused, naming file, line, field and the likely encoding; every file's encoding is in export.json; no real
export trips the check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from warehouse.extract import ExportError, land_export
from warehouse.extract.sniff import find_mojibake, scan_text

SIMPLE = "redcap/simple"
LABEL = 'height,health,,text,"Height (cm)"'
CELSIUS = 'height,health,,text,"Height (cm), at 37 °C, 5 µl"'


def simple_with_units(fixtures: Path, folder: Path) -> Path:
    """The REDCap `simple` fixture, its dictionary's height label holding '°C' and 'µl', written in UTF-8."""
    shutil.copytree(fixtures / SIMPLE, folder)
    text = (folder / "dictionary.csv").read_text(encoding="utf-8")
    assert LABEL in text
    (folder / "dictionary.csv").write_text(text.replace(LABEL, CELSIUS), encoding="utf-8")
    return folder


def line_of(path: Path, needle: str, encoding: str = "utf-8") -> int:
    return next(i for i, line in enumerate(path.read_text(encoding=encoding).splitlines(), 1) if needle in line)


def test_utf8_dictionary_lands_with_its_units(tmp_path: Path, fixtures: Path) -> None:
    folder = simple_with_units(fixtures, tmp_path / "x")
    res = land_export(folder, tmp_path / "data")
    import polars as pl
    items = pl.read_parquet(res.raw_dir / "_meta" / "items.parquet")
    assert "37 °C, 5 µl" in items.filter(pl.col("item") == "height")["label"].item()


@pytest.mark.parametrize("override", ["cp1252", "latin-1"])
def test_utf8_dictionary_read_with_a_wrong_override_is_refused(tmp_path: Path, fixtures: Path, override: str) -> None:
    folder = simple_with_units(fixtures, tmp_path / "x")
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data", encoding=override)
    err = info.value
    assert err.file == "dictionary.csv" and err.field == "Field Label"
    assert err.location == line_of(folder / "dictionary.csv", "°C")
    assert "'Â°'" in err.reason and "'°'" in err.reason
    assert "likely encoding is utf-8" in err.reason and f"not the override {override!r}" in err.reason
    assert 'encoding = "utf-8"' in err.reason
    assert not (tmp_path / "data" / "raw").exists() or not any((tmp_path / "data" / "raw").iterdir())


@pytest.mark.parametrize("name, evidence", [
    # 'ü' read as cp1252 shows as 'Ã¼': the mojibake itself is the evidence
    ("Nütmöuse", "'Ã¼'"),
    # 'Í' is C3 8D in UTF-8, and 0x8D is not a cp1252 character: the decode fails, and says what the file is
    ("NÍtmouse", "cannot be decoded as cp1252"),
])
def test_utf8_records_read_with_a_wrong_override_is_refused(tmp_path: Path, fixtures: Path, name: str,
                                                            evidence: str) -> None:
    folder = tmp_path / "x"
    shutil.copytree(fixtures / SIMPLE, folder)
    data = folder / "data.csv"
    data.write_text(data.read_text(encoding="utf-8").replace("Nutmouse,", f"{name},", 1), encoding="utf-8")
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data", encoding="cp1252")
    err = info.value
    assert (err.file, err.location, err.field) == ("data.csv", 2, "name_last")
    assert evidence in err.reason and "likely encoding is utf-8" in err.reason


def test_double_encoded_dictionary_is_refused(tmp_path: Path, fixtures: Path) -> None:
    """Valid UTF-8 bytes holding 'Â°C': the file was read as cp1252 and saved again before it was sent."""
    folder = simple_with_units(fixtures, tmp_path / "x")
    path = folder / "dictionary.csv"
    path.write_text(path.read_text(encoding="utf-8").encode("utf-8").decode("cp1252"), encoding="utf-8")
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data")
    err = info.value
    assert err.file == "dictionary.csv" and err.field == "Field Label"
    assert err.location == line_of(path, "Â°C")
    assert "'Â°'" in err.reason and "double-encoded" in err.reason and "re-export" in err.reason
    assert "utf-8" in err.reason
    # an override cannot read it right either
    with pytest.raises(ExportError) as again:
        land_export(folder, tmp_path / "data", encoding="utf-8")
    assert "double-encoded" in again.value.reason


def test_double_encoded_records_are_refused(tmp_path: Path, fixtures: Path) -> None:
    folder = tmp_path / "x"
    shutil.copytree(fixtures / SIMPLE, folder)
    data = folder / "data.csv"
    data.write_text(data.read_text(encoding="utf-8").replace("Tumtum", "TÃ©mtum"), encoding="utf-8")
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data")
    err = info.value
    assert (err.file, err.field) == ("data.csv", "name_first") and err.location == line_of(data, "TÃ©mtum")
    assert "'Ã©'" in err.reason and "'é'" in err.reason and "double-encoded" in err.reason


def test_a_real_cp1252_file_with_those_characters_still_lands(tmp_path: Path, fixtures: Path) -> None:
    """'Ã©' in a file that is not UTF-8 (cp1252 throughout) is what the file says: only UTF-8 files are suspect."""
    folder = tmp_path / "x"
    shutil.copytree(fixtures / SIMPLE, folder)
    data = folder / "data.csv"
    text = data.read_text(encoding="utf-8").replace("Tumtum", "TÃ©mtum").replace("Nutmeg", "Nütmeg")
    data.write_bytes(text.encode("cp1252"))
    res = land_export(folder, tmp_path / "data", encoding="cp1252")
    assert res.new


@pytest.mark.parametrize("text,found", [
    ("37 Â°C", ("Â°", "°")), ("5 Âµl", ("Âµ", "µ")), ("cafÃ©", ("Ã©", "é")), ("donâ€™t", ("â€™", "’")),
    ("5 Î¼l", ("Î¼", "μ")), ("Größe, Ærø, Zoë, «café», São Paulo, 37 °C, ±2, Straße“", None), ("ÂB", None),
])
def test_find_mojibake(text: str, found: tuple | None) -> None:
    got = find_mojibake(text)
    assert (got[1:] if got else None) == found


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_a_garbled_sequence_across_two_read_chunks_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            cut: int) -> None:
    """The UTF-8 bytes of 'Ã©' (C3 83 C2 A9) split at every place by the end of a read chunk: the lead looked for
    in a chunk's bytes includes what the decoder held back from the chunk before."""
    from warehouse.extract import sniff

    head = "record_id,name\n1,Zoë\n2,T"
    data = (head + "Ã©mtum\n3,Nutmeg\n").encode("utf-8")
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    monkeypatch.setattr(sniff, "CHUNK", len(head.encode("utf-8")) + cut)
    with pytest.raises(ExportError) as info:
        scan_text(path)
    err = info.value
    assert err.location == 3 and "'Ã©'" in err.reason and "'é'" in err.reason and "double-encoded" in err.reason
    assert err.byte_offset == len(head.encode("utf-8"))  # where 'Ã' starts in the file


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_utf8_read_as_cp1252_is_found_across_two_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            cut: int) -> None:
    """'ü' (C3 BC) read with a cp1252 override is 'Ã¼': split at every place by the end of a read chunk."""
    from warehouse.extract import sniff

    head = "record_id,name\n1,N"
    path = tmp_path / "data.csv"
    path.write_bytes((head + "ütmouse\n").encode("utf-8"))
    monkeypatch.setattr(sniff, "CHUNK", len(head) + cut)
    with pytest.raises(ExportError) as info:
        scan_text(path, encoding="cp1252")
    err = info.value
    assert err.location == 2 and "'Ã¼'" in err.reason and "likely encoding is utf-8" in err.reason
    assert err.byte_offset == len(head)


def export_files(raw_dir: Path) -> list[dict]:
    return json.loads((raw_dir / "_meta" / "export.json").read_text(encoding="utf-8"))["files"]


def real_exports(fixtures: Path) -> list[Path]:
    return sorted(p for p in (fixtures / "redcap").iterdir() if p.is_dir()) + sorted((fixtures / "odm").glob("*.xml"))


def test_no_real_export_trips_the_check_and_every_file_has_its_encoding(tmp_path: Path, fixtures: Path) -> None:
    landed = 0
    for export in real_exports(fixtures):
        try:
            res = land_export(export, tmp_path / "data")
        except ExportError as err:  # a few fixtures are broken on purpose (an empty records file): not by encoding
            assert "garbled" not in err.reason and "likely encoding" not in err.reason, (export.name, str(err))
            continue
        landed += 1
        for f in export_files(res.raw_dir):
            if f["name"].lower().endswith((".csv", ".xml")):
                assert f.get("encoding"), (export.name, f)
                if f["role"] != "ignored" and f["name"].endswith(".csv"):
                    assert "bom" in f and f.get("delimiter"), (export.name, f)
    assert landed >= 18
    odm = next(f for f in export_files(land_export(fixtures / "odm/openclinica_juno_demo_fullextract.xml",
                                                   tmp_path / "data").raw_dir))
    assert odm["encoding"] == "ascii"  # declared US-ASCII


def test_no_real_csv_file_trips_the_check(fixtures: Path) -> None:
    """Every CSV of the fixtures, those of exports that do not land (an empty records file) included."""
    files = sorted(fixtures.rglob("*.csv"))
    assert len(files) > 40
    non_ascii = 0
    for path in files:
        if path.stat().st_size:
            info = scan_text(path)  # raises on garbled text
            non_ascii += not path.read_bytes().isascii()
            assert info.encoding == "utf-8", path
    assert non_ascii  # the check did look at accented text
