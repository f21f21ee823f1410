"""define.xml (Define-XML 2.1 over ODM 1.3.2) for the ADaM datasets of a warehouse, from what the warehouse knows.

- ItemGroupDef per dataset (adsl, adeff, adae, adtte): Name upper case, def:Structure from main.catalog's grain,
  def:Class (SUBJECT LEVEL ANALYSIS DATASET, BASIC DATA STRUCTURE, OCCURRENCE DATA STRUCTURE), the description
  from main.catalog (its first clause as the label, the whole as the description), def:leaf to the XPT file
  written beside it; ItemRefs in column order, KeySequence from the grain, Mandatory = Yes for the key variables.
- ItemDef per dataset and variable: DataType from the DuckDB type (VARCHAR text, integers integer, DOUBLE float,
  DATE date, TIMESTAMP datetime), Length of text (the longest value, at least 1) and integer variables,
  Description from the column comment, SASFieldName the XPT name, CodeListRef for flags and PARAMCD/PARAM,
  def:Origin: Predecessor with the eCRF item (main.lineage raw_form.raw_item) when the variable is the item as
  collected (every lineage step a plain copy), else Derived with a MethodDef.
- CodeList: the distinct values of every flag variable (*FL) and coded variable (SEX, AGEU, AEACN, AEOUT, AESER,
  AEREL, ARMNRS, ARMCD, ACTARMCD; the CDISC codelist's NCI code as an Alias), and the PARAMCD -> PARAM pairs (decoded).
- MethodDef: the lineage expressions of the variable's model (main.lineage depth 1), else its description.
- def:CommentDef: a variable with no source (no lineage step reads a table) and no value in any record, e.g. a
  required variable the study does not collect (ADSL RACE): def:Origin "Not Available" and its column comment as
  the comment, so define.xml says why it is empty rather than describing a derivation.

    write_define(con, out_dir / "define.xml", xpt_files={"adsl": "adsl.xpt", ...})
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
DEFINE_TABLES = ("adsl", "adeff", "adae", "adtte")

CLASSES = {
    "ADSL": "SUBJECT LEVEL ANALYSIS DATASET",
    "BDS": "BASIC DATA STRUCTURE",
    "OCCDS": "OCCURRENCE DATA STRUCTURE",
}
# Coded variables of the ADaM IG whose values are CDISC controlled terms (or, AEREL, ARMNRS and the arm codes
# ARMCD/ACTARMCD, a sponsor list): each gets a CodeList of its values, with the NCI code of the CDISC codelist
# (Alias nci:ExtCodeID) where there is one
CODED_VARIABLES = {"SEX": "C66731", "AGEU": "C66781", "AEACN": "C66767", "AEOUT": "C66768", "AESER": "C66742",
                   "AEREL": None, "ARMNRS": None, "ARMCD": None, "ACTARMCD": None}
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT"}


def data_type(duckdb_type: str) -> str:
    """Define-XML DataType of a DuckDB type."""
    t = duckdb_type.upper()
    if t in INTEGER_TYPES:
        return "integer"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "datetime"
    if t == "TIME":
        return "time"
    return "text"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _d(tag: str, ns: str = ODM_NS) -> str:
    return f"{{{ns}}}{tag}"


def _translated(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, _d(tag))
    tt = ET.SubElement(el, _d("TranslatedText"), {_d("lang", XML_NS): "en"})
    tt.text = text
    return el


def _oid_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "X"


def _dataset_class(name: str, columns: list[str]) -> str:
    if name == "adsl":
        return "ADSL"
    return "BDS" if "PARAMCD" in columns else "OCCDS"


def _catalog(con, table: str) -> tuple[str, str]:
    try:
        row = con.execute("select max(table_description), max(grain) from main.catalog where schema_name = 'main' "
                          "and table_name = ?", [table]).fetchall()
    except duckdb.Error:
        row = []
    desc, grain = (row[0] if row else (None, None))
    if not desc:
        found = con.execute("select comment from duckdb_tables() where schema_name = 'main' and table_name = ?",
                            [table]).fetchall()
        desc = (found[0][0] if found else "") or table.upper()
    return desc, grain or ""


def _lineage(con, table: str) -> dict[str, list[tuple]]:
    try:
        rows = con.execute("select column_name, depth, model, expression, upstream_table, upstream_column, raw_form, "
                           "raw_item from main.lineage where table_name = ? order by column_name, depth",
                           [table]).fetchall()
    except duckdb.Error:
        return {}
    out: dict[str, list[tuple]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1:])
    return out


def origin_of(steps: list[tuple]) -> tuple[str, str | None, str]:
    """(origin type, eCRF item 'form.item' or None, derivation text) of a variable from its lineage steps
    (depth, model, expression, upstream_table, upstream_column, raw_form, raw_item)."""
    raw = sorted({f"{s[5]}.{s[6]}" for s in steps if s[5] and s[6]})
    expressions = [s[2] for s in steps if s[2]]
    if len(raw) == 1 and not expressions:
        return "Predecessor", raw[0], f"Copied from eCRF item {raw[0]}"
    direct = [s for s in steps if s[0] == 1]
    text = "; ".join(dict.fromkeys(f"{s[1]}: {s[2]}" for s in direct if s[2]))
    if not text:
        text = "; ".join(dict.fromkeys(f"{s[1]}: from {s[3]}.{s[4]}" for s in direct if s[3]))
    return "Derived", (raw[0] if raw else None), text


def _study_id(con, tables: tuple[str, ...], study_oid: str | None) -> str:
    """The study's id: ``study_oid``, else the first dataset's STUDYID, else STUDY."""
    studyid = None
    if tables:
        cols = {r[0] for r in con.execute("select column_name from duckdb_columns() where schema_name = 'main' "
                                          "and table_name = ?", [tables[0]]).fetchall()}
        if "STUDYID" in cols:
            found = con.execute(f"select min(STUDYID) from main.{_q(tables[0])}").fetchone()
            studyid = found[0] if found else None
    return str(study_oid or studyid or "STUDY")


def _odm(studyid: str) -> tuple[ET.Element, ET.Element]:
    """The ODM root (Study, GlobalVariables, the ADaMIG Standard) and its MetaDataVersion."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    odm = ET.Element(_d("ODM"), {
        "FileType": "Snapshot", "FileOID": f"DEF.{_oid_part(studyid)}.ADAM", "CreationDateTime": now,
        "ODMVersion": "1.3.2", "Originator": "warehouse export", "SourceSystem": "warehouse",
        _d("Context", DEF_NS): "Other",
    })
    study = ET.SubElement(odm, _d("Study"), {"OID": f"ST.{_oid_part(studyid)}"})
    gv = ET.SubElement(study, _d("GlobalVariables"))
    ET.SubElement(gv, _d("StudyName")).text = studyid
    ET.SubElement(gv, _d("StudyDescription")).text = f"{studyid} ADaM datasets"
    ET.SubElement(gv, _d("ProtocolName")).text = studyid
    mdv = ET.SubElement(study, _d("MetaDataVersion"), {
        "OID": f"MDV.{_oid_part(studyid)}.ADAM", "Name": f"{studyid} ADaM", "Description": "ADaM datasets",
        _d("DefineVersion", DEF_NS): "2.1.0",
    })
    ET.SubElement(mdv, _d("Standards", DEF_NS)).append(ET.Element(_d("Standard", DEF_NS), {
        "OID": "STD.ADAMIG.1.3", "Name": "ADaMIG", "Type": "IG", "Version": "1.3", "Status": "Final"}))
    return odm, mdv


