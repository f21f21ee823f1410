"""The build, stage by stage, as plain functions that hand each other paths, not data.

`flows/build.py` wraps each of these in a Prefect task; `run_build` below calls them directly (tests, benchmarks,
the orchestration-overhead baseline). Passing paths keeps task inputs small and lets every stage be re-run alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalog import refresh_build_catalog
from warehouse.models import (
    KEY_DESCRIPTIONS,
    Model,
    ModelRun,
    RunResult,
    RunTracker,
    discover_models,
    execution_order,
    prepare_schemas,
    quote_literal,
    run_model,
)
from warehouse.publish import (
    BuildPaths,
    BuildRecord,
    build_lock,
    crash_point,
    discard_partial_builds,
    finalise_build,
    last_built_export,
    new_build_id,
    prune_builds,
    read_records,
    swap_in,
    utc_now,
    write_record,
)
from warehouse.resources import sql_dir
from warehouse.study import StudyConfig, load_study

DEMO_SEED = 20190515
META_TABLES = ("items", "choices", "events", "forms")
# what the marts suites reconcile row counts with: staging models, and `src` forms (every record, also those a
# staging model filters out, e.g. a randomisation record without its date-time)
MARTS_RECONCILE_WITH = ("stg_randomisation", "stg_adverse_events")
MARTS_RECONCILE_WITH_SRC = ("randomisation",)


DUCKDB_MEMORY_ENV = "WAREHOUSE_DUCKDB_MEMORY"
DEFAULT_DUCKDB_MEMORY = "1GB"


def connect_build(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to a build file (or in memory) with the build's DuckDB memory limit: DuckDB's default (80% of
    RAM) keeps every page it reads cached, which made a 10,000-subject build hold ~8 GB; above the limit it evicts
    and spills to disk instead. WAREHOUSE_DUCKDB_MEMORY sets it ('4GB'; '' for DuckDB's default)."""
    import os

    con = duckdb.connect(str(path) if path is not None else ":memory:", read_only=read_only)
    limit = os.environ.get(DUCKDB_MEMORY_ENV, DEFAULT_DUCKDB_MEMORY)
    if limit:
        con.execute(f"set memory_limit = '{limit}'")
    return con


class BuildError(Exception):
    """A build that cannot go on; the message is one line a person can act on."""


class PublishBlocked(BuildError):
    """Validation found errors: the previous warehouse stays published."""


@dataclass
class BuildRequest:
    data_dir: Path
    export: Path | None = None
    blinded: bool = True
    randomisation: Path | None = None
    study: StudyConfig = field(default_factory=load_study)
    demo_subjects: int = 32
    demo_seed: int = DEMO_SEED
    demo_inject_rate: float = 0.0
    keep_builds: int | None = None  # build files kept after a publish; None: WAREHOUSE_KEEP_BUILDS, else 5
    force: bool = False  # rebuild even when the published warehouse is up to date (same export, code and study)
    only_new: bool = False  # scheduled runs: do nothing when this export was already built or none has arrived

    @property
    def paths(self) -> BuildPaths:
        return BuildPaths(self.data_dir, self.blinded)


@dataclass
class BuildResult:
    build_id: str
    export_id: str
    published: Path | None
    report: Path
    analysis_report: Path
    subjects: int
    tables: list[str]
    errors: int
    warnings: int
    findings_open: int
    model_runs: list[ModelRun]
    stage_seconds: dict[str, float]
    blinded: bool
    up_to_date: bool = False  # nothing was rebuilt: the published build already has this export, code and study


# -- export -------------------------------------------------------------------------------------------------


