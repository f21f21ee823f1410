"""The change report between two raw snapshots: per form, records added, removed and changed, with the
field-level old -> new values. This is what a data manager reviews after each transfer.

Identifier items (flagged ``identifier`` in either snapshot's ``_meta/items.parquet``: REDCap "Identifier?",
ODM ``redcap:Identifier``) never show their values outside the raw zone: a changed identifier field is reported
as changed, its old and new values read ``value withheld (identifier)`` (empty stays empty). The values are
compared inside the query; only the withheld text comes out of it.

Records are keyed by (subject_id, event, repeat_instance); rows are compared as distinct rows, so an
identical duplicate (landed twice, see the readers) is one record. Every non-key, non-provenance column
is a field, ``site_id`` included (a subject moved to another site is a change). A field that exists in
one snapshot only (the dictionary changed) reads as empty in the other. A form that exists in one snapshot
only has all its records added (or removed).

The comparison is one DuckDB query over the two snapshots' Parquet files (hash joins, spilling to disk
when needed), so it does not hold either export in Python memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from .rawzone import PROVENANCE_COLUMNS, list_snapshots, read_export_json, snapshot_dir

RECORD_KEYS = ["subject_id", "event", "repeat_instance"]
IDENTIFIER_WITHHELD = "value withheld (identifier)"  # the wording of warehouse.validate.identifiers
CHANGE_KINDS = ("added", "removed", "changed")
CHANGES_SCHEMA = {
    "form": pl.String, "change": pl.String, "subject_id": pl.String, "event": pl.String,
    "repeat_instance": pl.String, "field": pl.String, "old_value": pl.String, "new_value": pl.String,
}
TABLE = "main.export_changes"
TABLE_COMMENT = ("Change report of the raw export: records added, removed and changed (field-level old -> new "
                 "values) between the previous snapshot and this build's export")
COLUMN_COMMENTS = {
    "form": "Raw table (REDCap instrument / ODM form) of the record",
    "change": "added | removed | changed",
    "subject_id": "Subject (record id / SubjectKey)",
    "event": "Event (REDCap unique event name / ODM event); null in a classic project",
    "repeat_instance": "Repeat instance; null when not repeating",
    "field": "Changed field (column of the raw table); null for an added or removed record",
    "old_value": "Value in the previous snapshot, text as exported (null = empty; an identifier's value is withheld)",
    "new_value": "Value in this snapshot, text as exported (null = empty; an identifier's value is withheld)",
    "from_export_id": "Previous snapshot (export id); null when this export is the first",
    "to_export_id": "This build's snapshot (export id)",
}


class SnapshotNotFound(LookupError):
    """An export id that is not a landed snapshot; the message is one line naming the ones there are."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def resolve_snapshot(data_dir: Path, export_id: str, snapshots: list[dict[str, Any]] | None = None) -> str:
    """An export id, or a unique prefix of one, -> the export id; else SnapshotNotFound."""
    snapshots = list_snapshots(data_dir) if snapshots is None else snapshots
    ids = [s["export_id"] for s in snapshots]
    if export_id in ids:
        return export_id
    hits = [i for i in ids if export_id and i.startswith(export_id)]
    if len(hits) == 1:
        return hits[0]
    raw = Path(data_dir) / "raw"
    if len(hits) > 1:
        raise SnapshotNotFound(f"export id {export_id!r} is ambiguous under {raw}: {', '.join(hits)}")
    have = ", ".join(ids[-5:]) if ids else "none"
    raise SnapshotNotFound(f"no snapshot {export_id!r} under {raw} (latest snapshots: {have})")


def previous_snapshot(data_dir: Path, export_id: str) -> str | None:
    """The snapshot landed just before ``export_id`` (None for the first one)."""
    snapshots = list_snapshots(data_dir)
    export_id = resolve_snapshot(data_dir, export_id, snapshots)
    ids = [s["export_id"] for s in snapshots]
    k = ids.index(export_id)
    return ids[k - 1] if k > 0 else None