def _item_group(table: str, cls: str, keys: list[str], desc: str) -> ET.Element:
    """The dataset's ItemGroupDef (its ItemRefs and def:leaf are added after)."""
    from warehouse.analyse.labels import dataset_label

    name = table.upper()
    group = ET.Element(_d("ItemGroupDef"), {
        "OID": f"IG.{name}", "Name": name, "SASDatasetName": name[:8], "Repeating": "No" if cls == "ADSL" else "Yes",
        "IsReferenceData": "No", "Purpose": "Analysis",
        _d("Structure", DEF_NS): "One record per " + (" per ".join(keys) if keys else "row"),
        _d("StandardOID", DEF_NS): "STD.ADAMIG.1.3",
        _d("ArchiveLocationID", DEF_NS): f"LF.{name}",
    })
    _translated(group, "Description", dataset_label(table, desc))
    return group


def _method(table: str, col: str, derivation: str, comment: str | None) -> ET.Element:
    """The MethodDef of a derived variable."""
    name = table.upper()
    method = ET.Element(_d("MethodDef"), {"OID": f"MT.{name}.{_oid_part(col)}",
                                          "Name": f"Algorithm for {name}.{col}", "Type": "Computation"})
    _translated(method, "Description", derivation or comment or f"Derived in the {table} model")
    return method