def prepare_demo_export(request: BuildRequest) -> tuple[Path, Path | None]:
    """Generate the demo study's export under DIR/demo; its randomisation list goes only to an unblinded root.

    A blinded data directory must hold nothing that maps kits to arms, even after a kill: the demo is generated
    in a temporary folder under DIR/unblinded/ (where the restricted list is written), its export files are moved
    into DIR/demo/ by an atomic rename, and an unblinded build keeps the list as DIR/unblinded/restricted/
    randomisation.csv (also by rename). What a killed generation leaves stays under DIR/unblinded/ and is removed
    by the next one.
    """
    from warehouse.demo import generate_demo

    target = request.data_dir / "demo" / f"seed-{request.demo_seed}-n{request.demo_subjects}"
    restricted = request.data_dir / "unblinded"
    randomisation_target = restricted / "restricted" / "randomisation.csv"
    need_list = not request.blinded and request.randomisation is None
    if (target / "redcap").is_dir() and (not need_list or randomisation_target.is_file()):
        return target / "redcap", randomisation_target if need_list else None
    restricted.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(restricted, ".demo-")
    for old in request.data_dir.glob("demo-*"):  # earlier versions generated here: a killed one left its list
        if old.is_dir() and (old / "randomisation.csv").exists():
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".demo-{os.getpid()}-", dir=restricted))
    try:
        result = generate_demo(tmp, subjects=request.demo_subjects, seed=request.demo_seed,
                               inject_rate=request.demo_inject_rate)
        crash_point("demo")
        copy_demo_manifest(result.manifest_file, tmp / "manifest.blinded.json")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("redcap", "odm"):
            if (tmp / name).is_dir() and not (target / name).exists():
                os.rename(tmp / name, target / name)  # same file system: whole or absent
        os.replace(tmp / "manifest.blinded.json", target / "manifest.json")
        if need_list:
            randomisation_target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(result.randomisation_file, randomisation_target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not any(restricted.iterdir()):  # a blinded build leaves no unblinded root behind
            restricted.rmdir()
    return target / "redcap", randomisation_target if need_list else None


def remove_stale_temporaries(folder: Path, prefix: str) -> list[Path]:
    """Remove `<prefix><pid>-...` folders whose process is gone (a killed generation or landing)."""
    from warehouse.publish import pid_alive

    removed = []
    for path in folder.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def copy_demo_manifest(source: Path, target: Path) -> None:
    """The demo generator's manifest (seed, files, injected problems) without its `parameters`: they hold the
    simulation's per-arm targets (arm codes and labels, effect sizes and event rates by arm), which a blinded data
    directory must not keep."""
    import json

    manifest = json.loads(source.read_text(encoding="utf-8"))
    manifest.pop("parameters", None)
    target.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def check_export_path(export: Path) -> None:
    if not export.exists():
        raise BuildError(f"export not found: {export}")
    if export.is_dir() and not any(p.is_file() for p in export.iterdir()):
        raise BuildError(f"export folder is empty: {export}")


def land(export: Path, data_dir: Path, study: StudyConfig | None = None) -> str:
    """Land the export in the raw zone (a no-op when this content already landed); returns its export id.

    The study configuration's CSV dialect (`[export]`: encoding, delimiter, decimal mark) overrides detection."""
    from warehouse.extract import land_export

    check_export_path(export)
    options = study.export_options() if study is not None else {}
    export_id = land_export(export, data_dir, **options).export_id
    # the CSV reader's buffers go back to the system: Arrow's allocator keeps freed pages (~0.8 GB after landing
    # 10,000 subjects), and staging allocates through Polars' and DuckDB's own allocators, not through Arrow's
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    crash_point("extract")
    return export_id


# -- raw and staging ----------------------------------------------------------------------------------------


def read_meta(data_dir: Path, export_id: str) -> dict[str, pl.DataFrame]:
    from warehouse.extract import read_raw_meta

    return {name: read_raw_meta(data_dir, export_id, name) for name in META_TABLES}


def scan_raw(data_dir: Path, export_id: str, forms: pl.DataFrame | None = None) -> dict[str, pl.LazyFrame]:
    """The raw forms of one snapshot as lazy scans: nothing is read until a stage needs it."""
    return {form: pl.scan_parquet(path) for form, path in raw_form_files(data_dir, export_id, forms).items()}


def raw_form_files(data_dir: Path, export_id: str, forms: pl.DataFrame | None = None) -> dict[str, Path]:
    """The Parquet file of each raw form of one snapshot (forms of the metadata that have one); `forms`: the
    snapshot's forms metadata when the caller has read it already."""
    from warehouse.extract.rawzone import raw_table_path, snapshot_dir

    if forms is None:
        forms = read_meta(data_dir, export_id)["forms"]
    raw_dir = snapshot_dir(data_dir, export_id)
    paths = {form: raw_table_path(raw_dir, form) for form in forms.get_column("form").to_list()}
    return {form: path for form, path in paths.items() if path.exists()}


def read_raw(data_dir: Path, export_id: str) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """The raw forms and metadata tables of one snapshot, in memory."""
    return {f: lf.collect() for f, lf in scan_raw(data_dir, export_id).items()}, read_meta(data_dir, export_id)


def start_build(request: BuildRequest, export_id: str, fingerprint: str = "") -> tuple[str, Path]:
    """Open a new partial build file; earlier partial files (from killed builds) are discarded first."""
    paths = request.paths
    paths.builds.mkdir(parents=True, exist_ok=True)
    discard_partial_builds(paths)
    build_id = new_build_id(export_id)
    write_record(paths, BuildRecord(build_id=build_id, started_at=utc_now().isoformat(), export_id=export_id,
                                    blinded=request.blinded, fingerprint=fingerprint))
    return build_id, paths.partial_file(build_id)


# -- rebuilds: nothing to do when nothing changed ---------------------------------------------------------------

_CODE_FINGERPRINT: list[str] = []


def code_fingerprint() -> str:
    """SHA-256 over what turns an export into a warehouse: the package's Python files, the SQL models, the
    expectation suites and the versions of the libraries that compute it. Computed once per process (~10 ms)."""
    if not _CODE_FINGERPRINT:
        import hashlib

        from warehouse.publish import package_versions
        from warehouse.resources import expectations_dir

        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent
        roots = [(package, "*.py"), (package, "*.toml"), (sql_dir(), "*.sql"), (expectations_dir(), "*.json")]
        for root, pattern in roots:
            for path in sorted(root.rglob(pattern)):
                digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
                digest.update(path.read_bytes())
        digest.update(repr(sorted(package_versions().items())).encode())
        _CODE_FINGERPRINT.append(digest.hexdigest())
    return _CODE_FINGERPRINT[0]


def build_fingerprint(request: BuildRequest, export_id: str, randomisation: Path | None) -> str:
    """What a build's content depends on: the export's content, the code, the study configuration, blinding and
    (unblinded) the randomisation list's content. Two builds with the same fingerprint have the same tables."""
    import hashlib

    digest = hashlib.sha256()
    for part in (export_id, code_fingerprint(), str(request.blinded)):
        digest.update(part.encode() + b"\0")
    for path in (request.study.source, randomisation):
        if path is not None and Path(path).is_file():
            digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def published_build_id(paths: BuildPaths) -> str | None:
    if not paths.published.exists():
        return None
    try:
        with duckdb.connect(str(paths.published), read_only=True) as con:
            return con.execute("select build_id from src.build_info").fetchall()[0][0]
    except (duckdb.Error, IndexError):
        return None


def up_to_date_build(paths: BuildPaths, fingerprint: str) -> BuildRecord | None:
    """The published build's record when it was built with this fingerprint and the published file is still the
    one it made (its content hash as recorded), else None (a rebuild is due)."""
    from warehouse.publish import verify_published

    build_id = published_build_id(paths)
    for record in read_records(paths):
        if record.build_id == build_id:
            if record.status != "published" or record.fingerprint != fingerprint:
                return None
            checked = verify_published(paths)
            return record if checked is not None and checked.ok else None
    return None


def up_to_date_result(paths: BuildPaths, record: BuildRecord) -> BuildResult:
    """The published build, as the result of a build that had nothing to do."""
    subjects, tables = summarise(paths.published)
    with duckdb.connect(str(paths.published), read_only=True) as con:
        open_findings = con.execute("select count(*) from main.findings_history where status = 'open'").fetchall()[0][0]
    reports = paths.reports / record.build_id
    return BuildResult(build_id=record.build_id, export_id=record.export_id or "", published=paths.published,
                       report=reports / "validation.html", analysis_report=reports / "analysis.html",
                       subjects=subjects, tables=tables, errors=record.errors, warnings=record.warnings,
                       findings_open=int(open_findings), model_runs=[], stage_seconds={}, blinded=record.blinded,
                       up_to_date=True)


@dataclass
class NoNewExport:
    """What an `only_new` build returns when the export it finds was already built, or none has arrived yet:
    nothing to do, not an error."""

    export_id: str
    last_build_id: str | None
    data_dir: str
    published: Path | None = None

    def __str__(self) -> str:
        if not self.export_id:
            return "no export yet: nothing to do"
        return f"no new export: {self.export_id} was already built ({self.last_build_id})"


def export_present(export: Path) -> bool:
    """An export has arrived: a file, or a folder holding at least one file."""
    export = Path(export)
    return export.is_file() or (export.is_dir() and any(p.is_file() for p in export.iterdir()))


def export_content_id(export: Path) -> str | None:
    """The export id that landing would give this export (SHA-256 over its files' hashes), or None if unreadable.

    File hashes are memoised in the process (``land.file_hash``): the decisions below, the flow's cache key and the
    landing of one run hash each file once.
    """
    from warehouse.extract.land import export_files, export_id_of, file_hash

    try:
        hashes = {f.name: file_hash(f) for f in export_files(Path(export))}
    except Exception:  # noqa: BLE001 - extract itself reports (and quarantines) an unreadable export
        return None
    return export_id_of(hashes)


def nothing_to_do(request: BuildRequest, export: Path, randomisation: Path | None) -> NoNewExport | BuildResult | None:
    """The decisions a build takes before any work, from file hashes and the build records alone (no server, no
    lock, no parsing), so that a build with nothing to do answers in about a second: no export has arrived
    (`only_new`), this export was already built (`only_new`), or the published build already has this export,
    code and study (unless `force`). None: build. The command line asks before it starts Prefect; the flow and
    `run_build` ask again under the build lock, so a build that finished meanwhile is seen."""
    paths = request.paths
    published = paths.published if paths.published.exists() else None
    if request.only_new and not export_present(export):
        return NoNewExport("", None, str(request.data_dir), published)
    content_id = export_content_id(export)
    if content_id is None:
        return None
    if request.only_new:
        last_export, last_build = last_built_export(paths)
        if last_export == content_id:
            return NoNewExport(content_id, last_build, str(request.data_dir), published)
    if request.force:
        return None
    current = up_to_date_build(paths, build_fingerprint(request, content_id, randomisation))
    return up_to_date_result(paths, current) if current is not None else None


def check_export(export: Path, data_dir: Path, study: StudyConfig | None = None) -> None:
    """Refuse what is not an eCRF export before any build starts, quarantined with its reason as landing does:
    a folder of unrelated files, an XML file that is not ODM, a binary, an empty file. Reads the first 64 KiB of
    each file only; an export that looks right but is broken inside fails in extract."""
    from warehouse.extract.land import recognise_export

    check_export_path(export)
    options = study.export_options() if study is not None else {}
    recognise_export(export, data_dir, encoding=options.get("encoding"), delimiter=options.get("delimiter"))


def read_randomisation_list(path: Path, study: StudyConfig) -> pl.DataFrame:
    """The restricted kit -> arm list. Read only by unblinded builds."""
    frame = pl.read_csv(path, infer_schema=False)
    missing = {"kit_no", "arm"} - set(frame.columns)
    if missing:
        raise BuildError(f"{path}: randomisation list lacks column(s) {', '.join(sorted(missing))}")
    unknown = set(frame.get_column("arm").to_list()) - set(study.arms)
    if unknown:
        raise BuildError(f"{path}: unknown arm code(s) {', '.join(sorted(map(str, unknown)))}")
    return frame.select(
        "kit_no", "arm", pl.col("arm").replace_strict(study.arms, return_dtype=pl.Utf8).alias("arm_label")
    )


def empty_randomisation_list() -> pl.DataFrame:
    return pl.DataFrame(schema={"kit_no": pl.Utf8, "arm": pl.Utf8, "arm_label": pl.Utf8})


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
              "INTEGER[]": pl.List(pl.Int32)}
    columns = request.study.parameter_columns()
    parameters = pl.DataFrame({name: [value] for name, (value, _) in columns.items()},
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
        if isinstance(frame, str):
            con.execute(f"create or replace table {table} as {frame}")
        elif isinstance(frame, pl.LazyFrame):
            path = spill / f"{name}.parquet"
            # a spill read once, whole: lz4 writes ~20% faster than zstd, and no statistics (10,000 subjects:
            # hemodynamics sinks in ~15 s against ~16.5 s with them)
            frame.sink_parquet(path, compression="lz4", statistics=False)
            con.execute(f"create or replace table {table} as select * from read_parquet(?)", [str(path)])
            path.unlink()
        else:
            con.register("_frame", frame.to_arrow())
            try:
                con.execute(f"create or replace table {table} as select * from _frame")
            finally:
                con.unregister("_frame")
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"staging: table src.{name} could not be loaded: {reason}") from exc
    crash_point("stage")
    return con.execute(f"select count(*) from {table}").fetchall()[0][0]


