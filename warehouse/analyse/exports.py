"""Marts for statisticians' tools: Parquet, CSV and SAS transport (XPT version 5) with variable labels.

XPT v5 limits names to 8 characters and labels to 40; the marts' ADaM names already fit, and a longer name is
shortened with a warning in the export's manifest rather than failing the export. Labels are written in ASCII (the
transport format's character set: µ becomes u) and a longer one is cut at the last word boundary within 40
characters. DATE columns are SAS dates (days since 1960-01-01, format DATE9.), date-times SAS datetimes.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

MARTS = ("adsl", "adeff", "adae", "adtte", "hemodynamics")
FORMATS = ("parquet", "csv", "xpt")
XPT_LABEL_MAX = 40
SAS_EPOCH = dt.date(1960, 1, 1)
# characters NFKD does not turn into ASCII, spelled as a SAS programmer would
_ASCII = {"µ": "u", "μ": "u", "≥": ">=", "≤": "<=", "×": "x", "–": "-", "—": "-", "’": "'", "‘": "'", "“": '"',
          "”": '"', "°": " deg", "±": "+/-"}


@dataclass
class ExportedMart:
    table: str
    rows: int
    files: dict[str, Path] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)


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
    """The label in printable ASCII: known symbols spelled out, accents dropped (é -> e)."""
    spelled = "".join(_ASCII.get(ch, ch) for ch in text)
    plain = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode("ascii")
    return " ".join(plain.split())


def xpt_label(text: str, limit: int = XPT_LABEL_MAX) -> str:
    """An XPT v5 label: ASCII, at most `limit` characters, cut at the last word boundary that fits (a single word
    longer than the limit is cut at the limit), without a dangling separator or opening bracket."""
    label = ascii_label(text)
    if len(label) <= limit:
        return label
    head = label[: limit + 1]  # one more: a word that ends exactly at the limit is kept whole
    cut = head.rfind(" ")
    short = head[:cut] if cut > 0 else label[:limit]
    if short.count("(") > short.count(")"):  # no bracket left open: drop the unfinished aside
        short = short[: short.rfind("(")]
    return short.rstrip(" ,;:-/([").rstrip() or label[:limit]


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


def write_xpt(frame: pl.DataFrame, labels: dict[str, str], label: str, path: Path, member: str) -> dict[str, str]:
    """One dataset as XPT v5; returns the columns that had to be renamed to fit 8 characters."""
    import pandas as pd
    import pyreadstat

    taken: set[str] = set()
    names = {c: xpt_name(c, taken) for c in frame.columns}
    renamed = {c: n for c, n in names.items() if c.upper() != n}
    pdf = frame.rename(names).to_pandas()
    formats: dict[str, str] = {}
    for column, dtype in frame.schema.items():
        if dtype == pl.Boolean:  # SAS has no booleans: Y/N, as ADaM flags are
            pdf[names[column]] = pdf[names[column]].map({True: "Y", False: "N"})
        elif dtype == pl.Date:  # a SAS date (numeric days since 1960), not a datetime at midnight
            pdf[names[column]] = pd.Series(sas_dates(frame.get_column(column)), dtype="float64", index=pdf.index)
            formats[names[column]] = "DATE9."
    pyreadstat.write_xport(
        pdf,
        str(path),
        file_label=xpt_label(label),
        column_labels={names[c]: xpt_label(labels.get(c, "") or c) for c in frame.columns},
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
                 tables: tuple[str, ...] = MARTS, *, blinded: bool | None = None) -> list[ExportedMart]:
    """Write every mart of a published warehouse in the requested formats, with a manifest. ``blinded``: the
    export's kind; when given, a warehouse built the other way is refused (ValueError) before anything is
    written: a blinded export never writes an unblinded warehouse's arms."""
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
        out_dir.mkdir(parents=True, exist_ok=True)
        present = {r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
        for table in tables:
            if table not in present:
                continue
            frame = con.sql(f"select * from main.{table}").pl()
            mart = ExportedMart(table, frame.height)
            if "parquet" in formats:
                mart.files["parquet"] = out_dir / f"{table}.parquet"
                frame.write_parquet(mart.files["parquet"])
            if "csv" in formats:
                mart.files["csv"] = out_dir / f"{table}.csv"
                frame.write_csv(mart.files["csv"])
            if "xpt" in formats:
                member = xpt_name(table, set())
                mart.files["xpt"] = out_dir / f"{member.lower()}.xpt"
                mart.renamed = write_xpt(frame, column_labels(con, table), table_label(con, table),
                                         mart.files["xpt"], member)
            exported.append(mart)
    manifest = {
        "warehouse": str(warehouse),
        "tables": [{"table": m.table, "rows": m.rows, "files": {k: p.name for k, p in m.files.items()},
                    "xpt_renamed": m.renamed} for m in exported],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return exported