def _item_def(con, table: str, col: str, ctype: str, label: str) -> ET.Element:
    """The variable's ItemDef: DataType, Length (text and integers) or DisplayFormat (dates), Description."""
    dtype = data_type(ctype)
    attrs = {"OID": f"IT.{table.upper()}.{_oid_part(col)}", "Name": col, "SASFieldName": col[:8], "DataType": dtype}
    if dtype in ("text", "integer"):
        value = f"cast({_q(col)} as varchar)" if dtype == "text" else f"cast(abs({_q(col)}) as varchar)"
        length = con.execute(f"select max(length({value})) from main.{_q(table)}").fetchone()[0]
        attrs["Length"] = str(max(int(length or 1), 1))
    elif dtype in ("date", "datetime"):
        attrs[_d("DisplayFormat", DEF_NS)] = "DATE9." if dtype == "date" else "DATETIME20."
    item = ET.Element(_d("ItemDef"), attrs)
    _translated(item, "Description", label)
    return item


def _origin(item: ET.Element, origin: str, raw_item: str | None) -> None:
    """def:Origin of the ItemDef: Predecessor (the eCRF item) or Derived (naming the eCRF items it uses)."""
    orig = ET.SubElement(item, _d("Origin", DEF_NS), {"Type": origin})
    if origin == "Predecessor" or raw_item:
        _translated(orig, "Description", f"eCRF item {raw_item}" if origin == "Predecessor"
                    else f"Derived from eCRF item(s) including {raw_item}")


def _leaf(group: ET.Element, table: str, xpt_files: dict[str, str] | None) -> None:
    """def:leaf: the dataset's XPT file."""
    href = (xpt_files or {}).get(table, f"{table}.xpt")
    leaf = ET.SubElement(group, _d("leaf", DEF_NS), {"ID": f"LF.{table.upper()}", _d("href", XLINK_NS): href})
    ET.SubElement(leaf, _d("title", DEF_NS)).text = href


def _not_available(con, table: str, col: str, steps: list[tuple], comment: str | None) -> bool:
    """The variable has no source (no lineage step reads a table) and no value: not collected, said by its comment."""
    if not comment or any(s[3] for s in steps):
        return False
    return con.execute(f"select count({_q(col)}) from main.{_q(table)}").fetchone()[0] == 0


def _comment(table: str, col: str, comment: str) -> ET.Element:
    """The def:CommentDef of a variable without data (its column comment)."""
    element = ET.Element(_d("CommentDef", DEF_NS), {"OID": f"COM.{table.upper()}.{_oid_part(col)}"})
    _translated(element, "Description", comment)
    return element