def typing_failures_query(checks: dict[str, list]) -> str:
    """`src.typing_failures` read from the loaded forms' `_untyped` columns: form by form (sorted), item by item,
    in row order (the rows of `stage.failures_from_untyped`), without typing any value again."""
    from warehouse.extract.rawzone import quoted_table
    from warehouse.stage import TYPING_FAILURE_SCHEMA, typing_failures_sql

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


def stage(request: BuildRequest, export_id: str, build_file: Path, randomisation: Path | None) -> dict[str, int]:
    """Raw snapshot -> typed `src` tables in the build file, one form at a time, streamed; the typing failures
    are then read from the loaded forms' `_untyped` columns in DuckDB."""
    from warehouse.stage import form_checks, stage_lazy

    meta = read_meta(request.data_dir, export_id)
    raw = scan_raw(request.data_dir, export_id, meta["forms"])
    staged, _ = stage_lazy(raw, meta["items"], meta["choices"], request.study)
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
    "name": "Parameter name",
    "value": "Parameter value, as text",
    "form": "Form of the value that did not type",
    "item": "Item of the value that did not type",
    "raw_value": "The value as exported",
    "expected_type": "The type the metadata asks for",
}


def describe_sources(con: duckdb.DuckDBPyConnection, meta: dict[str, pl.DataFrame]) -> None:
    """Comments on the typed eCRF forms in `src`: the form's label, and each column's item label and units
    (from the export's metadata), so a staged item is described in any client and models downstream inherit it."""
    from warehouse.extract.rawzone import quoted_table
    from sqlglot import exp

    forms = {r["form"]: r.get("label") for r in meta["forms"].iter_rows(named=True)}
    items = {r["item"]: r for r in meta["items"].iter_rows(named=True)}
    columns = con.execute("select table_name, column_name from duckdb_columns() where schema_name = 'src' "
                          "and database_name = current_database()").fetchall()
    con.execute("begin transaction")
    for table in sorted({t for t, _ in columns}):
        text = SOURCE_TABLES.get(table) or f"eCRF form {forms.get(table) or table} ({table}), typed by staging"
        con.execute(f"comment on table {quoted_table(table, 'src')} is {quote_literal(text)}")
    for table, column in columns:
        text = SOURCE_COLUMNS.get(column) or item_description(column, items) or BUILD_TABLE_COLUMNS.get(column)
        if text:
            target = exp.column(exp.to_identifier(column, quoted=True), table=exp.to_identifier(table, quoted=True),
                                db="src").sql(dialect="duckdb")
            con.execute(f"comment on column {target} is {quote_literal(text)}")
    con.execute("commit")


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



