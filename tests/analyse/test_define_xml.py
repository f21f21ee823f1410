"""define.xml (Define-XML 2.1) written by `warehouse export` beside the XPT files: valid against CDISC's schema
(define2-1-0.xsd as odmlib ships it), loads with odmlib's define_2_1 model and passes its conformance and OID
checks, every reference resolves, and it says what the warehouse knows (counts, types, lengths, codelists, keys)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import duckdb
import pytest

from warehouse.analyse.define import DEF_NS, ODM_NS, data_type, schema_errors, structural_problems
from warehouse.analyse.exports import export_marts

ADAM = ("adsl", "adeff", "adae", "adtte")


def test_duckdb_types_map_to_define_datatypes():
    assert [data_type(t) for t in ("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "DATE", "TIMESTAMP")] == \
        ["text", "integer", "integer", "float", "date", "datetime"]


@pytest.fixture(scope="module")
def exported(demo_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("define-export")
    export_marts(demo_build.published, out, formats=("xpt",))
    return demo_build.published, out


def test_define_is_schema_valid_and_structurally_sound(exported):
    _, out = exported
    path = out / "define.xml"
    assert path.is_file()
    assert structural_problems(path) == []
    errors = schema_errors(path)
    assert errors is not None, "odmlib and xmlschema are test dependencies"
    assert errors == []
    for group in ET.parse(path).getroot().iter(f"{{{ODM_NS}}}ItemGroupDef"):
        leaf = group.find(f"{{{DEF_NS}}}leaf")
        assert (out / leaf.get("{http://www.w3.org/1999/xlink}href")).is_file()


def test_define_loads_with_odmlib_and_says_what_the_warehouse_knows(exported):
    odmlib_loader = pytest.importorskip("odmlib.loader")
    from odmlib import define_loader
    from odmlib.define_2_1.rules.metadata_schema import MetadataSchema
    from odmlib.oid_generator import create_oid_checker

    warehouse, out = exported
    loader = odmlib_loader.ODMLoader(define_loader.XMLDefineLoader(model_package="define_2_1"))
    loader.open_odm_document(str(out / "define.xml"))
    root = loader.root()
    assert root.verify_conformance(MetadataSchema())
    assert root.verify_oids(create_oid_checker("define_2_1"))
    mdv = loader.MetaDataVersion()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute("select table_name, column_name, data_type from duckdb_columns() "
                              "where schema_name = 'main' and table_name in ('adsl', 'adeff', 'adae', 'adtte')"
                              ).fetchall()
        sex_length = con.execute("select max(length(SEX)) from main.adsl").fetchone()[0]
        paramcds = dict(con.execute("select PARAMCD, min(PARAM) from main.adeff group by 1").fetchall())
        ittfl = {r[0] for r in con.execute("select distinct ITTFL from main.adsl").fetchall()}
    assert sorted(g.Name for g in mdv.ItemGroupDef) == sorted(t.upper() for t in ADAM)
    assert len(mdv.ItemDef) == len(columns)
    items = {i.OID: i for i in mdv.ItemDef}
    assert items["IT.ADSL.AGE"].DataType == "integer"
    assert items["IT.ADSL.SEX"].DataType == "text" and int(items["IT.ADSL.SEX"].Length) == sex_length
    assert items["IT.ADSL.TRTSDTM"].DataType == "datetime" and items["IT.ADEFF.AVAL"].DataType == "float"
    codelists = {c.OID: c for c in mdv.CodeList}
    assert items["IT.ADSL.ITTFL"].CodeListRef.CodeListOID == "CL.ADSL.ITTFL"
    assert {e.CodedValue for e in codelists["CL.ADSL.ITTFL"].EnumeratedItem} == ittfl - {None}
    paramcd = codelists[items["IT.ADEFF.PARAMCD"].CodeListRef.CodeListOID]
    assert {c.CodedValue: c.Decode.TranslatedText[0]._content for c in paramcd.CodeListItem} == paramcds
    adeff = next(g for g in mdv.ItemGroupDef if g.Name == "ADEFF")
    keys = sorted((int(r.KeySequence), r.ItemOID) for r in adeff.ItemRef if r.KeySequence)
    assert [oid for _, oid in keys] == ["IT.ADEFF.USUBJID", "IT.ADEFF.PARAMCD", "IT.ADEFF.AVISIT"]
    origins = {i.OID: i.Origin[0].Type if isinstance(i.Origin, list) else i.Origin.Type for i in mdv.ItemDef}
    assert set(origins.values()) <= {"Predecessor", "Derived", "Not Available"} and "Predecessor" in origins.values()
    # coded values as CDISC terms: ADAE's AEACN lists the terms the data holds, with C66767's NCI code
    aeacn = codelists[items["IT.ADAE.AEACN"].CodeListRef.CodeListOID]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        terms = {r[0] for r in con.execute("select distinct AEACN from main.adae where AEACN is not null").fetchall()}
    assert {e.CodedValue for e in aeacn.EnumeratedItem} == terms and "DOSE NOT CHANGED" in terms
    assert [(a.Context, a.Name) for a in aeacn.Alias] == [("nci:ExtCodeID", "C66767")]
    # the arm codes (ARMCD, ACTARMCD): a sponsor list of the study.toml [treatment] arm keys, no NCI alias
    armcd = codelists[items["IT.ADSL.ARMCD"].CodeListRef.CodeListOID]
    assert {e.CodedValue for e in armcd.EnumeratedItem} == {"DEX", "PBO"} and not armcd.Alias
    # RACE and ETHNIC are not collected in this study: present and empty, and define.xml says so in a comment
    comments = {c.OID: c.Description.TranslatedText[0]._content for c in mdv.CommentDef}
    for var in ("RACE", "ETHNIC"):
        item = items[f"IT.ADSL.{var}"]
        assert origins[item.OID] == "Not Available"
        assert "not collected in this study" in comments[item.CommentOID]
    assert [o for o, t in origins.items() if t == "Not Available"] == ["IT.ADSL.RACE", "IT.ADSL.ETHNIC",
                                                                       "IT.ADTTE.SRCSEQ"]