def _dataset(con, table: str, xpt_files: dict[str, str] | None) -> tuple[ET.Element, list, list, list]:
    """One dataset's ItemGroupDef and its ItemDefs, CodeLists, MethodDefs and CommentDefs (with the methods)."""
    from warehouse.analyse.labels import dataset_labels

    rows = con.execute("select column_name, data_type, comment from duckdb_columns() where schema_name = 'main' "
                       "and table_name = ? order by column_index", [table]).fetchall()
    columns = [r[0] for r in rows]
    desc, grain = _catalog(con, table)
    keys = [g.strip() for g in grain.split(",") if g.strip() in columns]
    lineage = _lineage(con, table)
    labels = dataset_labels({r[0]: (r[2] or r[0]) for r in rows})
    name = table.upper()
    group = _item_group(table, _dataset_class(table, columns), keys, desc)
    items, codelists, methods, comments = [], [], [], []
    for i, (col, ctype, comment) in enumerate(rows, start=1):
        origin, raw_item, derivation = origin_of(lineage.get(col, []))
        comment_def = None
        if _not_available(con, table, col, lineage.get(col, []), comment):
            origin, raw_item, comment_def = "Not Available", None, _comment(table, col, comment or col)
        ref = {"ItemOID": f"IT.{name}.{_oid_part(col)}", "OrderNumber": str(i),
               "Mandatory": "Yes" if col in keys else "No"}
        if col in keys:
            ref["KeySequence"] = str(keys.index(col) + 1)
        if origin == "Derived":
            methods.append(_method(table, col, derivation, comment))
            ref["MethodOID"] = methods[-1].get("OID")
        ET.SubElement(group, _d("ItemRef"), ref)
        item = _item_def(con, table, col, ctype, labels.get(col) or col)
        if comment_def is not None:
            item.set(_d("CommentOID", DEF_NS), comment_def.get("OID"))
            comments.append(comment_def)
        codelist = _codelist(con, table, name, col, columns, data_type(ctype))
        if codelist is not None:
            codelists.append(codelist)
            ET.SubElement(item, _d("CodeListRef"), {"CodeListOID": codelist.get("OID")})
        _origin(item, origin, raw_item)
        items.append(item)
    _leaf(group, table, xpt_files)  # last: ODM's sequence puts def:leaf after the ItemRefs
    return group, items, codelists, methods + comments


def build_define(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] | None = None,
                 xpt_files: dict[str, str] | None = None, *, study_oid: str | None = None) -> ET.ElementTree:
    """The define.xml tree of the ADaM datasets present in ``main`` (``tables``, default DEFINE_TABLES)."""
    ET.register_namespace("", ODM_NS)
    ET.register_namespace("def", DEF_NS)
    ET.register_namespace("xlink", XLINK_NS)
    present = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
    tables = tuple(t for t in (tables or DEFINE_TABLES) if t in present)
    odm, mdv = _odm(_study_id(con, tables, study_oid))
    groups, items, codelists, methods = [], [], [], []
    for table in tables:
        group, its, cls, mts = _dataset(con, table, xpt_files)
        groups.append(group)
        items += its
        codelists += cls
        methods += mts
    # ODM order: ItemGroupDef, ItemDef, CodeList, MethodDef, def:CommentDef (Define-XML 2.1 schema sequence)
    comments = [m for m in methods if m.tag == _d("CommentDef", DEF_NS)]
    methods = [m for m in methods if m.tag != _d("CommentDef", DEF_NS)]
    mdv.extend(groups + items + codelists + methods + comments)
    tree = ET.ElementTree(odm)
    ET.indent(tree)
    return tree


