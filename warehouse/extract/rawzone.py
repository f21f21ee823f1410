"""The raw zone on disk: Parquet tables written in chunks, the metadata tables, and the readers.

Layout (see docs/contracts.md, "Raw zone contract")::

    DIR/landing/<export_id>/<files>            byte copies of the export, never edited
    DIR/raw/<export_id>/<form>.parquet         one table per form, every column Utf8
    DIR/raw/<export_id>/_meta/items.parquet    choices / events / forms / subjects .parquet
    DIR/raw/<export_id>/_meta/export.json      format, files with SHA-256, landed_at, record counts
    DIR/quarantine/<UTC timestamp>-<hash>/     exports that could not be read, with REASON.txt
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

KEY_COLUMNS = ["subject_id", "event", "repeat_instance", "site_id"]
PROVENANCE_COLUMNS = ["_export_id", "_source_file", "_source_row", "_source_path", "_file_sha256"]
META_KINDS = ("items", "choices", "events", "forms", "subjects")
FLUSH_ROWS = 50_000
FLUSH_CELLS = 50_000  # row-wise appends (ODM) are written once a table buffers this many cells: memory
# Arrow chunks (REDCap: one per CSV block and form) are gathered into row groups of about this many rows: a small
# form gets ~16 rows per 4 MB block, and 600 row groups of 16 rows made every later scan of it ~20x slower
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size
ROW_GROUP_BYTES = 32 * 1024 * 1024
#                        stays bounded whatever the size of the file (a row group of ~10k rows of 25 columns)

ITEMS_SCHEMA = {
    "form": pl.String, "item": pl.String, "label": pl.String, "field_type": pl.String,
    "validation": pl.String, "min": pl.String, "max": pl.String, "units": pl.String,
    "identifier": pl.Boolean, "choices": pl.String, "required": pl.Boolean, "order": pl.Int64,
    # beyond the contract's minimum: where an item comes from and what else the export says about it
    "variable": pl.String, "choice_code": pl.String, "choice_label": pl.String, "data_type": pl.String,
    "length": pl.String, "field_note": pl.String, "section_header": pl.String, "branching_logic": pl.String,
    "calculation": pl.String, "annotation": pl.String, "codelist": pl.String, "item_group": pl.String,
}
CHOICES_SCHEMA = {"item": pl.String, "code": pl.String, "label": pl.String, "order": pl.Int64}
EVENTS_SCHEMA = {"event": pl.String, "label": pl.String, "arm": pl.String, "day_offset": pl.String,
                 "arm_label": pl.String, "repeating": pl.Boolean, "order": pl.Int64, "event_oid": pl.String}
FORMS_SCHEMA = {"form": pl.String, "label": pl.String, "repeating": pl.Boolean, "events": pl.List(pl.String),
                "form_oid": pl.String, "item_group": pl.String, "order": pl.Int64}
SUBJECTS_SCHEMA = {"subject_id": pl.String, "site_id": pl.String, "label": pl.String, "attributes": pl.String}
META_SCHEMAS = {"items": ITEMS_SCHEMA, "choices": CHOICES_SCHEMA, "events": EVENTS_SCHEMA,
                "forms": FORMS_SCHEMA, "subjects": SUBJECTS_SCHEMA}

_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
MAX_TABLE_NAME = 63  # longer names keep their first characters and a hash of the whole (PostgreSQL's limit)
# `src` tables a build writes itself beside the eCRF forms: a form of that name would be overwritten
RESERVED_TABLE_NAMES = frozenset({"build_info", "randomisation_list", "study_parameters", "typing_failures"})


def table_name(name: str) -> str:
    """The raw zone's one naming rule: the table (and Parquet file, and `src` table) name for a form or item
    group name or OID from an export's metadata: lowercase snake_case, ASCII letters, digits and "_", starting
    with a letter. Deterministic, and a fixed point (a table name maps to itself), so a name read back from
    ``forms.parquet`` finds its file.

    Why: ODM OIDs hold dots and dashes (``IG.AE.AE_ARRAY1``, ``F.1``), which SQL reads as schema qualifiers and
    a file system may not like; case differs between systems while DuckDB's names ignore it. REDCap instrument
    names are already such names and do not change. Two names that map to the same table are told apart by
    `unique_table_name`; the original OID stays in the metadata (``forms.parquet`` form_oid / item_group).
    """
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    safe = _UNSAFE_RUN.sub("_", text).strip("_") or "table"
    if not safe[0].isalpha():
        safe = f"t_{safe}"
    if len(safe) > MAX_TABLE_NAME:
        digest = hashlib.sha256(safe.encode()).hexdigest()[:8]
        safe = f"{safe[:MAX_TABLE_NAME - 9].rstrip('_')}_{digest}"
    return safe


def unique_table_name(name: str, taken: set[str]) -> str:
    """`table_name` of ``name``, with "_2", "_3", ... when that name is taken (or is one a build writes itself in
    `src`); the name returned is added to ``taken``. Deterministic for the same names in the same order."""
    base = table_name(name)
    candidate, n = base, 1
    while candidate in taken or candidate in RESERVED_TABLE_NAMES:
        n += 1
        candidate = table_name(f"{base}_{n}")
    taken.add(candidate)
    return candidate


def quoted_table(name: str, schema: str | None = None) -> str:
    """``name`` (in ``schema``) as a DuckDB table reference, each part quoted by sqlglot where it needs it:
    SQL built from a name taken from an export never reads a dot in it as a schema, nor a keyword as syntax."""
    return exp.table_(exp.to_identifier(name, quoted=True), db=exp.to_identifier(schema) if schema else None
                      ).sql(dialect="duckdb")


def meta_frame(kind: str, rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    schema = META_SCHEMAS[kind]
    rows = [{k: r.get(k) for k in schema} for r in rows]
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


# Columns whose few distinct values a Parquet dictionary serves: the record keys other than the instance, the
# provenance other than the row, and (given by the reader) coded items. Elsewhere (times, numbers, row numbers) the
# dictionary only fills up and falls back to plain, after the work: writing 3 million hemodynamics rows took 2.3 s
# CPU with a dictionary tried on every column and min/max statistics on every column, 1.3 s like this; the file is
# 13 MB instead of 22 MB. Statistics are kept where a reader filters: the subject and the record number.
DICTIONARY_COLUMNS = ["subject_id", "event", "site_id", "_export_id", "_source_file", "_source_path", "_file_sha256"]
STATISTICS_COLUMNS = ["subject_id", "_source_row"]


class TableSink:
    """One raw table: a Parquet file written in chunks, every column Utf8, row and subject counts.
    ``coded``: value columns holding codes (choices, yes/no, form status), dictionary-encoded."""

    def __init__(self, path: Path, value_columns: list[str], coded: Iterable[str] = ()) -> None:
        self.path = path
        self.columns = KEY_COLUMNS + [c for c in value_columns if c not in KEY_COLUMNS] + PROVENANCE_COLUMNS
        coded = set(coded)
        self.dictionary = [c for c in self.columns if c in DICTIONARY_COLUMNS or c in coded]
        self.schema = pa.schema([(c, pa.string()) for c in self.columns])
        self._writer: pq.ParquetWriter | None = None
        self._buffer: dict[str, list] = {c: [] for c in self.columns}
        self._buffered = 0
        self._chunks: list[pa.Table] = []
        self._chunk_rows = 0
        self._chunk_bytes = 0
        self._flush_rows = max(1_000, min(FLUSH_ROWS, FLUSH_CELLS // len(self.columns)))
        self.rows = 0
        self.subjects: set[str] = set()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd", compression_level=1,
                                            use_dictionary=self.dictionary, write_statistics=STATISTICS_COLUMNS)
        return self._writer

    def write_frame(self, df: pl.DataFrame) -> None:
        """Append a polars frame holding (a subset of) this table's columns."""
        if df.height == 0:
            return
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            df = df.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in missing])
        df = df.select(self.columns)
        self.flush()
        self._open().write_table(df.to_arrow().cast(self.schema))
        self.rows += df.height
        self.subjects.update(df.get_column("subject_id").unique().drop_nulls().to_list())

    def write_arrow(self, arrays: list[pa.Array]) -> None:
        """Append Arrow string arrays, one per column of this table, in its column order."""
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if table.num_rows == 0:
            return
        if self._buffered:  # rows appended one by one come first
            self.flush()
        self._chunks.append(table)
        self._chunk_rows += table.num_rows
        self._chunk_bytes += table.nbytes
        self.rows += table.num_rows
        self.subjects.update(pc.unique(table.column("subject_id")).drop_null().to_pylist())
        if self._chunk_rows >= ROW_GROUP_ROWS or self._chunk_bytes >= ROW_GROUP_BYTES:
            self._write_chunks()

    def _write_chunks(self) -> None:
        if self._chunks:
            self._open().write_table(pa.concat_tables(self._chunks), row_group_size=max(self._chunk_rows, 1))
        self._chunks, self._chunk_rows, self._chunk_bytes = [], 0, 0

    def append(self, row: dict[str, str | None]) -> None:
        """Append one row (ODM): unknown keys are a programming error, missing ones are null."""
        if self._chunks:  # Arrow chunks appended before come first
            self._write_chunks()
        for c in self.columns:
            self._buffer[c].append(row.get(c))
        self._buffered += 1
        sid = row.get("subject_id")
        if sid is not None:
            self.subjects.add(sid)
        if self._buffered >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        self._write_chunks()
        if not self._buffered:
            return
        table = pa.table({c: pa.array(v, type=pa.string()) for c, v in self._buffer.items()}, schema=self.schema)
        self._open().write_table(table)
        self.rows += self._buffered
        self._buffer = {c: [] for c in self.columns}
        self._buffered = 0

    def close(self) -> None:
        self.flush()
        if self._writer is None:  # an empty table still gets its file and schema
            pq.write_table(self.schema.empty_table(), self.path, compression="zstd")
        else:
            self._writer.close()
            self._writer = None