# -- transform ------------------------------------------------------------------------------------------------


def plan_models(build_file: Path, sql_root: Path | None = None) -> list[Model]:
    """The models in the order they must run, each compiled against the staged `src` schema of the build (an
    unknown table or column fails here, naming file, line and column, before any model is written)."""
    from warehouse.compile import compile_models

    return compile_models(build_file, sql_root)


def document(build_file: Path, models: list[Model]) -> None:
    """Column lineage and the catalog (main.lineage, main.catalog), written into the build."""
    from warehouse.catalog import document_build
    from warehouse.compile import build_cache_dir

    with connect_build(build_file) as con:
        document_build(con, models, cache_dir=build_cache_dir(build_file))


def transform(build_file: Path) -> list[ModelRun]:
    """Compile, then run every model; the lineage and catalog are written once all models ran."""
    models = plan_models(build_file)
    result = run_models(build_file, models, transform_model)
    result.raise_for_failures()
    document(build_file, models)
    return result.runs


def run_models(build_file: Path, models: list[Model], run_one: Callable[[Path, Model], ModelRun],
               after: Callable[[int, Model], None] | None = None) -> RunResult:
    """Run the models in order with `run_one` (the flow passes its per-model task): a failed model stops its
    descendants only, and the result names both. One connection is held open around the loop, because each
    close of the last connection checkpoints the whole build file (~50 ms a model); it is also the session
    `transform_model` runs on (schemas prepared and the catalog's descriptions read once, not per model)."""
    from warehouse.models import hold_session

    tracker = RunTracker(models)
    with connect_build(build_file) as con, hold_session(build_file, con):
        for i, model in enumerate(models, 1):
            if tracker.should_run(model):
                try:
                    tracker.record(run_one(build_file, model))
                except Exception as err:  # noqa: BLE001 - recorded; raise_for_failures names it after the loop
                    tracker.fail(model, err)
            if after is not None:
                after(i, model)
    return tracker.result()


