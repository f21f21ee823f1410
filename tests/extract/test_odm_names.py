"""Issue 14 item 5: table names from export metadata (ODM OIDs with dots, mixed case) are SQL- and file-safe by one
rule (`rawzone.table_name`), unique, the OIDs kept in the metadata, and staging loads them (quoted by sqlglot)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.extract import read_raw_form, read_raw_meta
from warehouse.extract.rawzone import (
    RESERVED_TABLE_NAMES,
    quoted_table,
    raw_table_path,
    snapshot_dir,
    table_name,
    unique_table_name,
)
from warehouse.build import BuildError, BuildRequest
from warehouse.db import connect_build
from warehouse.stage.load import load_frame, stage

PROJECT = Path(__file__).resolve().parents[2]

# A small ODM file as OpenClinica-style systems write them: OIDs with dots, a form with a non-repeating and a
# repeating item group (so the repeating one gets a table of its own, named after its OID), a second form whose
# name meets the first's once made safe ("F.1" and "F_1"), and a form named like a table a build writes itself.
DOTTED_ODM = """<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileType="Snapshot" FileOID="dots"
     CreationDateTime="2024-01-01T00:00:00">
<Study OID="S.DOTS">
  <MetaDataVersion OID="MDV.1" Name="v1">
    <StudyEventDef OID="SE.BASE" Name="Baseline" Repeating="No" Type="Scheduled">
      <FormRef FormOID="F.1" Mandatory="No"/><FormRef FormOID="F_1" Mandatory="No"/>
      <FormRef FormOID="TYPING.FAILURES" Mandatory="No"/>
    </StudyEventDef>
    <FormDef OID="F.1" Name="Adverse events" Repeating="No">
      <ItemGroupRef ItemGroupOID="IG.AE.MAIN" Mandatory="No"/>
      <ItemGroupRef ItemGroupOID="IG.AE.AE_ARRAY1" Mandatory="No"/>
    </FormDef>
    <FormDef OID="F_1" Name="Other form" Repeating="No">
      <ItemGroupRef ItemGroupOID="IG.OTHER" Mandatory="No"/>
    </FormDef>
    <FormDef OID="TYPING.FAILURES" Name="A form named like a build table" Repeating="No">
      <ItemGroupRef ItemGroupOID="IG.TF" Mandatory="No"/>
    </FormDef>
    <ItemGroupDef OID="IG.AE.MAIN" Name="Main" Repeating="No"><ItemRef ItemOID="I.ANY_AE" Mandatory="No"/>
    </ItemGroupDef>
    <ItemGroupDef OID="IG.AE.AE_ARRAY1" Name="AE log" Repeating="Yes">
      <ItemRef ItemOID="I.AE_TERM" Mandatory="No"/><ItemRef ItemOID="I.AE_SEV" Mandatory="No"/>
    </ItemGroupDef>
    <ItemGroupDef OID="IG.OTHER" Name="Other" Repeating="No"><ItemRef ItemOID="I.NOTE" Mandatory="No"/>
    </ItemGroupDef>
    <ItemGroupDef OID="IG.TF" Name="TF" Repeating="No"><ItemRef ItemOID="I.TF" Mandatory="No"/></ItemGroupDef>
    <ItemDef OID="I.ANY_AE" Name="any_ae" DataType="boolean"/>
    <ItemDef OID="I.AE_TERM" Name="ae_term" DataType="text"/>
    <ItemDef OID="I.AE_SEV" Name="ae_sev" DataType="integer"/>
    <ItemDef OID="I.NOTE" Name="note" DataType="text"/>
    <ItemDef OID="I.TF" Name="tf" DataType="text"/>
  </MetaDataVersion>
</Study>
<ClinicalData StudyOID="S.DOTS" MetaDataVersionOID="MDV.1">
  <SubjectData SubjectKey="001">
    <StudyEventData StudyEventOID="SE.BASE">
      <FormData FormOID="F.1">
        <ItemGroupData ItemGroupOID="IG.AE.MAIN"><ItemData ItemOID="I.ANY_AE" Value="1"/></ItemGroupData>
        <ItemGroupData ItemGroupOID="IG.AE.AE_ARRAY1" ItemGroupRepeatKey="1">
          <ItemData ItemOID="I.AE_TERM" Value="Headache"/><ItemData ItemOID="I.AE_SEV" Value="2"/></ItemGroupData>
        <ItemGroupData ItemGroupOID="IG.AE.AE_ARRAY1" ItemGroupRepeatKey="2">
          <ItemData ItemOID="I.AE_TERM" Value="Nausea"/><ItemData ItemOID="I.AE_SEV" Value="x"/></ItemGroupData>
      </FormData>
      <FormData FormOID="F_1">
        <ItemGroupData ItemGroupOID="IG.OTHER"><ItemData ItemOID="I.NOTE" Value="seen"/></ItemGroupData>
      </FormData>
      <FormData FormOID="TYPING.FAILURES">
        <ItemGroupData ItemGroupOID="IG.TF"><ItemData ItemOID="I.TF" Value="kept"/></ItemGroupData>
      </FormData>
    </StudyEventData>
  </SubjectData>