def write_meta(meta_dir: Path, frames: dict[str, pl.DataFrame]) -> None:
    meta_dir.mkdir(parents=True, exist_ok=True)
    for kind in META_KINDS:
        df = frames.get(kind)
        if df is None:
            df = meta_frame(kind, [])
        df.write_parquet(meta_dir / f"{kind}.parquet")


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------- readers (the public read API)

def snapshot_dir(data_dir: Path, export_id: str) -> Path:
    d = Path(data_dir) / "raw" / export_id
    if not (d / "_meta" / "export.json").is_file():
        raise FileNotFoundError(f"no raw snapshot {export_id!r} under {Path(data_dir) / 'raw'}")
    return d


def raw_table_path(snapshot: Path, form: str) -> Path:
    """The Parquet file of a raw table in a snapshot directory: ``<form>.parquet`` when there is one (a table name
    read from ``forms.parquet``, also of a snapshot landed under an earlier naming rule, which kept case), else
    the file `table_name` gives (a form asked for by its export name or OID, ``IG.AE.AE_ARRAY1``)."""
    if form not in ("", ".", "..") and "/" not in form and "\\" not in form:
        exact = snapshot / f"{form}.parquet"
        if exact.is_file():
            return exact
    return snapshot / f"{table_name(form)}.parquet"


