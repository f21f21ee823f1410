"""ODM as EDCs write it: clinical data without metadata (Medidata Rave), metadata and clinical data in two files
of one export (OpenEDC), and the messages for ODM files that really are unusable."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest

from warehouse.extract import ExportError, land_export
from warehouse.extract.rawzone import PROVENANCE_COLUMNS

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
PYCAP_SIMPLE = "odm/redcap_pycap_test_simple_project.xml"


def export_json(res) -> dict:
    return json.loads((res.raw_dir / "_meta" / "export.json").read_text(encoding="utf-8"))


def meta(res, kind: str) -> pl.DataFrame:
    return pl.read_parquet(res.raw_dir / "_meta" / f"{kind}.parquet")


def tables(res) -> dict[str, pl.DataFrame]:
    """The raw tables without the provenance columns (which name the file the rows come from)."""
    return {t: pl.read_parquet(res.raw_dir / f"{t}.parquet").drop(PROVENANCE_COLUMNS) for t in res.forms}


def split_odm(source: Path, folder: Path, *, version: str | None = None) -> tuple[Path, Path]:
    """An OpenEDC-style pair from one ODM file: ``metadata.xml`` (the root with its Study, no ClinicalData) and
    ``clinicaldata.xml`` (the root with its ClinicalData, no Study); ``version``: another MetaDataVersionOID for
    the ClinicalData to refer to."""
    ET.register_namespace("", ODM_NS)
    ET.register_namespace("redcap", "https://projectredcap.org")
    folder.mkdir(parents=True, exist_ok=True)
    root = ET.parse(source).getroot()
    paths = []
    for name, keep in (("metadata.xml", "Study"), ("clinicaldata.xml", "ClinicalData")):
        part = ET.Element(root.tag, root.attrib)
        for child in root:
            if child.tag == f"{{{ODM_NS}}}{keep}":
                part.append(child)
                if version is not None and keep == "ClinicalData":
                    child.set("MetaDataVersionOID", version)
        path = folder / name
        ET.ElementTree(part).write(path, encoding="UTF-8", xml_declaration=True)
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("source", [PYCAP_SIMPLE, "odm/redcap_pycap_test_long_project.xml"])
def test_split_metadata_and_clinical_data_land_as_one_export(tmp_path: Path, fixtures: Path, source: str) -> None:
    single = land_export(fixtures / source, tmp_path / "data1")
    meta_file, data_file = split_odm(fixtures / source, tmp_path / "openedc")
    assert {c.tag.split("}")[1] for c in ET.parse(meta_file).getroot()} == {"Study"}
    assert {c.tag.split("}")[1] for c in ET.parse(data_file).getroot()} == {"ClinicalData"}
    pair = land_export(tmp_path / "openedc", tmp_path / "data2")
    assert pair.format == "odm" and pair.forms == single.forms and pair.forms
    a, b = tables(single), tables(pair)
    for t in a:
        assert a[t].equals(b[t]), t
    for kind in ("items", "choices", "events", "forms", "subjects"):
        assert meta(single, kind).equals(meta(pair, kind)), kind
    rows = pl.read_parquet(pair.raw_dir / f"{next(iter(pair.forms))}.parquet")
    assert set(rows["_source_file"]) == {"clinicaldata.xml"}
    files = {f["name"]: f for f in export_json(pair)["files"]}
    assert files["clinicaldata.xml"]["role"] == "odm" and files["metadata.xml"]["role"] == "metadata"
    assert {f["encoding"] for f in files.values()} == {"utf-8"}
    assert not any("no metadata" in n for n in export_json(pair)["notes"])


def test_two_clinical_data_files_are_still_refused(tmp_path: Path, fixtures: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.xml", "b.xml"):
        (folder / name).write_bytes((fixtures / PYCAP_SIMPLE).read_bytes().replace(b"Nutmeg", name.encode()))
    with pytest.raises(ExportError) as info:
        land_export(folder, tmp_path / "data")
    assert "several ODM files with ClinicalData" in info.value.reason
    assert "a.xml" in info.value.reason and "b.xml" in info.value.reason


def test_clinical_data_referring_to_an_undefined_version_names_it(tmp_path: Path, fixtures: Path) -> None:
    split_odm(fixtures / PYCAP_SIMPLE, tmp_path / "x", version="Metadata.v2")
    with pytest.raises(ExportError) as info:
        land_export(tmp_path / "x", tmp_path / "data")
    err = info.value
    assert err.file == "clinicaldata.xml"
    assert "ClinicalData refers to MetaDataVersion 'Metadata.v2'" in err.reason
    assert "which no file of the export defines" in err.reason and "metadata.xml defines" in err.reason


def test_a_second_file_with_neither_data_nor_metadata_is_named(tmp_path: Path, fixtures: Path) -> None:
    split_odm(fixtures / PYCAP_SIMPLE, tmp_path / "x")
    (tmp_path / "x" / "metadata.xml").write_text(f'<?xml version="1.0"?>\n<ODM xmlns="{ODM_NS}" FileOID="f"/>\n')
    with pytest.raises(ExportError) as info:
        land_export(tmp_path / "x", tmp_path / "data")
    assert info.value.file == "metadata.xml" and "no ClinicalData and no MetaDataVersion" in info.value.reason


def test_empty_odm_file_says_what_is_missing(tmp_path: Path) -> None:
    x = tmp_path / "empty.xml"
    x.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<ODM xmlns="{ODM_NS}" FileOID="f"><Study OID="S"/></ODM>\n')
    with pytest.raises(ExportError) as info:
        land_export(x, tmp_path / "data")
    assert info.value.file == "empty.xml" and "no ClinicalData and no MetaDataVersion" in info.value.reason


def test_single_file_referring_to_a_version_it_does_not_define(tmp_path: Path, fixtures: Path) -> None:
    x = tmp_path / "odm.xml"
    x.write_bytes((fixtures / PYCAP_SIMPLE).read_bytes().replace(
        b'MetaDataVersionOID="Metadata.PyCapTestSimpleProject_2021-10-13_1031"', b'MetaDataVersionOID="other"'))
    with pytest.raises(ExportError) as info:
        land_export(x, tmp_path / "data")
    assert "ClinicalData refers to MetaDataVersion 'other'" in info.value.reason


# ---------------------------------------------------------------- Medidata Rave: ClinicalData without metadata

RAVE = """<?xml version="1.0" encoding="utf-8"?>
<ODM FileType="Transactional" FileOID="a1b2c3" CreationDateTime="2024-03-05T10:11:12.000-00:00" ODMVersion="1.3"
     xmlns:mdsol="http://www.mdsol.com/ns/odm/metadata" xmlns="http://www.cdisc.org/ns/odm/v1.3">
 <ClinicalData StudyOID="ADRESS(Prod)" MetaDataVersionOID="1021">
  <SubjectData SubjectKey="0101-001" mdsol:SubjectKeyType="SubjectName" TransactionType="Upsert">
   <SiteRef LocationOID="0101"/>
   <StudyEventData StudyEventOID="SCREENING" StudyEventRepeatKey="1">
    <FormData FormOID="VS" FormRepeatKey="1" TransactionType="Upsert">
     <ItemGroupData ItemGroupOID="VS" mdsol:Submission="SpecifiedItemsOnly" TransactionType="Upsert">
      <ItemData ItemOID="VS.VSDAT" Value="05 MAR 2024" TransactionType="Upsert"/>
      <ItemData ItemOID="VS.TEMP" Value="37.2" TransactionType="Upsert"/>
      <ItemData ItemOID="VS.MAP" Value="64" TransactionType="Upsert"/>
     </ItemGroupData>
    </FormData>
    <FormData FormOID="AE" FormRepeatKey="1" TransactionType="Upsert">
     <ItemGroupData ItemGroupOID="AE_LOG_LINE" ItemGroupRepeatKey="1" TransactionType="Upsert">
      <ItemData ItemOID="AE.AETERM" Value="Bradycardia" TransactionType="Upsert"/>
      <ItemData ItemOID="AE.AESER" Value="N" TransactionType="Upsert"/>
     </ItemGroupData>
     <ItemGroupData ItemGroupOID="AE_LOG_LINE" ItemGroupRepeatKey="2" TransactionType="Upsert">
      <ItemData ItemOID="AE.AETERM" Value="Atrial fibrillation" TransactionType="Upsert"/>
      <ItemData ItemOID="AE.AESER" Value="Y" TransactionType="Upsert"/>
     </ItemGroupData>
    </FormData>
   </StudyEventData>
  </SubjectData>
  <SubjectData SubjectKey="0102-001" mdsol:SubjectKeyType="SubjectName" TransactionType="Upsert">
   <SiteRef LocationOID="0102"/>
   <StudyEventData StudyEventOID="SCREENING" StudyEventRepeatKey="1">
    <FormData FormOID="VS" FormRepeatKey="1" TransactionType="Upsert">
     <ItemGroupData ItemGroupOID="VS" TransactionType="Upsert">
      <ItemData ItemOID="VS.VSDAT" Value="06 MAR 2024" TransactionType="Upsert"/>
      <ItemData ItemOID="VS.TEMP" Value="38.0" TransactionType="Upsert"/>
     </ItemGroupData>
    </FormData>
   </StudyEventData>
  </SubjectData>
 </ClinicalData>
