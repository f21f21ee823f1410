"""The stage step: the raw forms typed (warehouse.stage.typed) and loaded into the build file as schema `src`,
with the build's own facts (build info, study parameters, randomisation list, typing failures) and descriptions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl

from warehouse.db import connect_build
from warehouse.extract.steps import raw_form_files, read_meta
from warehouse.publish import (
    crash_point,
    utc_now,
)
from warehouse.request import BuildError, BuildRequest
from warehouse.study import MAPPING_TYPE, StudyConfig
from warehouse.transform.runner import (
    KEY_DESCRIPTIONS,
    prepare_schemas,
    quote_literal,
)


def read_randomisation_list(path: Path, study: StudyConfig) -> pl.DataFrame:
    """The restricted kit -> arm list. Read only by unblinded builds."""
    frame = pl.read_csv(path, infer_schema=False)
    missing = {"kit_no", "arm"} - set(frame.columns)
    if missing:
        raise BuildError(f"{path}: randomisation list lacks column(s) {', '.join(sorted(missing))}")
    unknown = set(frame.get_column("arm").to_list()) - set(study.arms)
    if unknown:
        raise BuildError(f"{path}: unknown arm code(s) {', '.join(sorted(map(str, unknown)))}")
    numbers = {arm: n for n, arm in enumerate(study.arms, start=1)}  # ADSL TRT01PN: the order of [treatment] arms
    return frame.select(
        "kit_no", "arm", pl.col("arm").replace_strict(study.arms, return_dtype=pl.Utf8).alias("arm_label"),
        pl.col("arm").replace_strict(numbers, return_dtype=pl.Int32).alias("arm_n"),
    )


def empty_randomisation_list() -> pl.DataFrame:
    return pl.DataFrame(schema={"kit_no": pl.Utf8, "arm": pl.Utf8, "arm_label": pl.Utf8, "arm_n": pl.Int32})


def build_facts(request: BuildRequest, build_id: str, export_id: str,
                randomisation: Path | None) -> dict[str, pl.DataFrame]:
    """The small tables every build carries in `src`: build facts, study parameters and (unblinded) the arms."""
    if request.blinded:
        arms = empty_randomisation_list()
    else:
        if randomisation is None:
            raise BuildError("an unblinded build needs the randomisation list (--randomisation FILE)")
        arms = read_randomisation_list(randomisation, request.study)
    build_info = pl.DataFrame(
        {
            "build_id": [build_id],
            "export_id": [export_id],
            "study_id": [request.study.study_id],
            "blinded": [request.blinded],
            "blinded_label": [request.study.blinded_label],
            "built_at": [utc_now().replace(tzinfo=None)],
        }
    )
    # one row, a typed column per parameter: SQL reads `study_parameters.<name>`, a misspelt name fails compile
    dtypes = {"VARCHAR": pl.Utf8, "DOUBLE": pl.Float64, "INTEGER": pl.Int32, "BOOLEAN": pl.Boolean,
              "INTEGER[]": pl.List(pl.Int32), MAPPING_TYPE: pl.List(pl.Struct({"key": pl.Utf8, "value": pl.Utf8}))}
    columns = request.study.parameter_columns()
    entries = lambda value, kind: [{"key": k, "value": v} for k, v in value.items()] if kind == MAPPING_TYPE \
        else value  # noqa: E731
    parameters = pl.DataFrame({name: [entries(value, kind)] for name, (value, kind) in columns.items()},
                              schema={name: dtypes[kind] for name, (_, kind) in columns.items()})
    return {"build_info": build_info, "randomisation_list": arms, "study_parameters": parameters}


def load_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame | pl.LazyFrame | str,
               spill: Path) -> int:
    """Write one staged table into `src`: a lazy frame streams through a Parquet file in `spill` so it never sits
    in memory; a string is a DuckDB query over tables loaded before it.

    Why not an Arrow stream straight into DuckDB: measured at 10,000 subjects, Polars' `collect_batches` feeding
    DuckDB peaked at 2.1 GB for staging against 1.1 GB through the file, for 4 s (10%) less time.

    The table's name comes from the export (a form or item group): it is quoted by sqlglot, and a table that
    fails to load is named in the error."""
    from warehouse.extract.rawzone import quoted_table

    table = quoted_table(name, "src")
    try:
        # DuckDB answers a `create table as` with its row count: no second query per table
        if isinstance(frame, str):
            count = con.execute(f"create or replace table {table} as {frame}").fetchone()[0]
        elif isinstance(frame, pl.LazyFrame):
            path = spill / f"{name}.parquet"
            # a spill read once, whole: lz4 writes ~20% faster than zstd, and no statistics (10,000 subjects:
            # hemodynamics sinks in ~15 s against ~16.5 s with them)
            frame.sink_parquet(path, compression="lz4", statistics=False)
            count = con.execute(f"create or replace table {table} as select * from read_parquet(?)",
                                [str(path)]).fetchone()[0]
            path.unlink()
        else:
            con.register("_frame", frame.to_arrow())
            try:
                count = con.execute(f"create or replace table {table} as select * from _frame").fetchone()[0]
            finally:
                con.unregister("_frame")
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"staging: table src.{name} could not be loaded: {reason}") from exc
    crash_point("stage")
    return count


def typing_failures_query(checks: dict[str, list]) -> str:
    """`src.typing_failures` read from the loaded forms' `_untyped` columns: form by form (sorted), item by item,
    in row order (the rows of `stage.failures_from_untyped`), without typing any value again."""
    from warehouse.extract.rawzone import quoted_table
    from warehouse.stage.typed import TYPING_FAILURE_SCHEMA, typing_failures_sql

    types = {pl.Utf8: "varchar", pl.Int32: "integer", pl.Int64: "bigint"}
    empty = "select " + ", ".join(f"null::{types[t]} as {c}" for c, t in TYPING_FAILURE_SCHEMA.items()) + " limit 0"
    parts = [(k, q) for k, q in enumerate(typing_failures_sql(quoted_table(form, "src"), form, specs)
                                          for form, specs in sorted(checks.items())) if q]
    if not parts:
        return empty
    return ("select * exclude (__part, __pos, __row) from ("
            + " union all ".join(f"select {k} as __part, * from ({q})" for k, q in parts)
            + ") order by __part, __pos, __row")


def write_sources(
    build_file: Path,
    staged: dict[str, pl.DataFrame | pl.LazyFrame | str],
    request: BuildRequest,
    build_id: str,
    export_id: str,
    randomisation: Path | None,
) -> dict[str, int]:
    """Load the staged forms into the build's `src` schema, with build facts and (unblinded only) the arms.
    A table given as a string is a query over the tables before it (`typing_failures`)."""
    tables = {**staged, **build_facts(request, build_id, export_id, randomisation)}
    spill = build_file.parent / f".{build_file.name}.staging"
    spill.mkdir(parents=True, exist_ok=True)
    try:
        with connect_build(build_file) as con:
            prepare_schemas(con)
            return {name: load_frame(con, name, frame, spill) for name, frame in tables.items()}
    finally:
        shutil.rmtree(spill, ignore_errors=True)


SMALL_FORM_BYTES = 4 << 20  # a raw form's Parquet file up to this size is typed in memory (tens of MB at most)


def collect_small_forms(staged: dict[str, pl.LazyFrame], files: dict[str, Path]) -> dict[str, pl.LazyFrame | pl.DataFrame]:
    """Small forms typed in memory and handed to DuckDB as Arrow; large ones keep streaming through the spill.

    Why: a Parquet spill costs a file write and read per form, ~15 ms each however small the form: ~0.3 s of the
    32-subject demo's staging (bench/profile_build.py), for forms of a few hundred rows. A form's raw file bounds
    its typed frame in memory, so only forms whose raw Parquet is under SMALL_FORM_BYTES skip the spill."""
    small = {form for form, path in files.items() if path.stat().st_size <= SMALL_FORM_BYTES}
    return {name: frame.collect() if name in small and isinstance(frame, pl.LazyFrame) else frame
            for name, frame in staged.items()}


def stage(request: BuildRequest, export_id: str, build_file: Path, randomisation: Path | None) -> dict[str, int]:
    """Raw snapshot -> typed `src` tables in the build file, one form at a time, streamed; the typing failures
    are then read from the loaded forms' `_untyped` columns in DuckDB."""
    from warehouse.stage.codelists import require_code_lists
    from warehouse.stage.typed import form_checks, stage_lazy

    meta = read_meta(request.data_dir, export_id)
    require_code_lists(request.study, meta["items"], meta["choices"])  # before any data: a code with no term
    files = raw_form_files(request.data_dir, export_id, meta["forms"])
    raw = {form: pl.scan_parquet(path) for form, path in files.items()}
    staged, _ = stage_lazy(raw, meta["items"], meta["choices"], request.study)
    staged = collect_small_forms(staged, files)
    checks = {form: form_checks(frame, form, meta["items"], meta["choices"]) for form, frame in raw.items()}
    build_id = build_file.name.split(".duckdb")[0]
    counts = write_sources(build_file, {**staged, "typing_failures": typing_failures_query(checks)}, request,
                           build_id, export_id, randomisation)
    with connect_build(build_file) as con:
        describe_sources(con, meta)
    return counts


