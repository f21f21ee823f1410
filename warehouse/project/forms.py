"""`warehouse init`: each form's staging columns, from its raw table's columns and their items' metadata: the keys
(nested ODM repeat keys read from the record's place in the file), then per item a readable name, its staging type,
a comment from its label and units, checkboxes one column per choice, coded items decoded beside their code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from warehouse.project.metadata import (
    clean_label,
    item_kind,
    readable_names,
    record_id_item,
    snake,
)
from warehouse.project.sql import case_sql, quote

KEYS = ("subject_id", "site_id", "event", "repeat_instance")
KEY_COMMENTS = {
    "subject_id": "Subject (record id)",
    "site_id": "Site (data access group / ODM site), null when the export has none",
    "event": "Event (unique event name / StudyEventOID)",
    "repeat_instance": "Repeat instance of a repeating form or event",
}
FORM_STATUS = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}
NESTED_KEY_SQL = "array_to_string(regexp_extract_all(_source_path, 'RepeatKey=''([^'']*)''', 1), '.')"
NESTED_KEY_COMMENT = ("Repeat keys, outermost first, as text (2.1: event repeat 2, row 1), read from the record's "
                      "place in the ODM file")


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


@dataclass
class ItemLookup:
    """The export's items and code lists as describe_form looks them up: by (form, item) and by item (the first
    form's, in dictionary order), code lists by item, the items flagged as identifiers and the record id field."""

    by_form: dict[tuple[str, str], dict]
    by_item: dict[str, dict]
    code_lists: dict[str, list[tuple[str, str]]]
    identifiers: set[str]
    record_id: str | None

    @classmethod
    def read(cls, meta: dict[str, pl.DataFrame], fmt: str) -> ItemLookup:
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
        return cls(by_form, by_item, code_lists, identifiers, record_id_item(meta, fmt))

    def item(self, table: str, column: str) -> dict | None:
        """The item a raw column holds; a checkbox choice column (`item___code`) its checkbox item's."""
        item = self.by_form.get((table, column)) or self.by_item.get(column)
        base = column.split("___")[0] if "___" in column else column
        if item is None and "___" in column and (self.by_form.get((table, base)) or self.by_item.get(base)):
            item = {**(self.by_form.get((table, base)) or self.by_item.get(base)), "field_type": "checkbox"}
        return item


@dataclass
class UniqueNames:
    """Output names not used yet in one model: a taken name gets `_2`, `_3`, ..."""

    taken: set[str] = field(default_factory=lambda: set(KEYS))

    def __call__(self, name: str) -> str:
        out, n = name, 2
        while out in self.taken:
            out, n = f"{name}_{n}", n + 1
        self.taken.add(out)
        return out


def key_columns(row: dict, meta: dict[str, pl.DataFrame], fmt: str, study_has_events: bool,
                events: list[str]) -> tuple[list[Column], bool]:
    """The form's key columns, and whether its repeat key nests (read from `_source_path`)."""
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
    return columns, nested


def item_columns(table: str, column: str, lookup: ItemLookup, base_names: dict[str, str],
                 unique: UniqueNames) -> list[Column]:
    """The staging columns of one raw column: a checkbox choice ticked, a coded item decoded and its code, else
    the item itself, named readably and commented from its label and units."""
    item = lookup.item(table, column)
    base = column.split("___")[0] if "___" in column else column
    kind = item_kind(item, column, set(lookup.code_lists))
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
        choice = (item or {}).get("choice_label") or dict(lookup.code_lists.get(base, [])).get(str(code)) or code
        return [Column(unique(f"{name}_{snake(clean_label(choice), 30)}"), source,
                       f"{label}: {clean_label(choice)} (ticked)", kind, column)]
    if kind == "coded":
        codes = lookup.code_lists.get(column) or (list(FORM_STATUS.items()) if status else [])
        if status:
            label = "Form status"
        decoded = unique(name)
        shown = ", ".join(f"{c} = {clean_label(t)}" for c, t in codes)
        code_comment = f"{label}: code" + (f" ({shown})" if codes and len(shown) <= 80 else "")
        return [Column(decoded, case_sql(source, codes) if codes else source,
                       f"{label} (decoded)" if codes else label, kind, column),
                Column(unique(f"{name}_cd"), source, code_comment, "code", column)]
    suffix = {"date": " (date)", "datetime": " (date-time)"}.get(kind, "")
    return [Column(unique(name), source, f"{label}{suffix}", kind, column)]


def describe_form(row: dict, raw_dir: Path, meta: dict[str, pl.DataFrame], fmt: str,
                  study_has_events: bool) -> Form:
    """A form's staging columns, from its raw table's columns and their items' metadata."""
    table = row["form"]
    raw_columns = list(pl.read_parquet_schema(raw_dir / f"{table}.parquet"))
    lookup = ItemLookup.read(meta, fmt)
    events = [e for e in (row.get("events") or []) if e]
    columns, nested = key_columns(row, meta, fmt, study_has_events, events)

    values = [c for c in raw_columns if c not in KEYS and not c.startswith("_")]
    left_out = [c for c in values if c in lookup.identifiers or c.split("___")[0] in lookup.identifiers]
    record_id = lookup.record_id
    kept_record_id = record_id if record_id in values and record_id not in left_out else None
    values = [c for c in values if c not in left_out and c != kept_record_id]
    base_names = readable_names([c.split("___")[0] if "___" in c else c for c in values])
    unique = UniqueNames()
    for column in values:
        columns += item_columns(table, column, lookup, base_names, unique)
    return Form(table, clean_label(row.get("label"), table.replace("_", " ").capitalize()), bool(row.get("repeating")),
                events, columns, left_out, kept_record_id, row.get("form_oid"), row.get("item_group"), nested)