def transform_model(build_file: Path, model: Model) -> ModelRun:
    """Run one model into the build file: on the connection `run_models` holds open (see models.hold_session),
    else on a connection of its own."""
    from warehouse.models import held_session

    session = held_session(build_file)
    if session is not None:
        run = session.run(model)
    else:
        with connect_build(build_file) as con:
            prepare_schemas(con)
            run = run_model(con, model)
    crash_point("transform", model.name)
    return run


# -- validation ---------------------------------------------------------------------------------------------


def tables_of_schema(build_file: Path, schema: str) -> dict[str, pl.DataFrame]:
    with connect_build(build_file, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]
            ).fetchall()
        ]
        return {name: con.sql(f"select * from {schema}.{name}").pl() for name in names}


def preload_validation() -> None:
    """Start importing Great Expectations in the background (see validate.core.preload_gx): a build that goes on to
    validate does not wait ~8 s for the import after its transform."""
    from warehouse.validate.core import preload_gx

    preload_gx()


def validate_raw(data_dir: Path, export_id: str):
    """The raw stage's suites. Small exports: Great Expectations on the forms in memory; once a form has more
    than PUSHDOWN_ROW_THRESHOLD rows, every expectation runs as SQL in DuckDB over the Parquet files (same
    findings; memory flat in the size of the export)."""
    from warehouse.validate import PUSHDOWN_ROW_THRESHOLD, validate_stage, validate_stage_duckdb
    from warehouse.validate.pushdown import parquet_views
    from warehouse.validate.vanished import check_vanished

    from warehouse.stage import identifier_items

    meta = read_meta(data_dir, export_id)
    files = raw_form_files(data_dir, export_id, meta["forms"])
    rows = {form: pl.scan_parquet(path).select(pl.len()).collect().item() for form, path in files.items()}
    if max(rows.values(), default=0) <= PUSHDOWN_ROW_THRESHOLD:
        validation = validate_stage("raw", {f: pl.read_parquet(path) for f, path in files.items()}, metadata=meta)
    else:
        with connect_build() as con:
            validation = validate_stage_duckdb("raw", con, parquet_views(con, files, materialise=False), metadata=meta)
    validation = check_vanished(validation, data_dir, export_id)  # subjects/records of the published export gone
    return withhold_identifier_values(validation, identifier_items(meta["items"]), data_dir=data_dir,
                                      export_id=export_id)