def read_raw_form(data_dir: Path, export_id: str, form: str) -> pl.DataFrame:
    """One raw table of a snapshot (every column Utf8)."""
    d = snapshot_dir(data_dir, export_id)
    path = raw_table_path(d, form)
    if not path.is_file():
        have = sorted(p.stem for p in d.glob("*.parquet"))
        raise KeyError(f"snapshot {export_id} has no form {form!r}; it has: {', '.join(have)}")
    return pl.read_parquet(path)


def read_raw_meta(data_dir: Path, export_id: str, kind: str) -> pl.DataFrame:
    """A metadata table of a snapshot: "items", "choices", "events", "forms" (or "subjects")."""
    if kind not in META_KINDS:
        raise ValueError(f"unknown metadata kind {kind!r}; expected one of {', '.join(META_KINDS)}")
    return pl.read_parquet(snapshot_dir(data_dir, export_id) / "_meta" / f"{kind}.parquet")


def read_export_json(data_dir: Path, export_id: str) -> dict[str, Any]:
    return json.loads((snapshot_dir(data_dir, export_id) / "_meta" / "export.json").read_text("utf-8"))


def list_snapshots(data_dir: Path) -> list[dict[str, Any]]:
    """Every landed snapshot, oldest first: export_id, landed_at, format, files (and the rest of export.json).

    The registry is the set of ``raw/<export_id>/_meta/export.json`` files: a snapshot appears only once
    it is complete (it is renamed into place), and nothing shared is rewritten when another lands.
    """
    raw = Path(data_dir) / "raw"
    out = []
    if raw.is_dir():
        for p in raw.glob("*/_meta/export.json"):
            if p.parts[-3].startswith("."):
                continue
            try:
                out.append(json.loads(p.read_text("utf-8")))
            except (OSError, ValueError):  # pragma: no cover - a damaged registry entry is skipped
                continue
    out.sort(key=lambda s: (s.get("landed_at", ""), s.get("export_id", "")))
    return out


class Extracted:
    """What a reader produced in a snapshot directory (before it is renamed into place)."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.tables: dict[str, TableSink] = {}
        self.meta: dict[str, pl.DataFrame] = {}
        self.files: dict[str, dict[str, Any]] = {}  # file name -> role, encoding, delimiter, bom...
        self.notes: list[str] = []
        self.decimal_comma_fields: list[str] = []

    def counts(self) -> dict[str, tuple[int, int]]:
        return {name: (t.rows, len(t.subjects)) for name, t in self.tables.items()}