def _codelist(con, table: str, name: str, col: str, columns: list[str], dtype: str) -> ET.Element | None:
    """A CodeList of the variable's distinct values: flags (*FL), coded variables (CODED_VARIABLES, with their
    CDISC codelist's NCI code) and PARAMCD (decoded by PARAM)."""
    coded = col in CODED_VARIABLES
    if dtype != "text" or not (col.endswith("FL") or coded or (col == "PARAMCD" and "PARAM" in columns)):
        return None
    oid = f"CL.{name}.{_oid_part(col)}"
    codelist = ET.Element(_d("CodeList"), {"OID": oid, "Name": f"{name} {col}", "DataType": "text"})
    if col == "PARAMCD":
        pairs = con.execute(f"select PARAMCD, min(PARAM) from main.{_q(table)} where PARAMCD is not null "
                            "group by 1 order by 1").fetchall()
        for i, (code, decode) in enumerate(pairs, start=1):
            cli = ET.SubElement(codelist, _d("CodeListItem"), {"CodedValue": str(code), "OrderNumber": str(i)})
            _translated(cli, "Decode", str(decode or code))
    else:
        values = [r[0] for r in con.execute(f"select distinct {_q(col)} from main.{_q(table)} "
                                            f"where {_q(col)} is not null order by 1").fetchall()]
        if not values:
            return None
        for i, value in enumerate(values, start=1):
            ET.SubElement(codelist, _d("EnumeratedItem"), {"CodedValue": str(value), "OrderNumber": str(i)})
        if coded and CODED_VARIABLES[col]:
            ET.SubElement(codelist, _d("Alias"), {"Context": "nci:ExtCodeID", "Name": CODED_VARIABLES[col]})
    return codelist


def write_define(con: duckdb.DuckDBPyConnection, path: Path, xpt_files: dict[str, str] | None = None,
                 tables: tuple[str, ...] | None = None) -> Path | None:
    """Write define.xml for the ADaM datasets present (None, nothing written, when there are none)."""
    tree = build_define(con, tables, xpt_files)
    if tree.getroot().find(f".//{_d('ItemGroupDef')}") is None:
        return None
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path


# ------------------------------------------------------------------------------------------------ checks


def structural_problems(path: Path) -> list[str]:
    """References that do not resolve (ItemOID, CodeListOID, MethodOID, def:ArchiveLocationID, def:StandardOID)
    and key sequences that are not 1..n per dataset; [] when none."""
    root = ET.parse(path).getroot()
    problems = []
    defined = {tag: {e.get("OID") for e in root.iter(_d(tag))} for tag in ("ItemDef", "CodeList", "MethodDef")}
    leaves = {e.get("ID") for e in root.iter(_d("leaf", DEF_NS))}
    standards = {e.get("OID") for e in root.iter(_d("Standard", DEF_NS))}
    for ref in root.iter(_d("ItemRef")):
        if ref.get("ItemOID") not in defined["ItemDef"]:
            problems.append(f"ItemRef {ref.get('ItemOID')} has no ItemDef")
        if ref.get("MethodOID") and ref.get("MethodOID") not in defined["MethodDef"]:
            problems.append(f"MethodOID {ref.get('MethodOID')} has no MethodDef")
    for ref in root.iter(_d("CodeListRef")):
        if ref.get("CodeListOID") not in defined["CodeList"]:
            problems.append(f"CodeListRef {ref.get('CodeListOID')} has no CodeList")
    for group in root.iter(_d("ItemGroupDef")):
        if group.get(_d("ArchiveLocationID", DEF_NS)) not in leaves:
            problems.append(f"{group.get('Name')}: def:ArchiveLocationID has no def:leaf")
        if group.get(_d("StandardOID", DEF_NS)) not in standards:
            problems.append(f"{group.get('Name')}: def:StandardOID has no def:Standard")
        seq = sorted(int(r.get("KeySequence")) for r in group.iter(_d("ItemRef")) if r.get("KeySequence"))
        if seq != list(range(1, len(seq) + 1)) or not seq:
            problems.append(f"{group.get('Name')}: KeySequence {seq} is not 1..n")
    return problems


def schema_errors(path: Path) -> list[str] | None:
    """Errors of the document against CDISC's Define-XML 2.1 schema (define2-1-0.xsd, which odmlib ships with
    the ODM 1.3.2 foundation it imports), validated with xmlschema; None when odmlib or xmlschema is absent."""
    try:
        import xmlschema
        from odmlib import schema_manager
    except ImportError:
        return None
    schema = xmlschema.XMLSchema(schema_manager.get_schema_path("define", "2.1"))
    return [str(e.reason or e.message) + f" at {e.path}" for e in schema.iter_errors(str(path))]