from warehouse.validate.identifiers import IDENTIFIER_WITHHELD  # noqa: E402 - re-exported: one wording


def withhold_identifier_values(validation, identifiers: set[str] | None = None, *, data_dir: Path | None = None,
                               export_id: str | None = None):
    """Identifiers do not leave the raw zone, and findings go into the warehouse, the reports, the site listings,
    Data Docs and the artifacts. ``validation``: one StageValidation or a build's list of them, changed in place
    (and returned). Validation already withholds them where it makes findings (warehouse.validate.identifiers);
    this applies the same rules again to validations made elsewhere.

    ``identifiers`` (item names): a finding on an identifier field keeps subject and field, never the value; GX
    results of identifier columns lose their value lists. With ``data_dir`` and ``export_id``: every text column
    of every finding and result, and every string of the GX results, is also scrubbed of every identifier value
    of that export (read from its raw snapshot)."""
    from warehouse.validate.identifiers import export_identifier_values, withhold_identifiers

    values = None
    if data_dir is not None and export_id is not None:
        names, values = export_identifier_values(data_dir, export_id)
        identifiers = set(identifiers or ()) | names
    return withhold_identifiers(validation, identifiers, values)


def schema_tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    return [f"{schema}.{r[0]}" for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]).fetchall()]


def validate_staging(data_dir: Path, export_id: str, build_file: Path):
    """The staging suites on the typed `src` tables, in DuckDB when a table is large (see validate_raw)."""
    from warehouse.validate import validate_stage_auto

    meta = read_meta(data_dir, export_id)
    with connect_build(build_file, read_only=True) as con:
        return validate_stage_auto("staging", con, schema_tables(con, "src"), metadata=meta)


def validate_marts(build_file: Path):
    """The marts suites on `main` (plus the staging tables they reconcile with), in DuckDB when large."""
    from warehouse.validate import validate_stage_auto

    with connect_build(build_file, read_only=True) as con:
        staging = [t for t in schema_tables(con, "staging") if t.split(".")[-1] in MARTS_RECONCILE_WITH]
        src = [t for t in schema_tables(con, "src") if t.split(".")[-1] in MARTS_RECONCILE_WITH_SRC]
        return validate_stage_auto("marts", con, schema_tables(con, "main") + staging + src)


# -- publish ------------------------------------------------------------------------------------------------


def previous_findings(paths: BuildPaths) -> pl.DataFrame | None:
    """The findings history of the newest finished build, published or blocked, so that a finding keeps its
    first-seen build across builds that validation blocked (error findings live only in those), and a later
    export that fixes the value closes it. Falls back to the published warehouse (its build file pruned)."""
    candidates = [paths.build_file(r.build_id) for r in read_records(paths) if r.status in ("published", "blocked")]
    for path in [*candidates, paths.published]:
        if not path.exists():
            continue
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                return con.sql("select * from main.findings_history").pl()
        except duckdb.Error:
            continue
    return None