</ODM>
"""


def test_clinical_data_without_metadata_lands_as_text(tmp_path: Path) -> None:
    x = tmp_path / "ADRESS_20240305.xml"
    x.write_text(RAVE, encoding="utf-8")
    res = land_export(x, tmp_path / "data")
    assert res.format == "odm" and res.forms == {"vs": (2, 2), "ae": (2, 1)}
    items = meta(res, "items")
    assert items.select("form", "item").rows() == [("vs", "VS.VSDAT"), ("vs", "VS.TEMP"), ("vs", "VS.MAP"),
                                                   ("ae", "AE.AETERM"), ("ae", "AE.AESER")]
    assert set(items["field_type"]) == {"text"}
    vs = pl.read_parquet(res.raw_dir / "vs.parquet").sort("subject_id")
    assert vs.select("subject_id", "site_id", "event", "VS.TEMP", "VS.MAP").rows() == [
        ("0101-001", "0101", "SCREENING", "37.2", "64"), ("0102-001", "0102", "SCREENING", "38.0", None)]
    ae = pl.read_parquet(res.raw_dir / "ae.parquet").sort("repeat_instance")
    assert ae.select("repeat_instance", "AE.AETERM").rows() == [("1", "Bradycardia"), ("2", "Atrial fibrillation")]
    forms = meta(res, "forms")
    assert dict(forms.select("form", "repeating").rows()) == {"vs": False, "ae": True}
    assert meta(res, "events")["event"].to_list() == ["SCREENING"]
    notes = [n for n in export_json(res)["notes"] if "no metadata" in n]
    assert len(notes) == 1 and "no metadata: every item is text" in notes[0]
    assert export_json(res)["files"][0]["encoding"] == "utf-8"
