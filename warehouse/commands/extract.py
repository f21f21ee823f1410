"""Extract-area commands: `warehouse extract` (land an export in the raw zone) and `warehouse changes` (the
change report between two raw snapshots).

`register` adds both; `extract` here replaces the older one defined in `warehouse/cli.py` (typer keeps the
command registered last under a name).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from warehouse.commands import DataDir

EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _value(v: str | None) -> str:
    """A value of the change report as printed: quoted text, "(empty)", or an identifier's withheld value."""
    from warehouse.extract.changes import IDENTIFIER_WITHHELD

    if v == IDENTIFIER_WITHHELD:
        return f"({IDENTIFIER_WITHHELD})"
    return "(empty)" if v is None else repr(v)


def _record(row: dict) -> str:
    parts = [row["subject_id"] or "-"]
    if row["event"] is not None:
        parts.append(row["event"])
    if row["repeat_instance"] is not None:
        parts.append(f"#{row['repeat_instance']}")
    return " ".join(parts)


def extract(
    export: Annotated[Path, typer.Option(help="Export folder or ODM file.")],
    data_dir: DataDir = Path("data"),
    encoding: Annotated[Optional[str], typer.Option(help="Encoding of the export's CSV files (e.g. cp1252); "
                                                    "default: detected per file.")] = None,
    delimiter: Annotated[Optional[str], typer.Option(help="Delimiter of the records CSV: one character, or "
                                                     "tab / semicolon / comma / pipe; default: detected.")] = None,
) -> None:
    """Land any REDCap or ODM export in the raw zone and print its forms (rows, subjects)."""
    from warehouse.extract import ExportError, land_export

    if not export.exists():
        _fail(f"export not found: {export}")
    if not os.access(export, os.R_OK):
        _fail(f"export {export}: no read permission")
    if data_dir.exists() and not data_dir.is_dir():
        _fail(f"data directory {data_dir} is a file, not a directory")
    try:
        result = land_export(export, data_dir, encoding=encoding, delimiter=delimiter)
    except ExportError as err:
        _fail(str(err))
    except OSError as err:  # an unreadable file inside the export, or a data directory we cannot write
        _fail(f"{err.filename or export}: {err.strerror or err}")
    state = "landed" if result.new else "already landed (no change)"
    typer.echo(f"Export {result.export_id} ({result.format}) {state}: {result.raw_dir}")
    for form, (rows, subjects_n) in sorted(result.forms.items()):
        typer.echo(f"  {form:<32} {rows:>9} rows {subjects_n:>7} subjects")


def changes(
    data_dir: DataDir = Path("data"),
    from_id: Annotated[Optional[str], typer.Option("--from", help="Older snapshot (export id or unique prefix); "
                                                   "default: the snapshot landed before --to.")] = None,
    to_id: Annotated[Optional[str], typer.Option("--to", help="Newer snapshot; default: the latest.")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write every change to this CSV file.")] = None,
    limit: Annotated[int, typer.Option(help="How many record / field changes to print.")] = 50,
) -> None:
    """Print what changed between two export snapshots: per form, records added, removed and changed, then
    the field-level old -> new values (default: the last two snapshots); an identifier item's values are
    withheld (the field shows as changed)."""
    from warehouse.extract import list_snapshots
    from warehouse.extract.changes import (SnapshotNotFound, change_summary, compare_snapshots, resolve_snapshot,
                                           snapshot_forms, snapshot_label)

    if data_dir.exists() and not data_dir.is_dir():  # a missing one: "need two snapshots ... 0 under DIR/raw"
        _fail(f"data directory {data_dir} is a file, not a directory")
    if csv is not None and csv.is_dir():
        _fail(f"--csv {csv} is a directory: name the CSV file to write")
    snapshots = list_snapshots(data_dir)
    ids = [s["export_id"] for s in snapshots]
    try:
        new = resolve_snapshot(data_dir, to_id, snapshots) if to_id else (ids[-1] if ids else None)
        if from_id:
            old = resolve_snapshot(data_dir, from_id, snapshots)
        else:
            k = ids.index(new) if new in ids else -1
            old = ids[k - 1] if k > 0 else None
    except SnapshotNotFound as err:
        _fail(str(err))
    if new is None or old is None:
        _fail(f"need two snapshots to compare; {len(ids)} under {Path(data_dir) / 'raw'}"
              + (f" ({new} is the first)" if new else ""))
    df = compare_snapshots(data_dir, old, new)
    forms = list(dict.fromkeys([*snapshot_forms(data_dir, new), *snapshot_forms(data_dir, old)]))
    summary = change_summary(df, forms)
    typer.echo(f"Changes from {snapshot_label(data_dir, old)}")
    typer.echo(f"          to {snapshot_label(data_dir, new)}")
    typer.echo(f"  {'form':<32} {'added':>7} {'removed':>7} {'changed':>7} {'fields':>7}")
    for r in summary.iter_rows(named=True):
        if r["added"] or r["removed"] or r["changed"]:
            typer.echo(f"  {r['form']:<32} {r['added']:>7} {r['removed']:>7} {r['changed']:>7} "
                       f"{r['fields_changed']:>7}")
    same = summary.filter((summary["added"] + summary["removed"] + summary["changed"]) == 0).height
    if same:
        typer.echo(f"  ({same} form(s) without a change)")
    if df.height == 0:
        typer.echo("No change.")
    else:
        typer.echo("")
        shown = df.head(max(limit, 0))
        for r in shown.iter_rows(named=True):
            if r["change"] == "changed":
                typer.echo(f"  {r['form']}  {_record(r)}  {r['field']}: {_value(r['old_value'])} -> "
                           f"{_value(r['new_value'])}")
            else:
                typer.echo(f"  {r['form']}  {_record(r)}  record {r['change']}")
        rest = df.height - shown.height
        if rest:
            typer.echo(f"  ... and {rest} more change(s)" + ("" if csv else " (--csv FILE writes them all)"))
    if csv is not None:
        df.write_csv(csv)
        typer.echo(f"All {df.height} change(s) written to {csv}")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("changes")(changes)
