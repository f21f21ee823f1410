"""Bad input: ExportError naming file / location / field, the input quarantined, raw/ unchanged."""

from __future__ import annotations

import zlib
import struct
from pathlib import Path

import pytest

from warehouse.extract import ExportError, land_export, list_snapshots

from extract_samples import DATA_HEADER, DATA_ROWS, DICTIONARY, write_redcap


def raw_state(data: Path) -> list[str]:
    raw = data / "raw"
    return sorted(str(p.relative_to(raw)) for p in raw.rglob("*")) if raw.exists() else []


def land_fails(export: Path, data: Path, **kw) -> ExportError:
    """Land an export that must fail; check quarantine and that raw/ and landing/ did not change."""
    before, landing_before = raw_state(data), sorted((data / "landing").glob("*")) if (data / "landing").exists() else []
    q_before = set((data / "quarantine").glob("*")) if (data / "quarantine").exists() else set()
    with pytest.raises(ExportError) as info:
        land_export(export, data, **kw)
    err = info.value
    assert raw_state(data) == before
    landing_after = sorted((data / "landing").glob("*")) if (data / "landing").exists() else []
    assert landing_after == landing_before
    new_q = set((data / "quarantine").glob("*")) - q_before
    assert len(new_q) == 1
    qdir = new_q.pop()
    assert (qdir / "REASON.txt").read_text().splitlines()[0] == str(err)
    if export.is_dir():
        assert sorted(p.name for p in qdir.iterdir() if p.name != "REASON.txt") == \
            sorted(p.name for p in export.iterdir() if p.is_file())
    elif export.is_file():
        assert (qdir / export.name).read_bytes() == export.read_bytes()
    assert "\n" not in str(err)
    return err


@pytest.fixture
def data(tmp_path: Path, redcap_export: Path) -> Path:
    """A data dir that already holds one good snapshot (so 'raw unchanged' means something)."""
    d = tmp_path / "data"
    land_export(redcap_export, d)
    return d


def test_missing_folder(tmp_path: Path, data: Path) -> None:
    err = land_fails(tmp_path / "nope", data)
    assert "no such file or folder" in err.reason