</ClinicalData>
</ODM>
"""


def warehouse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)


def extract(export: Path, data_dir: Path) -> str:
    """`warehouse extract` as a data manager runs it; the export id it printed."""
    proc = warehouse("extract", "--export", str(export), "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    return re.search(r"^Export ([0-9a-f]{16}) ", proc.stdout, re.MULTILINE)[1]


def src_tables(build_file: Path) -> dict[str, int]:
    with connect_build(build_file, read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'src'")
                 .fetchall()]
        return {n: con.execute(f"select count(*) from {quoted_table(n, 'src')}").fetchall()[0][0] for n in names}


@pytest.mark.parametrize("name, expected", [
    ("IG.AE.AE_ARRAY1", "ig_ae_ae_array1"), ("F.1", "f_1"), ("F_DEMOGRAPHICS_V20", "f_demographics_v20"),
    ("demographics", "demographics"), ("Form-2 (v1.0)", "form_2_v1_0"), ("1st visit", "t_1st_visit"),
    ("Ärzte", "arzte"), ("...", "table"),
])
def test_one_rule_gives_lowercase_snake_case_sql_names(name: str, expected: str):
    assert table_name(name) == expected
    assert table_name(expected) == expected  # a fixed point: a name read back from forms.parquet finds its file
    long = table_name("IG." + "X" * 100)
    assert len(long) <= 63 and table_name(long) == long and long != table_name("IG." + "X" * 101)


def test_names_that_meet_are_told_apart_deterministically():
    taken: set[str] = set()
    assert [unique_table_name(n, taken) for n in ("F.1", "F_1", "f-1")] == ["f_1", "f_1_2", "f_1_3"]
    assert unique_table_name("typing_failures", set()) == "typing_failures_2"
    assert "typing_failures" in RESERVED_TABLE_NAMES
    assert quoted_table("select", "src") == 'src."select"'


def test_dotted_odm_extracts_and_stages_under_safe_names(tmp_path: Path):
    export = tmp_path / "dots.xml"
    export.write_text(DOTTED_ODM, encoding="utf-8")
    data = tmp_path / "data"
    export_id = extract(export, data)

    forms = read_raw_meta(data, export_id, "forms")
    assert forms.select("form", "form_oid", "item_group").rows() == [
        ("f_1", "F.1", None), ("ig_ae_ae_array1", "F.1", "IG.AE.AE_ARRAY1"), ("f_1_2", "F_1", None),
        ("typing_failures_2", "TYPING.FAILURES", None)]
    files = sorted(p.name for p in snapshot_dir(data, export_id).glob("*.parquet"))
    assert files == ["f_1.parquet", "f_1_2.parquet", "ig_ae_ae_array1.parquet", "typing_failures_2.parquet"]
    assert set(read_raw_meta(data, export_id, "items").get_column("form")) <= set(forms.get_column("form"))
    # a table is found by its name and by the OID it came from
    assert read_raw_form(data, export_id, "IG.AE.AE_ARRAY1").height == 2
    assert raw_table_path(snapshot_dir(data, export_id), "ig_ae_ae_array1").is_file()

    # the staging load (it failed with "Schema with name IG does not exist!" before)
    build_file = tmp_path / "build.duckdb"
    counts = stage(BuildRequest(data_dir=data), export_id, build_file, None)
    assert counts["ig_ae_ae_array1"] == 2 and counts["f_1"] == 1 and counts["f_1_2"] == 1
    tables = src_tables(build_file)
    assert {"f_1", "f_1_2", "ig_ae_ae_array1", "typing_failures_2", "typing_failures"} <= set(tables)
    with connect_build(build_file, read_only=True) as con:
        # the build's own typing_failures is not overwritten by the form: it holds the value that did not type
        failed = con.execute("select form, item, raw_value from src.typing_failures").fetchall()
        assert failed == [("ig_ae_ae_array1", "I.AE_SEV", "x")]
        assert con.execute('select "I.TF" from src.typing_failures_2').fetchall() == [("kept",)]
        assert con.execute('select "I.ANY_AE" from src.f_1').fetchall() == [(True,)]
        comment = con.execute("select comment from duckdb_tables() where table_name = 'ig_ae_ae_array1'").fetchone()
        assert "Adverse events / AE log" in comment[0]


def test_openclinica_fixture_stages_under_lowercase_names(shared_fixtures: Path, tmp_path: Path):
    export = shared_fixtures / "odm" / "openclinica_juno_demo_fullextract.xml"
    data = tmp_path / "data"
    export_id = extract(export, data)
    forms = read_raw_meta(data, export_id, "forms")
    names = forms.get_column("form").to_list()
    assert all(n == table_name(n) for n in names) and len(set(names)) == len(names) == 29
    assert forms.filter(pl.col("form") == "ig_vital_bplog").select("form_oid", "item_group").row(0) == (
        "F_VITALSIGNS_V10", "IG_VITAL_BPLOG")
    build_file = tmp_path / "build.duckdb"
    counts = stage(BuildRequest(data_dir=data), export_id, build_file, None)
    tables = src_tables(build_file)
    for name in names:
        assert tables[name] == counts[name] == read_raw_form(data, export_id, name).height, name
    assert tables["ig_vital_bplog"] > 0


def test_a_table_that_fails_to_load_is_named(tmp_path: Path):
    with connect_build(tmp_path / "b.duckdb") as con:
        con.execute("create schema src")
        # a dotted name loads (quoted), where `src.IG.AE.X` read IG as a schema
        assert load_frame(con, "IG.AE.X", pl.DataFrame({"a": [1, 2]}), tmp_path) == 2
        assert con.execute('select sum(a) from src."IG.AE.X"').fetchone() == (3,)
        with pytest.raises(BuildError, match=r"^staging: table src\.ig_broken could not be loaded: .*no_such_table"):
            load_frame(con, "ig_broken", "select * from src.no_such_table", tmp_path)