SOURCE_TABLES = {
    "build_info": "This build: build id, export id, study, blinded or not, time built",
    "study_parameters": "The study configuration's parameters this build used: one row, a column per parameter",
    "randomisation_list": "Kit -> arm, from the restricted randomisation list: empty in a blinded build",
    "typing_failures": "Values that did not type in staging: form, subject, item, raw text, expected type, record",
}


SOURCE_COLUMNS = {
    **KEY_DESCRIPTIONS,
    "_export_id": "Provenance: the export (snapshot) the row was landed from",
    "_source_file": "Provenance: the export file the row comes from",
    "_source_row": "Provenance: record number in the CSV (1-based), null for XML",
    "_source_path": "Provenance: location in the XML file, null for CSV",
    "_untyped": "Raw text of each value of the row that did not type (item, raw); null when every value typed",
}


BUILD_TABLE_COLUMNS = {  # columns of the build's own tables in `src` (an eCRF item of the same name wins)
    "build_id": "Build id (UTC start time and export id)",
    "export_id": "Export (snapshot) id: SHA-256 over the export's file hashes, 16 hex digits",
    "study_id": "Study id (study configuration)",
    "blinded": "True for a blinded build (no arm anywhere)",
    "blinded_label": "What the treatment variables read in a blinded build",
    "built_at": "When the build ran (UTC)",
    "kit_no": "Kit number",
    "arm": "Arm code of the kit (restricted: unblinded builds only)",
    "arm_label": "Arm label of the kit (restricted: unblinded builds only)",
    "arm_n": "Arm number: its order in the study configuration's arms (restricted: unblinded builds only)",
    "form": "Form of the value that did not type",
    "item": "Item of the value that did not type",
    "raw_value": "The value as exported",
    "expected_type": "The type the metadata asks for",
}


