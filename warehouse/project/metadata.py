"""`warehouse init`: what the export says about itself, read from the raw zone: the study's identity (ODM
GlobalVariables and site Study elements), labels as one short line, readable column names, each item's staging
type and the record id field."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl

MAX_LABEL = 90


def study_identity(export: Path, landed) -> dict[str, object]:
    """Study id, title and sites' names: from the export's ODM file (an ODM export, or the `project.xml` a REDCap
    export may carry) GlobalVariables (ProtocolName, StudyName) and site-level Study elements; else the export's
    folder (or file) name."""
    landing = Path(landed.landing_dir) if landed.landing_dir else None
    odm_files = sorted(landing.glob("*.xml")) if landing and landing.is_dir() else []
    names: dict[str, str] = {}
    protocol = name = None
    for path in odm_files:
        try:
            names, protocol, name = odm_study_names(path)
        except ET.ParseError:
            continue
        if name or protocol:
            break
    stem = export.stem if export.is_file() else export.name
    title = name or protocol or stem
    study_id = re.sub(r"[^A-Za-z0-9]+", "_", protocol or stem).strip("_").upper() or "STUDY"
    return {"id": study_id, "title": title, "site_names": names, "source": export.name}


def odm_study_names(path: Path) -> tuple[dict[str, str], str | None, str | None]:
    """(Study OID -> StudyName for every Study element, the first ProtocolName, the first StudyName), read
    incrementally and stopped at the first ClinicalData (the metadata comes first in an ODM file)."""
    names: dict[str, str] = {}
    protocol = first_name = None
    current: str | None = None
    for event, element in ET.iterparse(path, events=("start", "end")):
        tag = element.tag.rsplit("}", 1)[-1]
        if event == "start":
            if tag == "Study":
                current = element.get("OID")
            elif tag == "ClinicalData":
                break
            continue
        text = (element.text or "").strip()
        if tag == "StudyName" and text:
            first_name = first_name or text
            if current:
                names[current] = text
        elif tag == "ProtocolName" and text:
            protocol = protocol or text
        if tag in ("MetaDataVersion", "ItemDef", "CodeList"):
            element.clear()
    return names, protocol, first_name


def clean_label(text: str | None, fallback: str = "") -> str:
    """An item or form label as one short line: HTML tags and entities gone, spaces collapsed, trailing
    separators dropped, cut at a word boundary."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text or "")
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    text = re.sub(r"\s+", " ", text).strip(" -:;,")
    if not text:
        text = fallback.replace("_", " ").strip()
    if len(text) > MAX_LABEL:
        text = text[:MAX_LABEL].rsplit(" ", 1)[0].rstrip(" -:;,") + " ..."
    return text


def snake(text: str, limit: int = 40) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_")
    return name if name and name[0].isalpha() else f"x_{name}".rstrip("_")


def item_kind(row: dict | None, column: str, coded: set[str]) -> str:
    """The type staging gives the column (the staging contract of docs/contracts.md, from REDCap field and
    validation types or ODM DataTypes): checkbox, boolean, coded, datetime, date, integer, number or text."""
    if row is None:
        return "coded" if column.endswith("_complete") else "text"
    ftype = (row.get("field_type") or "").strip().lower()
    vtype = (row.get("validation") or "").strip().lower()
    if ftype == "checkbox":
        return "checkbox"
    if ftype in ("yesno", "truefalse", "boolean"):
        return "boolean"
    if ftype in ("radio", "dropdown") or (column in coded and ftype not in ("calc", "slider")):
        return "coded"
    if vtype.startswith("datetime") or ftype == "datetime":
        return "datetime"
    if vtype.startswith("date") or ftype == "date":
        return "date"
    if vtype == "integer" or ftype == "integer":
        return "integer"
    if vtype.startswith("number") or vtype == "float" or ftype in ("float", "double", "calc", "slider"):
        return "number"
    return "text"


def record_id_item(meta: dict[str, pl.DataFrame], fmt: str) -> str | None:
    """The record id field (the same values as subject_id): REDCap's first field; ODM from REDCap names it in
    the subjects' attributes (RecordIdField)."""
    if fmt == "redcap":
        items = meta["items"].sort("order")
        return items["item"][0] if items.height else None
    for text in meta["subjects"]["attributes"].drop_nulls().to_list():
        try:
            field_name = json.loads(text).get("RecordIdField")
        except (ValueError, AttributeError):
            continue
        if field_name:
            return field_name
    return None


def readable_names(columns: list[str]) -> dict[str, str]:
    """Source column -> readable base name. REDCap fields are already names (lowercased); ODM ItemOIDs lose an
    `I_` / `I.` prefix and a first segment every item of the table shares (OpenClinica's `I_DEMOG_DEM_AGE` ->
    `dem_age`)."""
    names = {c: c.lower() for c in columns}
    if columns and all(re.match(r"(?i)^i[._]", c) for c in columns):
        names = {c: re.sub(r"[^a-z0-9]+", "_", c[2:].lower()).strip("_") for c in columns}
        heads = {n.split("_", 1)[0] for n in names.values()}
        if len(heads) == 1 and all("_" in n for n in names.values()):
            names = {c: n.split("_", 1)[1] for c, n in names.items()}
    return {c: snake(n) if not re.fullmatch(r"[a-z][a-z0-9_]*", n) else n for c, n in names.items()}
