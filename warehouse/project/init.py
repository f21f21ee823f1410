"""`warehouse init`: a study project folder written from an export's own metadata.

The export is landed first (`land_export`), then only the raw zone is read: the `_meta` tables (REDCap data
dictionary, events and repeating instruments, or ODM MetaDataVersion, normalised alike by the readers) and the
column names of each form's Parquet file. What it writes, every file short and meant to be edited:

    study.toml                      identity, export format and dialect, forms, sites, identifiers, dates;
                                    the time anchor and randomisation as commented choices
    sql/staging/stg_<form>.sql      one model per form: readable names, codes decoded, a comment per column
    sql/marts/subjects.sql          one row per subject: site, first and last date, forms and events with data
    expectations/README.md          which rules the engine generates at run time, where study rules go
    expectations/raw/structure.json every record placed (subject id, unique keys, known subject)
    expectations/staging/keys_*.json  the grain of each form's table is unique
    README.md                       the commands from export to published warehouse, and what to edit next

Same export, same bytes: nothing depends on time, paths of the data directory or dictionary order beyond the
export's own order. The staging models select from `src.<form>`, the tables the engine's staging step writes
(types from the metadata; see "Staging contract" in docs/architecture.md): they rename and decode, no casts.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

KEYS = ("subject_id", "site_id", "event", "repeat_instance")
KEY_COMMENTS = {
    "subject_id": "Subject (record id)",
    "site_id": "Site (data access group / ODM site), null when the export has none",
    "event": "Event (unique event name / StudyEventOID)",
    "repeat_instance": "Repeat instance of a repeating form or event",
}
FORM_STATUS = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}
ANCHOR_WORDS = re.compile(r"rand|enrol|consent|inclu|baseline|screen", re.IGNORECASE)
RANDOMISATION_WORDS = re.compile(r"rand|\barm\b|allocat|treatment.(arm|group)|study.group", re.IGNORECASE)
WITHDRAWAL_WORDS = re.compile(r"withdr|discontinu|early.?termin", re.IGNORECASE)
MAX_LABEL = 90
NESTED_KEY_SQL = "array_to_string(regexp_extract_all(_source_path, 'RepeatKey=''([^'']*)''', 1), '.')"
NESTED_KEY_COMMENT = ("Repeat keys, outermost first, as text (2.1: event repeat 2, row 1), read from the record's "
                      "place in the ODM file")


@dataclass
class InitResult:
    """What `init_project` wrote: the project folder, the export it read, and the files (relative, sorted)."""

    project: Path
    export_id: str
    format: str
    forms: list[str]
    files: list[str] = field(default_factory=list)


@dataclass
class Column:
    """One output column of a staging model."""

    name: str  # output name (readable snake_case)
    expression: str  # SQL over the `src` table's columns
    comment: str
    kind: str  # key | text | integer | number | date | datetime | boolean | coded | code | checkbox
    source: str  # the `src` column


@dataclass
class Form:
    table: str
    label: str
    repeating: bool
    events: list[str]
    columns: list[Column]
    identifiers: list[str]  # item columns left out: flagged as identifiers
    record_id: str | None  # the record id column left out (it is subject_id)
    form_oid: str | None
    item_group: str | None = None
    nested_key: bool = False  # ODM repeat keys nest ("2.1"): repeat_instance is read from the record's XML place

    @property
    def grain(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "key" and c.name != "site_id"]

    @property
    def dates(self) -> list[Column]:
        return [c for c in self.columns if c.kind in ("date", "datetime")]


# ----------------------------------------------------------------------------------------------- entry point


def init_project(export: Path, out: Path, *, data_dir: Path | None = None) -> InitResult:
    """Land ``export`` (in ``data_dir``, else a temporary directory) and write a study project into ``out``.

    ``out`` may exist; the files this writes are overwritten, others are left alone."""
    from warehouse.extract import land_export

    export, out = Path(export), Path(out)
    if data_dir is not None:
        return _init_from(land_export(export, Path(data_dir)), export, out)
    with tempfile.TemporaryDirectory(prefix="warehouse-init-") as tmp:
        return _init_from(land_export(export, Path(tmp)), export, out)


def _init_from(landed, export: Path, out: Path) -> InitResult:
    meta_dir = Path(landed.raw_dir) / "_meta"
    meta = {kind: pl.read_parquet(meta_dir / f"{kind}.parquet")
            for kind in ("items", "choices", "events", "forms", "subjects")}
    info = json.loads((meta_dir / "export.json").read_text("utf-8"))
    study = study_identity(export, landed)
    study_has_events = meta["events"].height > 0
    forms = [describe_form(row, Path(landed.raw_dir), meta, info["format"], study_has_events)
             for row in meta["forms"].sort("order").iter_rows(named=True)]
    files: dict[str, str] = {
        "study.toml": study_toml(study, info, forms, meta),
        "sql/marts/subjects.sql": subjects_sql(forms, study_has_events),
        "expectations/README.md": expectations_readme(),
        "expectations/raw/structure.json": raw_structure_suite(),
        "README.md": project_readme(study, export),
    }
    for form in forms:
        files[f"sql/staging/stg_{form.table}.sql"] = staging_sql(form, info["format"])
    for name, suite in key_suites(forms).items():
        files[f"expectations/staging/{name}.json"] = json.dumps(suite, indent=2, ensure_ascii=False) + "\n"
    for relative, text in sorted(files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return InitResult(out, landed.export_id, info["format"], [f.table for f in forms], sorted(files))


# ----------------------------------------------------------------------------------------------- metadata


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
    """The type staging gives the column (the staging contract of docs/architecture.md, from REDCap field and
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


def describe_form(row: dict, raw_dir: Path, meta: dict[str, pl.DataFrame], fmt: str,
                  study_has_events: bool) -> Form:
    """A form's staging columns, from its raw table's columns and their items' metadata."""
    table = row["form"]
    raw_columns = list(pl.read_parquet_schema(raw_dir / f"{table}.parquet"))
    items = meta["items"].sort("order")
    by_form = {(r["form"], r["item"]): r for r in items.iter_rows(named=True)}
    by_item: dict[str, dict] = {}
    for r in items.iter_rows(named=True):
        by_item.setdefault(r["item"], r)
    choices = meta["choices"].sort("order") if "order" in meta["choices"].columns else meta["choices"]
    code_lists: dict[str, list[tuple[str, str]]] = {}
    for r in choices.iter_rows(named=True):
        code_lists.setdefault(r["item"], []).append((str(r["code"]), r["label"] or str(r["code"])))
    identifiers = {r["item"] for r in items.iter_rows(named=True) if r.get("identifier")}
    record_id = record_id_item(meta, fmt)

    events = [e for e in (row.get("events") or []) if e]
    repeating_events = set(meta["events"].filter(pl.col("repeating").fill_null(False))["event"].to_list()) \
        if meta["events"].height else set()
    keys = ["subject_id", "site_id"]
    if study_has_events:
        keys.append("event")
    if row.get("repeating") or repeating_events.intersection(events):
        keys.append("repeat_instance")
    columns = [Column(k, k, KEY_COMMENTS[k], "key", k) for k in keys]
    # ODM: a repeating form or item group inside a repeating event has nested keys ("2.1": event 2, row 1) that
    # `src.repeat_instance` (an integer) cannot hold; the key is read from `_source_path` instead.
    nested = fmt == "odm" and "repeat_instance" in keys and bool(repeating_events.intersection(events)) \
        and bool(row.get("repeating"))
    if nested:
        columns[-1] = Column("repeat_instance", NESTED_KEY_SQL, NESTED_KEY_COMMENT, "key", "_source_path")
    taken = set(KEYS)

    values = [c for c in raw_columns if c not in KEYS and not c.startswith("_")]
    left_out = [c for c in values if c in identifiers or c.split("___")[0] in identifiers]
    kept_record_id = record_id if record_id in values and record_id not in left_out else None
    values = [c for c in values if c not in left_out and c != kept_record_id]
    base_names = readable_names([c.split("___")[0] if "___" in c else c for c in values])

    def unique(name: str) -> str:
        out, n = name, 2
        while out in taken:
            out, n = f"{name}_{n}", n + 1
        taken.add(out)
        return out

    coded_items = set(code_lists)
    for column in values:
        item = by_form.get((table, column)) or by_item.get(column)
        base = column.split("___")[0] if "___" in column else column
        if item is None and "___" in column and (by_form.get((table, base)) or by_item.get(base)):
            item = {**(by_form.get((table, base)) or by_item.get(base)), "field_type": "checkbox"}
        kind = item_kind(item, column, coded_items)
        status = (item or {}).get("field_type") == "form_status" or column == f"{table}_complete" \
            or (item is None and column.endswith("_complete"))
        label = clean_label((item or {}).get("label"), base)
        units = ((item or {}).get("units") or "").strip()
        if units and units.lower() not in label.lower():
            label = f"{label} ({units})"
        name = "form_status" if status else base_names.get(base, snake(base))
        source = quote(column)
        if kind == "checkbox":
            code = (item or {}).get("choice_code") or column.split("___", 1)[1]
            choice = (item or {}).get("choice_label") or dict(code_lists.get(base, [])).get(str(code)) or code
            columns.append(Column(unique(f"{name}_{snake(clean_label(choice), 30)}"), source,
                                  f"{label}: {clean_label(choice)} (ticked)", kind, column))
        elif kind == "coded":
            codes = code_lists.get(column) or (list(FORM_STATUS.items()) if status else [])
            if status:
                label = "Form status"
            decoded = unique(name)
            shown = ", ".join(f"{c} = {clean_label(t)}" for c, t in codes)
            code_comment = f"{label}: code" + (f" ({shown})" if codes and len(shown) <= 80 else "")
            columns.append(Column(decoded, case_sql(source, codes) if codes else source,
                                  f"{label} (decoded)" if codes else label, kind, column))
            columns.append(Column(unique(f"{name}_cd"), source, code_comment, "code", column))
        else:
            suffix = {"date": " (date)", "datetime": " (date-time)"}.get(kind, "")
            columns.append(Column(unique(name), source, f"{label}{suffix}", kind, column))
    return Form(table, clean_label(row.get("label"), table.replace("_", " ").capitalize()), bool(row.get("repeating")), events, columns,
                left_out, kept_record_id, row.get("form_oid"), row.get("item_group"), nested)


# ----------------------------------------------------------------------------------------------- SQL


def _reserved() -> set[str]:
    import duckdb
    from sqlglot.dialects.duckdb import DuckDB

    words = {w.lower() for (w,) in duckdb.sql(
        "select keyword_name from duckdb_keywords() where keyword_category = 'reserved'").fetchall()}
    return words | {w.lower() for w in DuckDB.Tokenizer.KEYWORDS if re.fullmatch(r"[A-Za-z_]+", w)}


_RESERVED: set[str] | None = None


def quote(name: str) -> str:
    """An identifier as SQL: bare when it is a plain lowercase-safe name and no keyword, else double-quoted."""
    global _RESERVED
    if _RESERVED is None:
        _RESERVED = _reserved()
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def case_sql(source: str, codes: list[tuple[str, str]]) -> str:
    whens = [f"when {literal(code)} then {literal(clean_label(label, code))}" for code, label in codes]
    one_line = f"case {source} {' '.join(whens)} end"
    if len(one_line) <= 90:
        return one_line
    inner = "\n".join(f"            {w}" for w in whens)
    return f"case {source}\n{inner}\n        end"


def grain_text(form: Form) -> str:
    parts = {"subject_id": "subject", "event": "event", "repeat_instance": "repeat instance"}
    named = [parts[k] for k in form.grain]
    return "one row per " + (" and ".join(named) if len(named) < 3 else f"{named[0]}, {named[1]} and {named[2]}")


def staging_sql(form: Form, fmt: str) -> str:
    origin = f"ODM form {form.form_oid}" if fmt == "odm" and form.form_oid else f"REDCap instrument {form.table}"
    if form.item_group:
        origin += f", item group {form.item_group}"
    lines = [
        f"-- description: {form.label} ({origin}): {grain_text(form)}.",
        "-- materialized: table",
        f"-- grain: {', '.join(form.grain)}",
        "-- tags: staging",
        "-- columns:",
    ]
    lines += [f"--   {c.name}: {c.comment}" for c in form.columns]
    lines += ["with source as (", f"    select * from src.{quote(form.table)}", "),", "", "renamed as (",
              "    select"]
    if form.identifiers:
        lines.append(f"        -- left out, flagged as identifiers (staging drops them): {', '.join(form.identifiers)}")
    if form.record_id:
        lines.append(f"        -- left out: {form.record_id}, the record id (it is subject_id)")
    selects: list[str] = ["        -- keys"]
    items_started = False
    for column in form.columns:
        if column.kind != "key" and not items_started:
            selects.append("        -- items")
            items_started = True
        alias = quote(column.name)
        text = column.expression if column.expression == alias else f"{column.expression} as {alias}"
        selects.append(f"        {text},")
    last = max(i for i, s in enumerate(selects) if not s.lstrip().startswith("--"))
    selects[last] = selects[last][:-1]
    lines += selects
    lines += ["    from source", ")", "", "select * from renamed", ""]
    return "\n".join(lines)


def withdrawal_item(forms: list[Form]) -> tuple[Form, Column] | None:
    """An obvious end-of-study / withdrawal item: a date or yes/no item named or labelled like withdrawal."""
    for form in forms:
        for column in form.columns:
            if column.kind in ("date", "datetime", "boolean") and (
                    WITHDRAWAL_WORDS.search(column.source) or WITHDRAWAL_WORDS.search(column.comment)):
                return form, column
    return None


def subjects_sql(forms: list[Form], study_has_events: bool) -> str:
    withdrawal = withdrawal_item(forms)
    lines = [
        ("-- description: One row per subject with a record on any form: site, first and last date recorded, "
         "forms and events with a record."),
        "-- materialized: table",
        "-- grain: subject_id",
        "-- tags: marts, subject-level",
        "-- columns:",
        "--   subject_id: Subject (record id)",
        "--   site_id: Site (data access group / ODM site); the first in sort order if records name several",
        "--   first_date: Earliest date recorded on any form (every date and date-time item)",
        "--   last_date: Latest date recorded on any form (every date and date-time item)",
        "--   n_forms: Number of forms with a record",
    ]
    if study_has_events:
        lines.append("--   n_events: Number of events with a record")
    if withdrawal:
        form, column = withdrawal
        lines.append(f"--   withdrawn: Withdrawn: {form.table}.{column.name} "
                     + ("is true" if column.kind == "boolean" else "is entered"))
    lines.append("with records as (")
    if not withdrawal:
        lines.append("    -- no end-of-study or withdrawal item is obvious in the metadata: add a `withdrawn` "
                     "column when the study has one")
    parts = []
    for form in forms:
        dates = [quote(c.name) if c.kind == "date" else f"cast({quote(c.name)} as date)" for c in form.dates]
        if not dates:
            first = last = "null::date"
        elif len(dates) == 1:
            first = last = dates[0]
        else:
            first, last = f"least({', '.join(dates)})", f"greatest({', '.join(dates)})"
        event = " event," if study_has_events else ""
        parts.append(f"    select subject_id, site_id,{event} {literal(form.table)} as form,\n"
                     f"        {first} as first_date,\n        {last} as last_date\n"
                     f"    from stg_{form.table}")
    lines.append("\n    union all\n".join(parts))
    lines.append(")" + ("," if withdrawal else ""))
    if withdrawal:
        form, column = withdrawal
        test = quote(column.name) if column.kind == "boolean" else f"{quote(column.name)} is not null"
        lines += ["", "withdrawal as (",
                  f"    select subject_id, bool_or({test}) as withdrawn",
                  f"    from stg_{form.table}", "    group by subject_id", ")"]
    lines += ["", "select", "    records.subject_id,", "    min(records.site_id) as site_id,",
              "    min(records.first_date) as first_date,", "    max(records.last_date) as last_date,"]
    selects = ["    count(distinct records.form) as n_forms"]
    if study_has_events:
        selects.append("    count(distinct records.event) as n_events")
    if withdrawal:
        selects.append("    coalesce(bool_or(withdrawal.withdrawn), false) as withdrawn")
    lines.append(",\n".join(selects))
    lines.append("from records")
    if withdrawal:
        lines.append("left join withdrawal on withdrawal.subject_id = records.subject_id")
    lines += ["group by records.subject_id", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- study.toml


def toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def toml_key(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else toml_str(text)


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def wrapped_list(values: list[str], indent: int, width: int = 116) -> str:
    """A TOML array that starts `indent` characters into its line, wrapped onto indented lines when long (an
    array may span lines, also inside an inline table)."""
    one_line = toml_list(values)
    if indent + len(one_line) <= width or len(values) <= 1:
        return one_line
    lines, line = [], "    "
    for value in values:
        text = toml_str(value) + ","
        if len(line) + len(text) > width and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += text + " "
    lines.append(line.rstrip().rstrip(","))
    return "[\n" + "\n".join(lines) + "\n]"


def dialect_lines(info: dict) -> list[str]:
    records = [f for f in info.get("files", []) if f.get("role") == "records"]
    if not records:
        return ["# (an XML file: no CSV dialect)"]
    first = records[0]
    delimiter = {"\t": "tab"}.get(first.get("delimiter"), first.get("delimiter") or ",")
    return [
        "# Detected from the files (uncomment a key only when detection gets it wrong):",
        f"# encoding = {toml_str(first.get('encoding') or 'utf-8')}" + ("   # with a BOM" if first.get("bom") else ""),
        f"# delimiter = {toml_str(delimiter)}",
        f"# decimal_comma = {'true' if info.get('decimal_comma') else 'false'}",
    ]


def study_toml(study: dict, info: dict, forms: list[Form], meta: dict[str, pl.DataFrame]) -> str:
    out = [
        f"# Study project written by `warehouse init` from {study['source']} (export {info['export_id']}).",
        "# Edit freely: the engine reads this file at every build. Commented tables are choices still to make.",
        "",
        "[study]",
        f"id = {toml_str(study['id'])}",
        f"title = {toml_str(study['title'])}",
        "",
        "[export]",
        f"format = {toml_str(info['format'])}   # redcap (CSV + data dictionary) or odm (CDISC ODM XML)",
        *dialect_lines(info),
        "",
        "[forms]",
        "# table = { label, repeating, events }: one `src` table and one staging model (sql/staging) per form",
    ]
    for form in forms:
        head = (f"{toml_key(form.table)} = {{ label = {toml_str(form.label)}, repeating = "
                f"{'true' if form.repeating else 'false'}, events = ")
        out.append(head + wrapped_list(form.events, len(head)) + " }")
    out += ["", "[sites]", "# site id = name: REDCap data access groups / ODM sites found in the export"]
    sites = sorted({s for s in meta["subjects"]["site_id"].to_list() if s})
    if not sites:
        out.append("# (none: the export has no sites)")
    for site in sites:
        out.append(f"{toml_key(site)} = {toml_str(study['site_names'].get(site, site))}")
    out += ["", "[identifiers]",
            "# form = [items]: flagged as identifiers in the metadata; staging drops them, nothing downstream sees them"]
    flagged = [f for f in forms if f.identifiers]
    if not flagged:
        out.append("# (none flagged)")
    for form in flagged:
        out.append(f"{toml_key(form.table)} = {toml_list(form.identifiers)}")
    out += ["", "[datetimes]", "# form = { date = [items], datetime = [items] }: typed by staging from the metadata"]
    for form in forms:
        parts = []
        for kind in ("date", "datetime"):
            items = [c.source for c in form.dates if c.kind == kind]
            if items:
                head = f"{toml_key(form.table)} = {{ " if not parts else ""
                parts.append(f"{kind} = " + wrapped_list(items, len(head) + len(kind) + 3))
        if parts:
            out.append(f"{toml_key(form.table)} = {{ {', '.join(parts)} }}")
    out += ["", *anchor_lines(forms), "", *randomisation_lines(forms, meta), ""]
    return "\n".join(out)


def anchor_lines(forms: list[Form]) -> list[str]:
    dates = [(f, c) for f in forms for c in f.dates]
    ranked = sorted(dates, key=lambda fc: (0 if ANCHOR_WORDS.search(f"{fc[1].source} {fc[1].comment}") else 1,
                                           0 if fc[1].kind == "datetime" else 1))
    out = ["# [time]",
           "# Study time zero (H0): staging adds `<item>_hrs`, hours since each subject's anchor, to every",
           "# date-time item. Choose the item (randomisation, enrolment or consent date-time), then uncomment."]
    if not ranked:
        return out + ["# (the export has no date or date-time item)"]
    best_form, best = ranked[0]
    out += [f"# anchor_form = {toml_str(best_form.table)}", f"# anchor_item = {toml_str(best.source)}",
            "# candidates:"]
    out += [f"#   {f.table}.{c.source}: {c.comment}" for f, c in ranked[:8]]
    if len(ranked) > 8:
        out.append(f"#   ... and {len(ranked) - 8} more date items ([datetimes] above)")
    return out


def randomisation_lines(forms: list[Form], meta: dict[str, pl.DataFrame]) -> list[str]:
    out = ["# [randomisation]",
           "# Where each subject's arm is recorded (blinded builds hide it), and the arms. Uncomment and choose."]
    candidates = [(f, c) for f in forms for c in f.columns
                  if c.kind in ("coded", "text")
                  and RANDOMISATION_WORDS.search(f"{c.source} {c.comment}")]
    if candidates:
        form, column = candidates[0]
        out += [f"# form = {toml_str(form.table)}", f"# item = {toml_str(column.source)}", "# candidates:"]
        out += [f"#   {f.table}.{c.source}: {c.comment}" for f, c in candidates[:8]]
    else:
        out.append("# (no item named like randomisation, arm or treatment in the metadata)")
    events = meta["events"]
    if events.height and "arm" in events.columns:
        arms = events.filter(pl.col("arm").is_not_null()).unique("arm", keep="first", maintain_order=True)
        if arms.height:
            pairs = ", ".join(f"{toml_str(str(r['arm']))} = {toml_str(r['arm_label'] or str(r['arm']))}"
                              for r in arms.iter_rows(named=True))
            out.append(f"# arms = {{ {pairs} }}   # the export's design arms (REDCap arms)")
    return out


# ----------------------------------------------------------------------------------------------- expectations


def key_suites(forms: list[Form]) -> dict[str, dict]:
    """One staging suite per grain: the forms whose typed table has that grain, keys unique and subject given."""
    by_grain: dict[tuple[str, ...], list[str]] = {}
    for form in forms:
        if not form.nested_key:  # src.repeat_instance cannot hold its key: raw/structure.json checks it
            by_grain.setdefault(tuple(form.grain), []).append(form.table)
    suites = {}
    for grain, tables in sorted(by_grain.items(), key=lambda kv: (len(kv[0]), kv[0])):
        name = "keys_" + "_".join({"subject_id": "subject", "event": "event", "repeat_instance": "instance"}[k]
                                  for k in grain)
        words = grain_text(Form("", "", False, [], [Column(k, k, "", "key", k) for k in grain], [], None, None))
        unique = ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": grain[0]}}
                  if len(grain) == 1 else
                  {"type": "expect_compound_columns_to_be_unique",
                   "kwargs": {"column_list": list(grain), "ignore_row_if": "never"}})
        unique["meta"] = {"severity": "error", "rule": f"{words}: the grain of the staging model",
                          "field": ", ".join(grain),
                          "message": "{form}: more than one record for " + ", ".join(grain) + " ({where})"}
        suites[name] = {
            "name": f"staging_{name}",
            "meta": {"table": sorted(tables),
                     "description": f"Typed forms with {words}: the keys their staging models declare as grain."},
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "subject_id"},
                 "meta": {"severity": "error", "rule": "every record has a subject id"}},
                unique,
            ],
        }
    return suites