def describe_sources(con: duckdb.DuckDBPyConnection, meta: dict[str, pl.DataFrame]) -> None:
    """Comments on the typed eCRF forms in `src`: the form's label, and each column's item label and units
    (from the export's metadata), so a staged item is described in any client and models downstream inherit it."""
    from sqlglot import exp

    from warehouse.extract.rawzone import quoted_table

    forms = {r["form"]: r.get("label") for r in meta["forms"].iter_rows(named=True)}
    items = {r["item"]: r for r in meta["items"].iter_rows(named=True)}
    columns = con.execute("select table_name, column_name from duckdb_columns() where schema_name = 'src' "
                          "and database_name = current_database()").fetchall()
    # one execute for all the comments (~370 in the demo): each execute releases and takes back the GIL, and with
    # Great Expectations importing on its background thread each take-back waited up to the switch interval
    # (5 ms): 2.4 s in a cold 32-subject build for 0.3 s of DuckDB work
    statements = []
    for table in sorted({t for t, _ in columns}):
        text = SOURCE_TABLES.get(table) or f"eCRF form {forms.get(table) or table} ({table}), typed by staging"
        statements.append(f"comment on table {quoted_table(table, 'src')} is {quote_literal(text)}")
    for table, column in columns:
        if table == "study_parameters":
            text = parameter_description(column)
        else:
            text = SOURCE_COLUMNS.get(column) or item_description(column, items) or BUILD_TABLE_COLUMNS.get(column)
        if text:
            target = exp.column(exp.to_identifier(column, quoted=True), table=exp.to_identifier(table, quoted=True),
                                db="src").sql(dialect="duckdb")
            statements.append(f"comment on column {target} is {quote_literal(text)}")
    con.execute(";\n".join(["begin transaction", *statements, "commit"]))


