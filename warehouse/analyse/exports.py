"""The published warehouse's analysis tables for statisticians' tools: Parquet, CSV and SAS transport (XPT v5).

What is exported (`analysis_tables`): the five marts (ADSL, ADEFF, ADAE, ADTTE, hemodynamics) and every analysis
result table (`ar_*`). The validation findings are not exported by default (they are the data managers' working
list, in the validation report and the warehouse); `tables=` (`warehouse export --tables`) names any table of `main`.

- Parquet: the values as in DuckDB (UTF-8), each column's comment as Arrow field metadata `label`, the table's
  comment and grain (from `main.catalog`) as schema metadata `label` and `grain`.
- CSV: the values as in DuckDB (UTF-8), no labels (CSV has nowhere to put them).
- XPT v5: names of at most 8 characters (a longer one shortened, listed in the manifest's `xpt_renamed`); labels
  of at most 40 characters, unique within the dataset, by the rule of `warehouse/analyse/labels.py` (units kept,
  explanations dropped first, then known words abbreviated); the dataset label from a short form per dataset.
  XPT v5 cannot declare an encoding, so character values and labels are transliterated to ASCII (`ascii_text`:
  é -> e, µ -> u, ° -> deg). Booleans are Y/N, DATE columns SAS dates (days since 1960-01-01, format DATE9.),
  date-times SAS datetimes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from warehouse.analyse.labels import (
    XPT_LABEL_MAX,
    ascii_text,
    dataset_label,
    dataset_labels,
    short_label,
)

MARTS = ("adsl", "adeff", "adae", "adtte", "hemodynamics")
RESULT_PREFIX = "ar_"
FORMATS = ("parquet", "csv", "xpt")
SAS_EPOCH = dt.date(1960, 1, 1)


@dataclass
class ExportedMart:
    table: str
    rows: int
    files: dict[str, Path] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    label: str = ""
    grain: str = ""


def xpt_name(name: str, taken: set[str]) -> str:
    """An upper-case SAS v5 name of at most 8 characters, unique within the dataset."""
    base = "".join(ch for ch in name.upper() if ch.isalnum() or ch == "_")[:8] or "VAR"
    candidate, i = base, 1
    while candidate in taken:
        suffix = str(i)
        candidate = base[: 8 - len(suffix)] + suffix
        i += 1
    taken.add(candidate)
    return candidate


def ascii_label(text: str) -> str:
    """The label in printable ASCII (labels.ascii_text), whitespace collapsed."""
    return " ".join(ascii_text(text).split())


def xpt_label(text: str, limit: int = XPT_LABEL_MAX) -> str:
    """One XPT v5 label by the shortening rule of labels.short_label (unique labels: labels.dataset_labels)."""
    return short_label(text, limit)


def sas_dates(values: pl.Series) -> list[float | None]:
    """Dates as SAS date values: days since 1960-01-01 (null stays missing)."""
    return [float((d - SAS_EPOCH).days) if d is not None else None for d in values.to_list()]


def column_labels(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "select column_name, comment from duckdb_columns() where schema_name = 'main' and table_name = ?", [table]
    ).fetchall()
    return {name: comment or "" for name, comment in rows}


def table_label(con: duckdb.DuckDBPyConnection, table: str) -> str:
    row = con.execute("select comment from duckdb_tables() where schema_name = 'main' and table_name = ?",
                      [table]).fetchall()
    return (row[0][0] or "") if row else ""


def table_grain(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The columns that identify a row of `table` (main.catalog's grain; '' when the catalog does not say)."""
    try:
        rows = con.execute("select max(grain) from main.catalog where schema_name = 'main' and table_name = ?",
                           [table]).fetchall()
    except duckdb.Error:
        return ""
    return (rows[0][0] or "") if rows else ""


def analysis_tables(present: set[str]) -> tuple[str, ...]:
    """What an analyst needs, in this order: the marts, then the analysis results (ar_*), of those present."""
    return tuple(t for t in MARTS if t in present) + tuple(sorted(t for t in present if t.startswith(RESULT_PREFIX)))


