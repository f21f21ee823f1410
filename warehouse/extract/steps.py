"""The extract stage as the build calls it: which export, is it one, land it, and read the raw zone back.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.demo.prepare import prepare_demo_export
from warehouse.publish import (
    crash_point,
)
from warehouse.request import BuildError, BuildRequest
from warehouse.study import StudyConfig

META_TABLES = ("items", "choices", "events", "forms")


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


def check_export(export: Path, data_dir: Path, study: StudyConfig | None = None) -> None:
    """Refuse what is not an eCRF export before any build starts, quarantined with its reason as landing does:
    a folder of unrelated files, an XML file that is not ODM, a binary, an empty file. Reads the first 64 KiB of
    each file only; an export that looks right but is broken inside fails in extract."""
    from warehouse.extract.land import recognise_export

    check_export_path(export)
    options = study.export_options() if study is not None else {}
    recognise_export(export, data_dir, encoding=options.get("encoding"), delimiter=options.get("delimiter"))


def resolve_export(request: BuildRequest) -> tuple[Path, Path | None]:
    """The export to build and the randomisation list an unblinded build reads (None when blinded)."""
    if request.export is None:
        return prepare_demo_export(request)
    if not request.blinded and request.randomisation is None:
        raise BuildError("an unblinded build of a study export needs --randomisation FILE")
    return request.export, (None if request.blinded else request.randomisation)
