"""`warehouse init`: the SQL it writes, one staging model per form (`sql/staging/stg_<form>.sql`: readable names,
codes decoded, a comment per column) and the subjects mart (`sql/marts/subjects.sql`), and the quoting both use."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from warehouse.project.metadata import clean_label

if TYPE_CHECKING:
    from warehouse.project.forms import Column, Form

WITHDRAWAL_WORDS = re.compile(r"withdr|discontinu|early.?termin", re.IGNORECASE)


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