def write_parquet(frame: pl.DataFrame, labels: dict[str, str], label: str, grain: str, path: Path) -> None:
    """The table as Parquet with its labels: Arrow field metadata {"label": column comment} (a column without a
    comment has none) and schema metadata {"label": table comment, "grain": its identifying columns}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string, not string_view: older readers
    fields = [f.with_metadata({"label": labels[f.name]}) if labels.get(f.name) else f for f in table.schema]
    schema = pa.schema(fields, metadata={"label": label, "grain": grain})
    pq.write_table(table.cast(schema), path, compression="zstd")


def xpt_frame(frame: pl.DataFrame, names: dict[str, str]):
    """The pandas frame pyreadstat writes, and its formats: columns renamed to their XPT names, text in ASCII
    (ascii_text), booleans Y/N (SAS has none; ADaM flags are Y/N), dates as SAS dates with DATE9., times of day as
    SAS times (seconds since midnight) with TIME8."""
    import pandas as pd

    converted, formats = [], {}
    for column, dtype in frame.schema.items():
        values = frame.get_column(column)
        if dtype in (pl.Categorical, pl.Enum) or isinstance(dtype, (pl.Categorical, pl.Enum)):
            values, dtype = values.cast(pl.String), pl.String
        if dtype == pl.String:
            values = values.map_elements(ascii_text, return_dtype=pl.String)
        converted.append(values.alias(names[column]))
    pdf = pl.DataFrame(converted).to_pandas()
    for column, dtype in frame.schema.items():
        if dtype == pl.Boolean:
            pdf[names[column]] = pdf[names[column]].map({True: "Y", False: "N"})
        elif dtype == pl.Date:  # a SAS date (numeric days since 1960), not a datetime at midnight
            pdf[names[column]] = pd.Series(sas_dates(frame.get_column(column)), dtype="float64", index=pdf.index)
            formats[names[column]] = "DATE9."
        elif dtype == pl.Time:  # a SAS time (numeric seconds since midnight), e.g. ADEFF ATM
            seconds = frame.get_column(column).cast(pl.Int64) / 1e9  # polars keeps a time in nanoseconds
            pdf[names[column]] = pd.Series(seconds.to_numpy(), dtype="float64", index=pdf.index)
            formats[names[column]] = "TIME8."
    return pdf, formats


def write_xpt(frame: pl.DataFrame, labels: dict[str, str], label: str, path: Path, member: str) -> dict[str, str]:
    """One dataset as XPT v5; returns the columns that had to be renamed to fit 8 characters. `label` is the
    dataset's label as it will be written (at most 40 characters: dataset_label makes one); a longer one is
    shortened by the label rule."""
    import pyreadstat

    taken: set[str] = set()
    names = {c: xpt_name(c, taken) for c in frame.columns}
    renamed = {c: n for c, n in names.items() if c.upper() != n}
    pdf, formats = xpt_frame(frame, names)
    column_labels = dataset_labels({names[c]: labels.get(c, "") or c for c in frame.columns})
    pyreadstat.write_xport(
        pdf,
        str(path),
        file_label=short_label(label),
        column_labels=column_labels,
        table_name=member,
        file_format_version=5,
        variable_format=formats or None,
    )
    return renamed


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def default_export_dir(data_dir: Path, unblinded: bool) -> Path:
    """Where `warehouse export` writes by default: DIR/exports, or DIR/unblinded/exports for the unblinded
    warehouse (the unblinded root of docs/operations.md, which a blinded export never writes into)."""
    return (data_dir / "unblinded" if unblinded else data_dir) / "exports"


def check_export_dir(out_dir: Path, data_dir: Path, unblinded: bool) -> None:
    """Refuse an export folder that would mix blinded and unblinded outputs (ValueError, with the rule).

    The rule: unblinded exports go under DIR/unblinded/ only; a blinded export never goes under DIR/unblinded/
    (so it cannot overwrite, or sit beside, an unblinded one). Paths are compared resolved (symbolic links
    followed, `..` removed)."""
    root = data_dir / "unblinded"
    if unblinded and not _inside(out_dir, root):
        raise ValueError(
            f"an unblinded export goes under {root}/ only (default {default_export_dir(data_dir, True)}); "
            f"--out {out_dir} lies outside it"
        )
    if not unblinded and _inside(out_dir, root):
        raise ValueError(
            f"a blinded export may not be written under {root}/, which holds the unblinded outputs; "
            f"--out {out_dir} lies inside it (default {default_export_dir(data_dir, False)})"
        )


def _warehouse_blinded(con: duckdb.DuckDBPyConnection) -> bool | None:
    """Whether the warehouse file was built blinded (src.build_info), None when it does not say."""
    try:
        row = con.execute("select bool_and(blinded) from src.build_info").fetchone()
    except duckdb.Error:
        return None
    return None if row is None else row[0]


def export_marts(warehouse: Path, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                 tables: tuple[str, ...] | None = None, *, blinded: bool | None = None) -> list[ExportedMart]:
    """Write the analysis tables of a published warehouse (`tables`; default: `analysis_tables`, the marts and
    ar_*) in the requested formats, with a manifest. A named table that is not in the warehouse is refused
    (ValueError). ``blinded``: the export's kind; when given, a warehouse built the other way is refused
    (ValueError) before anything is written: a blinded export never writes an unblinded warehouse's arms."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    exported = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        built_blinded = _warehouse_blinded(con)
        if blinded is not None and built_blinded is not None and built_blinded != blinded:
            if blinded:
                raise ValueError(f"{warehouse} is an unblinded warehouse: a blinded export may not write it; "
                                 "export it with --unblinded (under DIR/unblinded/)")
            raise ValueError(f"{warehouse} is a blinded warehouse: export it without --unblinded")
        present = {r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
        if tables is None:
            tables = analysis_tables(present)
        missing = [t for t in tables if t not in present]
        if missing:
            raise ValueError(f"no table {', '.join(missing)} in {warehouse}; "
                             f"tables: {', '.join(sorted(present))}")
        out_dir.mkdir(parents=True, exist_ok=True)
        members: set[str] = set()  # XPT member (and file) names, unique across the export
        for table in tables:
            frame = con.sql(f'select * from main."{table}"').pl()
            labels = column_labels(con, table)
            comment = table_label(con, table)
            mart = ExportedMart(table, frame.height, label=comment, grain=table_grain(con, table))
            if "parquet" in formats:
                mart.files["parquet"] = out_dir / f"{table}.parquet"
                write_parquet(frame, labels, comment, mart.grain, mart.files["parquet"])
            if "csv" in formats:
                mart.files["csv"] = out_dir / f"{table}.csv"
                frame.write_csv(mart.files["csv"])
            if "xpt" in formats:
                member = xpt_name(table, members)
                mart.files["xpt"] = out_dir / f"{member.lower()}.xpt"
                mart.renamed = write_xpt(frame, labels, dataset_label(table, comment), mart.files["xpt"], member)
            exported.append(mart)
        if "xpt" in formats:  # define.xml (Define-XML 2.1) of the ADaM datasets exported, beside their XPT files
            from warehouse.analyse.define import DEFINE_TABLES, write_define

            xpts = {m.table: m.files["xpt"].name for m in exported if m.table in DEFINE_TABLES}
            if xpts:
                write_define(con, out_dir / "define.xml", xpts, tuple(xpts))
    manifest = {
        "warehouse": str(warehouse),
        "tables": [{"table": m.table, "rows": m.rows, "label": m.label, "grain": m.grain,
                    "files": {k: p.name for k, p in m.files.items()}, "xpt_renamed": m.renamed} for m in exported],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return exported
