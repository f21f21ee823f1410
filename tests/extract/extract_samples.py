"""Shared helpers for the extract tests: a tiny REDCap export built in tmp_path, the fixtures folder."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"

DICT_HEADER = ('"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
               '"Choices, Calculations, OR Slider Labels","Field Note","Text Validation Type OR Show Slider Number",'
               '"Text Validation Min","Text Validation Max",Identifier?,"Branching Logic (Show field only if...)",'
               '"Required Field?","Custom Alignment","Question Number (surveys only)","Matrix Group Name",'
               '"Matrix Ranking?","Field Annotation"')
DICTIONARY = "\n".join([
    DICT_HEADER,
    'record_id,demographics,,text,"Record ID",,,,,,,,,,,,,',
    'initials,demographics,,text,Initials,,,,,,y,,,,,,,',
    'sex,demographics,,radio,Sex,"1, Male | 2, Female",,,,,,,y,,,,,',
    'comorbidities,demographics,,checkbox,Comorbidities,"1, hypertension | 2, diabetes",,,,,,,,,,,,',
    'weight,demographics,,text,Weight,,kg,number,30,250,,,,,,,,',
    'hd_map,hemodynamics,,text,MAP,,mmHg,integer,20,160,,,,,,,,',
]) + "\n"
DATA_HEADER = ("record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,"
               "redcap_data_access_group,initials,sex,comorbidities___1,comorbidities___2,weight,"
               "demographics_complete,hd_map,hemodynamics_complete")
DATA_ROWS = [
    "01-001,screening_arm_1,,,site_01,AB,1,1,0,72.5,2,,",
    "01-001,icu_arm_1,hemodynamics,1,site_01,,,,,,,65,2",
    "01-001,icu_arm_1,hemodynamics,2,site_01,,,,,,,70,2",
    '01-002,screening_arm_1,,,site_01,"C, D",2,0,1,80,1,,',
    "02-001,screening_arm_1,,,site_02,EF,1,0,0,,0,,",
    "02-001,icu_arm_1,hemodynamics,1,site_02,,,,,,,58,1",
]
EVENTS = ('event_name,arm_num,unique_event_name,custom_event_label,event_id\n'
          '"Screening",1,screening_arm_1,,1\n"ICU stay",1,icu_arm_1,,2\n')


def write_redcap(folder: Path, *, dictionary: str = DICTIONARY, header: str = DATA_HEADER,
                 rows: list[str] | None = None, events: str | None = EVENTS, sep: str = ",",
                 encoding: str = "utf-8", data_name: str = "STUDY_DATA_2024-01-01.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "STUDY_DataDictionary_2024-01-01.csv").write_text(dictionary, encoding="utf-8")
    rows = DATA_ROWS if rows is None else rows
    body = "\n".join([header] + rows) + "\n"
    if sep != ",":
        body = body.replace(",", sep)
    body = body.replace("§", ",")  # a literal comma inside a value, whatever the delimiter
    (folder / data_name).write_bytes(body.encode(encoding))
    if events is not None:
        (folder / "STUDY_Events_2024-01-01.csv").write_text(events, encoding="utf-8")
    return folder


@pytest.fixture
def redcap_export(tmp_path: Path) -> Path:
    return write_redcap(tmp_path / "export")


@pytest.fixture
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"real exports not available: {FIXTURES} is absent")
    return FIXTURES


ODM_METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileType="Snapshot" FileOID="F1">
 <Study OID="S">
  <GlobalVariables><StudyName>S</StudyName><StudyDescription>S</StudyDescription><ProtocolName>S</ProtocolName>
  </GlobalVariables>
  <MetaDataVersion OID="v1" Name="v1">
   <StudyEventDef OID="icu" Name="ICU" Repeating="No" Type="Common"><FormRef FormOID="hemodynamics" Mandatory="No"/>
   </StudyEventDef>
   <FormDef OID="hemodynamics" Name="Hemodynamics" Repeating="Yes">
    <ItemGroupRef ItemGroupOID="hemodynamics" Mandatory="No"/></FormDef>
   <ItemGroupDef OID="hemodynamics" Name="Hemodynamics" Repeating="No">
    <ItemRef ItemOID="hd_map" Mandatory="No"/><ItemRef ItemOID="hd_hr" Mandatory="No"/></ItemGroupDef>
   <ItemDef OID="hd_map" Name="hd_map" DataType="integer"/>
   <ItemDef OID="hd_hr" Name="hd_hr" DataType="integer"/>
  </MetaDataVersion>
 </Study>
"""


def odm_form(key: str, **values: str) -> str:
    """One hemodynamics FormData of the sample ODM (``odm_form("2", hd_map="65")``)."""
    items = "".join(f'<ItemData ItemOID="{k}" Value="{v}"/>' for k, v in values.items())
    return (f'<FormData FormOID="hemodynamics" FormRepeatKey="{key}">'
            f'<ItemGroupData ItemGroupOID="hemodynamics">{items}</ItemGroupData></FormData>')


def write_odm(path: Path, subjects: list[tuple[str, list[str]]]) -> Path:
    """A small ODM file: ``subjects`` = [(SubjectKey, [FormData xml of its icu event, ...]), ...]; a
    SubjectKey may be given more than once (several SubjectData elements)."""
    body = "".join(f'<SubjectData SubjectKey="{key}"><StudyEventData StudyEventOID="icu">{"".join(forms)}'
                   "</StudyEventData></SubjectData>\n" for key, forms in subjects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ODM_METADATA + f' <ClinicalData StudyOID="S" MetaDataVersionOID="v1">\n{body} </ClinicalData>\n'
                    "</ODM>\n", encoding="utf-8")
    return path