VALIDATION_COLUMNS = {
    "finding_id": "Stable id of the finding across builds: hash of stage, rule, subject, event, instance, form and field",
    "stage": "Validation stage: raw, staging or marts",
    "suite": "Expectation suite (file in expectations/, or generated from the export's metadata)",
    "table": "Table the expectation ran on",
    "rule": "The rule, in words",
    "expectation_type": "Great Expectations expectation type",
    "column": "Column the expectation checks",
    "severity": "error (blocks publishing) or warning (reported)",
    "success": "Whether the expectation passed",
    "element_count": "Rows checked",
    "unexpected_count": "Rows failing (counted in full; findings are capped per expectation)",
    "status": "passed | failed | skipped | error (results); open | closed (history)",
    "note": "Why an expectation was skipped, or what went wrong",
    "subject_id": "Subject of the failing row",
    "site_id": "Site of the failing row",
    "event": "Event (visit) of the failing row",
    "repeat_instance": "Repeat instance of the failing row",
    "form": "Form (or mart) of the failing row",
    "field": "Field that failed",
    "value": "The failing value as found (an identifier's value is withheld)",
    "message": "What to ask the site, in one line",
    "first_seen_build": "Build in which the finding was first seen",
    "last_seen_build": "Latest build in which the finding was seen",
    "first_seen_at": "When the finding was first seen (UTC)",
    "last_seen_at": "When the finding was last seen (UTC)",
    "closed_build": "Build in which the finding was no longer there (fixed), null while open",
    "closed_at": "When the finding was closed (UTC), null while open",
    "builds_seen": "Number of builds that saw the finding",
}


def record_validation(build_file: Path, paths: BuildPaths, build_id: str, validations: list) -> pl.DataFrame:
    """Write results, current findings and their history into the build file; returns the history."""
    from warehouse.validate import update_findings_history

    results = pl.concat([v.results for v in validations], how="diagonal_relaxed")
    findings = pl.concat([v.findings for v in validations], how="diagonal_relaxed")
    history = update_findings_history(
        previous_findings(paths), findings, build_id, utc_now(), stages=[v.stage for v in validations]
    )
    with connect_build(build_file) as con:
        for name, frame in (("validation_results", results), ("findings", findings), ("findings_history", history)):
            con.register("_frame", frame.to_arrow())
            con.execute(f"create or replace table main.{name} as select * from _frame")
            con.unregister("_frame")
        con.execute("comment on table main.findings is 'Validation findings of this build: one row per failing row and field, with subject, site, event, form, field, value, rule and severity.'")
        con.execute("comment on table main.findings_history is 'Every finding ever seen, with first and last build seen; a finding absent from a later build is closed.'")
        con.execute("comment on table main.validation_results is 'One row per expectation run in this build: stage, suite, rule, severity, counts.'")
        for table in ("findings", "findings_history", "validation_results"):
            present = {r[0] for r in con.execute(f"describe main.{table}").fetchall()}
            for column, text in VALIDATION_COLUMNS.items():
                if column in present:
                    con.execute(f'comment on column main.{table}."{column}" is {quote_literal(text)}')
        con.execute("checkpoint")
    return history


def record_changes(build_file: Path, data_dir: Path, export_id: str) -> int:
    """The change report against the previously landed export, as `main.export_changes` (what a data manager
    reviews after each transfer). Items flagged as identifiers are left out: they never leave the raw zone."""
    from warehouse.extract.changes import TABLE, write_changes_table
    from warehouse.stage import identifier_items, is_identifier

    identifiers = identifier_items(read_meta(data_dir, export_id)["items"])
    with connect_build(build_file) as con:
        rows = write_changes_table(con, data_dir, export_id)
        fields = [f for (f,) in con.execute(f"select distinct field from {TABLE} where field is not null").fetchall()
                  if is_identifier(f, identifiers)] if rows else []
        if fields:
            con.execute(f"delete from {TABLE} where field in ({', '.join('?' for _ in fields)})", fields)
        return con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]


def analyse(request: BuildRequest, build_file: Path, build_id: str, blocked: bool = False) -> Path:
    """Analysis tables (`ar_*`) into the build, and the analysis report; arms pooled in a blinded build."""
    from warehouse.analysis import analyse_build

    return analyse_build(build_file, request.paths.reports, build_id, list(request.study.arms.values()), blocked)


def write_report(paths: BuildPaths, build_id: str, validations: list, history: pl.DataFrame,
                 blocked: bool = False) -> Path:
    from warehouse.report import write_validation_report

    return write_validation_report(paths.reports, build_id, validations, history, blocked)


def publish(paths: BuildPaths, build_id: str, blocked: bool, keep: int | None = None) -> Path | None:
    """Complete the build file, and swap it in unless validation blocked it; then keep the last `keep` builds."""
    from warehouse.report import promote_reports

    final = finalise_build(paths, build_id)
    if blocked:
        return None
    published = swap_in(paths, final)
    promote_reports(paths.reports, build_id)
    prune_builds(paths, keep)
    return published