def test_empty_folder(tmp_path: Path, data: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "empty folder" in land_fails(tmp_path / "empty", data).reason


def test_folder_with_no_export(tmp_path: Path, data: Path) -> None:
    d = tmp_path / "notes"
    d.mkdir()
    (d / "readme.txt").write_text("Hello,\nthis is the transfer of last week.\n")
    err = land_fails(d, data)
    assert "no export found" in err.reason and "readme.txt" in err.reason


def test_empty_file(tmp_path: Path, data: Path) -> None:
    folder = write_redcap(tmp_path / "x")
    (folder / "STUDY_DATA_2024-01-01.csv").write_bytes(b"")
    err = land_fails(folder, data)
    assert err.file == "STUDY_DATA_2024-01-01.csv" and "empty file" in err.reason


def test_header_only(tmp_path: Path, data: Path) -> None:
    err = land_fails(write_redcap(tmp_path / "x", rows=[]), data)
    assert err.file == "STUDY_DATA_2024-01-01.csv" and "no records" in err.reason


def test_truncated_mid_row(tmp_path: Path, data: Path) -> None:
    rows = DATA_ROWS[:3] + ["01-002,screening_arm_1,,,site_01,CD"]
    err = land_fails(write_redcap(tmp_path / "x", rows=rows), data)
    assert err.location == 5 and "expected 13 fields, found 6" in err.reason
    assert str(err).startswith("STUDY_DATA_2024-01-01.csv line 5: ")


def test_truncated_in_quoted_value(tmp_path: Path, data: Path) -> None:
    folder = write_redcap(tmp_path / "x")
    path = folder / "STUDY_DATA_2024-01-01.csv"
    text = path.read_text()
    path.write_text(text[: text.index('"C, D"') + 3])  # cut inside the quoted "C, D"
    err = land_fails(folder, data)
    assert err.location == 5 and "quote" in err.reason


def test_wrong_delimiter_override_reads_one_column(tmp_path: Path, data: Path) -> None:
    # (different content from the snapshot already landed: same content would be a no-op)
    err = land_fails(write_redcap(tmp_path / "x", rows=DATA_ROWS[:2]), data, delimiter=";")
    assert err.location == 1 and "wrong delimiter" in err.reason


def test_semicolon_header_not_matching_dictionary(tmp_path: Path, data: Path) -> None:
    # a semicolon file read with a comma override: the header is one column that is not the record id
    folder = write_redcap(tmp_path / "x", sep=";")
    err = land_fails(folder, data, delimiter=",")
    assert "wrong delimiter" in err.reason


def test_dictionary_missing_and_extra_columns(tmp_path: Path, data: Path) -> None:
    header = DATA_HEADER.replace(",weight,", ",weight_kg,")
    err = land_fails(write_redcap(tmp_path / "x", header=header), data)
    assert err.location == 1 and "missing from the data: weight" in err.reason
    assert "not in the dictionary: weight_kg" in err.reason and err.field == "weight"


def test_duplicate_record_key_names_lines(tmp_path: Path, data: Path) -> None:
    rows = DATA_ROWS + ["01-001,icu_arm_1,hemodynamics,2,site_01,,,,,,,71,2"]
    err = land_fails(write_redcap(tmp_path / "x", rows=rows), data)
    assert "duplicate record key" in err.reason and "lines 4 and 8" in err.reason
    assert "'01-001'" in err.reason and "instance '2'" in err.reason


def test_repeat_row_with_other_forms_value(tmp_path: Path, data: Path) -> None:
    rows = DATA_ROWS[:1] + ["01-001,icu_arm_1,hemodynamics,1,site_01,,,,,99,,65,2"]
    err = land_fails(write_redcap(tmp_path / "x", rows=rows), data)
    assert err.location == 3 and err.field == "weight"


def test_unknown_event(tmp_path: Path, data: Path) -> None:
    rows = DATA_ROWS + ["03-001,day_9_arm_1,,,site_03,GH,2,0,0,,0,,"]
    err = land_fails(write_redcap(tmp_path / "x", rows=rows), data)
    assert err.location == 8 and err.field == "redcap_event_name" and "day_9_arm_1" in err.reason


def test_undecodable_bytes(tmp_path: Path, data: Path) -> None:
    folder = write_redcap(tmp_path / "x")
    path = folder / "STUDY_DATA_2024-01-01.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"site_01", b"site_\x81\x8d1")  # undefined in cp1252 and invalid UTF-8
    path.write_bytes(b"\n".join(lines))
    err = land_fails(folder, data)
    assert err.location == 4 and "cannot be decoded" in err.reason


def test_utf8_with_stray_byte_is_not_guessed_as_cp1252(tmp_path: Path, data: Path) -> None:
    folder = write_redcap(tmp_path / "x", rows=[r.replace("AB", "Ærø") for r in DATA_ROWS])
    path = folder / "STUDY_DATA_2024-01-01.csv"
    path.write_bytes(path.read_bytes().replace(b"C, D", b"C\xe9 D"))
    err = land_fails(folder, data)
    assert err.location == 5 and "mixes UTF-8" in err.reason


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def test_png_is_not_an_export(tmp_path: Path, data: Path) -> None:
    png = tmp_path / "scan.png"
    png.write_bytes(_png())
    err = land_fails(png, data)
    assert "not an eCRF export" in err.reason and "PNG" in err.reason


def test_random_text_is_not_an_export(tmp_path: Path, data: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("Dear data manager,\nplease find attached.\n")
    assert "not an eCRF export" in land_fails(txt, data).reason


ODM_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def test_malformed_xml(tmp_path: Path, data: Path) -> None:
    x = tmp_path / "odm.xml"
    x.write_text(ODM_HEAD + '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">\n<Study OID="S">\n</ODM>\n')
    err = land_fails(x, data)
    assert "malformed XML" in err.reason and err.location == 4


def test_xml_external_entity(tmp_path: Path, data: Path) -> None:
    x = tmp_path / "xxe.xml"
    x.write_text(ODM_HEAD + '<!DOCTYPE ODM [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
                 '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><ClinicalData StudyOID="S">'
                 '<SubjectData SubjectKey="&xxe;"/></ClinicalData></ODM>\n')
    err = land_fails(x, data)
    assert "refused" in err.reason


def test_xml_billion_laughs(tmp_path: Path, data: Path) -> None:
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    x = tmp_path / "lol.xml"
    x.write_text(ODM_HEAD + f"<!DOCTYPE ODM [{ents}]>\n<ODM><Study OID='&lol9;'/></ODM>\n")
    assert "refused" in land_fails(x, data).reason


def test_odm_without_clinical_data(tmp_path: Path, data: Path) -> None:
    x = tmp_path / "meta_only.xml"
    x.write_text(ODM_HEAD + '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><Study OID="S"><MetaDataVersion OID="v1" '
                 'Name="v1"/></Study></ODM>\n')
    assert "metadata only" in land_fails(x, data).reason


def test_dictionary_without_records(tmp_path: Path, data: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "dict.csv").write_text(DICTIONARY)
    err = land_fails(folder, data)
    assert "no records CSV" in err.reason and "'record_id'" in err.reason


def test_failed_exports_leave_snapshots_readable(tmp_path: Path, data: Path) -> None:
    land_fails(write_redcap(tmp_path / "x", rows=[]), data)
    assert len(list_snapshots(data)) == 1