PARAMETER_COLUMNS = {
    "study_id": "Study id (study configuration [study] id)",
    "anchor": "Study time zero (H0): form.item of the anchor date-time ([time])",
    "ne_drug_code": "Code of norepinephrine in the vasopressor drug item ([norepinephrine] drug_code)",
    "bradycardia_hr_threshold": "Bradycardia: heart rate strictly below this, beats/min ([bradycardia])",
    "bradycardia_min_readings": "Bradycardia: consecutive low readings that make an episode ([bradycardia])",
    "bradycardia_window_hours": "Bradycardia: period observed, hours from H0 ([bradycardia])",
    "bradycardia_period": "Bradycardia: the period's label, as AVISIT reads it",
    "teae_window_hours": "Treatment-emergent window after the last study-drug stop, hours ([adverse_events])",
    "hemo_hourly_last_hour": "Last nominal hour of the hourly hemodynamics grid (H0 to this hour)",
    "map_ne_hours": "Nominal hours at which MAP/NE is an endpoint ([schedule])",
    "export_encoding": "CSV encoding override of the study's exports ([export]); null = detected",
    "export_delimiter": "CSV delimiter override of the study's exports ([export]); null = detected",
    "export_decimal_comma": "Declared decimal mark of the study's exports ([export]); null = detected",
}


def parameter_description(column: str) -> str:
    """The description of a `src.study_parameters` column (one per parameter of the study configuration)."""
    if column in PARAMETER_COLUMNS:
        return PARAMETER_COLUMNS[column]
    if column.startswith("ne_salt_factor_"):
        return (f"Norepinephrine salt code {column.removeprefix('ne_salt_factor_')}: factor from the labelled dose "
                "to the dose as base ([norepinephrine] salt_factors)")
    if column.startswith("window_") and column.endswith(("_lo", "_hi")):
        name, end = column[len("window_"):-3], "earliest" if column.endswith("_lo") else "latest"
        return f"Visit window {name}: {end} time, hours ([windows] {name})"
    return f"Study parameter {column} (study configuration)"


def item_description(column: str, items: dict[str, dict]) -> str | None:
    """`label [units]` of the eCRF item behind a staged column (`_decod`, `_hrs`, `_base` say what they add)."""
    def label(item: str) -> str | None:
        row = items.get(item)
        if row is None:
            return None
        text = (row.get("label") or item).strip()
        if row.get("choice_label"):
            text = f"{text}: {row['choice_label']}"
        units = row.get("units")
        return f"{text} [{units}]" if units and units not in text else text

    for suffix, what in (("_decod", "label of the code"), ("_hrs", "hours since randomisation (H0)"),
                         ("_base", "as norepinephrine base, ug/kg/min"), ("_dtc", "text as entered (ISO 8601)")):
        if column.endswith(suffix) and label(column.removesuffix(suffix)):
            return f"{label(column.removesuffix(suffix))}: {what}"
    return label(column)