def summarise(build_file: Path) -> tuple[int, list[str]]:
    with connect_build(build_file, read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema in ('main', 'intermediate', 'staging') order by 1"
            ).fetchall()
        ]
        subjects = con.execute("select count(*) from main.adsl").fetchall()[0][0] if "main.adsl" in tables else 0
    return subjects, tables


def record_outcome(request: BuildRequest, build_id: str, export_id: str, build_file: Path, validations: list,
                   history: pl.DataFrame, model_runs: list[ModelRun], stage_seconds: dict[str, float],
                   published: Path | None, report: Path, analysis_report: Path) -> BuildResult:
    """Write the finished build's record (published or blocked) and return what the build did."""
    paths = request.paths
    blocked = published is None
    errors, warnings = count_findings(validations)
    final = paths.build_file(build_id)
    subjects, tables = summarise(final if final.exists() else build_file)
    earlier = next((r for r in read_records(paths) if r.build_id == build_id), None)
    write_record(paths, BuildRecord(
        build_id=build_id, started_at=earlier.started_at if earlier else build_id, export_id=export_id,
        blinded=request.blinded, status="blocked" if blocked else "published", finished_at=utc_now().isoformat(),
        subjects=subjects, tables=len(tables), errors=errors, warnings=warnings,
        message=f"{errors} error finding(s) blocked publishing" if blocked else "", stage_seconds=stage_seconds,
        fingerprint=earlier.fingerprint if earlier else "", sha256=earlier.sha256 if earlier else ""))
    open_findings = int((history.get_column("status") == "open").sum()) if history.height else 0
    return BuildResult(build_id=build_id, export_id=export_id, published=published, report=report,
                       analysis_report=analysis_report, subjects=subjects, tables=tables, errors=errors,
                       warnings=warnings, findings_open=open_findings, model_runs=model_runs,
                       stage_seconds=stage_seconds, blinded=request.blinded)


def fail_build(paths: BuildPaths, build_id: str, export_id: str, blinded: bool, err: BaseException) -> None:
    """Record a build that raised (a model failed, ...) as `failed`, and remove its partial build file at once,
    as after a crash: nothing of a failed build is left to look like a build. The record keeps the whole message
    (bounded): `warehouse status` shows it, a compile failure with every error."""
    from warehouse.publish import remove_partial_build

    remove_partial_build(paths, build_id)
    started = next((r.started_at for r in read_records(paths) if r.build_id == build_id), build_id)
    write_record(paths, BuildRecord(build_id=build_id, started_at=started, export_id=export_id, blinded=blinded,
                                    status="failed", finished_at=utc_now().isoformat(),
                                    message=failure_message(err, limit=4000)))


def failure_message(err: BaseException, limit: int = 300) -> str:
    """`Type: message`, cut to `limit` characters (a 100,000-column export must not give a 75 KB line)."""
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) <= limit else text[: limit - 30].rstrip() + f" ... ({len(text) - limit + 30} more chars)"


def count_findings(validations: list) -> tuple[int, int]:
    """Error and warning findings (failing rows, not rules) of a build's validations."""
    findings = pl.concat([v.findings for v in validations], how="diagonal_relaxed")
    if findings.height == 0:
        return 0, 0
    severity = findings.get_column("severity")
    return int((severity == "error").sum()), int((severity == "warning").sum())


def blocked_message(validations: list, result: BuildResult) -> str:
    failing = pl.concat([v.results for v in validations], how="diagonal_relaxed").filter(
        (pl.col("severity") == "error") & ~pl.col("success")
    )
    rules = ", ".join(f"{r['stage']}/{r['rule']}" for r in failing.head(3).iter_rows(named=True))
    more = f" and {failing.height - 3} more" if failing.height > 3 else ""
    return (
        f"publishing blocked: {result.errors} error finding(s) from {failing.height} failed rule(s) ({rules}{more}); "
        f"the previous warehouse stays published; report: {result.report}"
    )


def resolve_export(request: BuildRequest) -> tuple[Path, Path | None]:
    """The export to build and the randomisation list an unblinded build reads (None when blinded)."""
    if request.export is None:
        return prepare_demo_export(request)
    if not request.blinded and request.randomisation is None:
        raise BuildError("an unblinded build of a study export needs --randomisation FILE")
    return request.export, (None if request.blinded else request.randomisation)


def run_build(request: BuildRequest) -> BuildResult | NoNewExport:
    """The whole build without Prefect: `warehouse.build.run` with plain calls."""
    from warehouse.build import run

    return run(request)