def _tables(data_dir: Path, export_id: str) -> dict[str, tuple[Path, list[str]]]:
    """Raw tables of a snapshot in form order: name -> (parquet path, field columns)."""
    d = snapshot_dir(data_dir, export_id)
    order: dict[str, int] = {}
    forms_meta = d / "_meta" / "forms.parquet"
    if forms_meta.is_file():
        order = {f: k for k, f in enumerate(pl.read_parquet(forms_meta, columns=["form"])["form"].to_list())}
    out = {}
    for path in sorted(d.glob("*.parquet"), key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        names = pq.read_schema(path).names
        fields = [c for c in names if c not in RECORD_KEYS and c not in PROVENANCE_COLUMNS]
        out[path.stem] = (path, fields)
    return out


def identifier_fields(data_dir: Path, export_id: str) -> set[str]:
    """Items flagged as identifiers in a snapshot's metadata (empty when it has no items table)."""
    from warehouse.stage.typed import identifier_items

    items = snapshot_dir(data_dir, export_id) / "_meta" / "items.parquet"
    return identifier_items(pl.read_parquet(items)) if items.is_file() else set()


def snapshot_forms(data_dir: Path, export_id: str) -> list[str]:
    """The raw tables of a snapshot, in form order."""
    return list(_tables(data_dir, export_id))


def _form_sql(form: str, old: tuple[Path, list[str]] | None, new: tuple[Path, list[str]] | None,
              identifiers: set[str] = frozenset()) -> str:
    from warehouse.stage.typed import is_identifier

    fields = list(dict.fromkeys((old[1] if old else []) + (new[1] if new else [])))
    fields = ["site_id"] + [f for f in fields if f != "site_id"] if "site_id" in fields else fields
    def side(t: tuple[Path, list[str]] | None) -> str:
        if t is None:
            cols = ", ".join([f"null::varchar as {_ident(c)}" for c in RECORD_KEYS + fields])
            return f"select {cols} where false"
        have = set(t[1])
        cols = ", ".join([_ident(k) for k in RECORD_KEYS]
                         + [_ident(f) if f in have else f"null::varchar as {_ident(f)}" for f in fields])
        return f"select distinct {cols} from read_parquet({_lit(str(t[0]))})"

    on = " and ".join(f"o.{_ident(k)} is not distinct from n.{_ident(k)}" for k in RECORD_KEYS)
    differs = " or ".join(f"o.{_ident(f)} is distinct from n.{_ident(f)}" for f in fields) or "false"
    pairs = ", ".join(f"{{'f': {_lit(f)}, 'p': {k}, 'o': o.{_ident(f)}, 'n': n.{_ident(f)}, "
                      f"'w': {'true' if is_identifier(f, identifiers) else 'false'}}}"
                      for k, f in enumerate(fields))

    def shown(side: str) -> str:  # an identifier's value never leaves the query
        return f"case when x.c.w and x.c.{side} is not null then {_lit(IDENTIFIER_WITHHELD)} else x.c.{side} end"

    ko = ", ".join(f"o.{_ident(k)}" for k in RECORD_KEYS)
    kn = ", ".join(f"n.{_ident(k)}" for k in RECORD_KEYS)
    kx = ", ".join(f"x.{_ident(k)}" for k in RECORD_KEYS)
    f = _lit(form)
    changed = (f"select {f} as form, 'changed' as change, {kx}, x.c.f as field, {shown('o')} as old_value, "
               f"{shown('n')} as new_value, x.c.p as field_order from (select {kn}, unnest([{pairs}]) as c from o join n "
               f"on {on} where {differs}) x where x.c.o is distinct from x.c.n") if fields else None
    parts = [
        f"select {f} as form, 'added' as change, {kn}, null::varchar as field, null::varchar as old_value, "
        f"null::varchar as new_value, -1 as field_order from n anti join o on {on}",
        f"select {f} as form, 'removed' as change, {ko}, null::varchar, null::varchar, null::varchar, -1 "
        f"from o anti join n on {on}",
    ]
    if changed:
        parts.append(changed)
    body = " union all ".join(f"({p})" for p in parts)
    return f"(with o as ({side(old)}), n as ({side(new)}) {body})"


def changes_sql(data_dir: Path, from_id: str, to_id: str) -> str:
    """The change report as one SELECT (columns of CHANGES_SCHEMA), ordered for reading."""
    old, new = _tables(data_dir, from_id), _tables(data_dir, to_id)
    identifiers = identifier_fields(data_dir, from_id) | identifier_fields(data_dir, to_id)
    forms = list(dict.fromkeys([*new, *old]))
    parts = [f"select {k} as form_order, * from {_form_sql(form, old.get(form), new.get(form), identifiers)}"
             for k, form in enumerate(forms)]
    cols = ", ".join(_ident(c) for c in CHANGES_SCHEMA)
    return (f"select {cols} from ({' union all '.join(parts)}) "
            "order by form_order, case change when 'added' then 0 when 'removed' then 1 else 2 end, "
            "subject_id, event nulls first, try_cast(split_part(repeat_instance, '.', 1) as bigint) nulls first, "
            "repeat_instance nulls first, field_order")


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.sql("set enable_progress_bar = false")
    return con


def compare_snapshots(data_dir: Path, from_id: str, to_id: str) -> pl.DataFrame:
    """Records added, removed and changed between two snapshots, one row per added / removed record and
    one per changed field: form, change, subject_id, event, repeat_instance, field, old_value, new_value (an
    identifier item's values read IDENTIFIER_WITHHELD).

    Export ids may be given as unique prefixes; an unknown one raises SnapshotNotFound.
    """
    snapshots = list_snapshots(data_dir)
    from_id = resolve_snapshot(data_dir, from_id, snapshots)
    to_id = resolve_snapshot(data_dir, to_id, snapshots)
    with _connect() as con:
        df = con.sql(changes_sql(data_dir, from_id, to_id)).pl()
    return df.cast(CHANGES_SCHEMA) if df.height else pl.DataFrame(schema=CHANGES_SCHEMA)


def change_summary(df: pl.DataFrame, forms: list[str] | None = None) -> pl.DataFrame:
    """Per form: records added, removed, changed, and fields changed (in ``forms`` order, with zeros for
    forms without a change, when ``forms`` is given; else the forms of ``df`` in their order)."""
    order = list(dict.fromkeys((forms or []) + df.get_column("form").unique(maintain_order=True).to_list()))
    counts = df.group_by("form").agg(
        (pl.col("change") == "added").sum().alias("added"),
        (pl.col("change") == "removed").sum().alias("removed"),
        pl.struct(RECORD_KEYS).filter(pl.col("change") == "changed").n_unique().alias("changed"),
        (pl.col("change") == "changed").sum().alias("fields_changed"),
    )
    base = pl.DataFrame({"form": order}, schema={"form": pl.String})
    return (base.join(counts, on="form", how="left", maintain_order="left")
            .with_columns(pl.col("added", "removed", "changed", "fields_changed").fill_null(0).cast(pl.Int64)))


def write_changes_table(con: duckdb.DuckDBPyConnection, data_dir: Path, export_id: str) -> int:
    """Store the change report between the snapshot landed before ``export_id`` and ``export_id`` as table
    ``main.export_changes`` in ``con`` (replaced if it exists; empty, with its columns, when ``export_id``
    is the first snapshot). Columns: those of ``compare_snapshots`` plus from_export_id and to_export_id.
    Returns the number of rows."""
    to_id = resolve_snapshot(data_dir, export_id)
    from_id = previous_snapshot(data_dir, to_id)
    cols = ", ".join(f"null::varchar as {_ident(c)}" for c in CHANGES_SCHEMA)
    select = changes_sql(data_dir, from_id, to_id) if from_id else f"select {cols} where false"
    con.execute(f"create or replace table {TABLE} as select *, {_lit(from_id) if from_id else 'null'}::varchar "
                f"as from_export_id, {_lit(to_id)}::varchar as to_export_id from ({select})")
    con.execute(f"comment on table {TABLE} is {_lit(TABLE_COMMENT)}")
    for c, text in COLUMN_COMMENTS.items():
        con.execute(f"comment on column {TABLE}.{_ident(c)} is {_lit(text)}")
    return con.sql(f"select count(*) from {TABLE}").fetchall()[0][0]


def snapshot_label(data_dir: Path, export_id: str) -> str:
    info = read_export_json(data_dir, export_id)
    return f"{export_id} ({info.get('format')}, landed {str(info.get('landed_at', ''))[:19]})"


__all__ = ["CHANGES_SCHEMA", "IDENTIFIER_WITHHELD", "SnapshotNotFound", "change_summary", "changes_sql", "compare_snapshots",
           "identifier_fields", "previous_snapshot", "resolve_snapshot", "snapshot_forms", "write_changes_table"]