def raw_structure_suite() -> str:
    suite = {
        "name": "raw_structure",
        "meta": {
            "table": "*",
            "description": "Every raw record can be placed: a subject id, one record per subject, event and "
                           "repeat instance, a known subject. Per-item rules are generated at run time "
                           "(see ../README.md).",
        },
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "subject_id"},
             "meta": {"severity": "error", "rule": "every record has a subject id",
                      "message": "{form}: a record without subject id ({where})"}},
            {"type": "expect_compound_columns_to_be_unique",
             "kwargs": {"column_list": ["subject_id", "event", "repeat_instance"], "ignore_row_if": "never"},
             "meta": {"severity": "error", "rule": "one record per subject, event and repeat instance",
                      "field": "subject_id, event, repeat_instance",
                      "message": "{form}: more than one record ({where}): duplicate record, keep one in the eCRF"}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "subject_id", "value_set": {"$PARAMETER": "known_subjects"}},
             "meta": {"severity": "error", "rule": "every record's subject is in the subject list (the first form)",
                      "message": "{form}: subject {subject_id} is not in the subject list ({where})"}},
        ],
    }
    return json.dumps(suite, indent=2, ensure_ascii=False) + "\n"


def expectations_readme() -> str:
    return """# Expectations

Great Expectations suites as JSON, one file per suite, by stage (the format: the engine's expectations/README.md).

Generated by the engine at every build from the export's metadata, so not written here:
- raw `raw_dictionary_<form>`: required items present, values typeable for their validation type, codes in their
  code list, checkboxes 0/1, `<form>_complete` in 0/1/2;
- staging `staging_dictionary_ranges_<form>`: the dictionary's min/max on typed numeric columns (a suite here
  that gives a column both bounds replaces it).

Written by `warehouse init`, edit freely:
- `raw/structure.json`: every record has a subject, one record per subject, event and instance, a known subject;
- `staging/keys_*.json`: each typed form's keys (the grain of its staging model) are unique.

Add study rules here: plausible ranges with protocol limits, date order (end after start), visit windows,
cross-form consistency. `raw/` runs on the forms as exported (text), `staging/` on the typed `src` tables (item
names as exported), `marts/` on the marts. Each expectation needs `meta.severity` (error gates the publish,
warning informs) and `meta.rule` (one line, the data manager's wording).
"""


def project_readme(study: dict, export: Path) -> str:
    return f"""# {study['title']}

Study project written by `warehouse init` from `{export.name}`: the engine builds it like the demo study.

| path | what |
|---|---|
| `study.toml` | identity, export format, forms, sites, identifiers, dates; time anchor and randomisation to choose |
| `sql/staging/` | one model per form: readable names, codes decoded (`<item>` label, `<item>_cd` code) |
| `sql/marts/subjects.sql` | one row per subject |
| `expectations/` | validation suites (README there: what the engine generates itself) |

From export to published warehouse:

```sh
warehouse extract --export EXPORT --data-dir data            # land it, list forms, rows and subjects
warehouse compile --project .                                # every model against the staged columns
warehouse build --project . --export EXPORT --data-dir data  # stage, transform, validate, publish
warehouse query --data-dir data "select * from subjects"     # read the published warehouse
```

What to edit next:
1. `study.toml`: choose `[time]` (the anchor) and `[randomisation]`, check `[identifiers]`.
2. `sql/staging/`: rename columns to the study's (CDISC) names, drop what is not needed.
3. `sql/intermediate/` and `sql/marts/`: derivations and analysis datasets, read from the staging models.
4. `expectations/`: protocol ranges, date order and windows.
"""
