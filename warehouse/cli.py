"""The `warehouse` command.

Exit codes: 0 done; 1 validation blocked publishing (the previous warehouse stays published); 2 bad input or
usage (missing or unreadable export: the message names file, line and field; the export is quarantined);
3 a model or another build step failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Clinical-trial data warehouse: eCRF exports -> validated marts in DuckDB.",
    pretty_exceptions_enable=False,
)

EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3

DataDir = Annotated[Path, typer.Option("--data-dir", help="Data directory (raw zone, builds, warehouse).")]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_build_summary(result) -> None:
    typer.echo("")
    state = "published" if result.published else "built (not published)"
    typer.echo(f"Warehouse {state}: {result.published or ''}")
    typer.echo(f"Validation report:  {result.report}")
    marts = [t for t in result.tables if t.startswith("main.")]
    typer.echo(
        f"Subjects: {result.subjects}   Tables: {len(result.tables)} ({len(marts)} in main)   "
        f"Findings: {result.errors} error, {result.warnings} warning   "
        f"{'blinded' if result.blinded else 'UNBLINDED'} build {result.build_id}"
    )


@app.command()
def build(
    export: Annotated[Optional[Path], typer.Option(help="Export folder or ODM file; default: the demo study.")] = None,
    data_dir: DataDir = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="Build with treatment arms (separate location).")] = False,
    randomisation: Annotated[Optional[Path], typer.Option(help="Randomisation list (kit_no,arm) for --unblinded.")] = None,
) -> None:
    """Build and publish the warehouse from an eCRF export (the demo study when none is given)."""
    from warehouse.pipeline import BuildError, PublishBlocked

    if randomisation is not None and not unblinded:
        fail("--randomisation is only read by an --unblinded build", EXIT_BAD_INPUT)
    if export is not None:
        if not export.exists():
            fail(f"export not found: {export}", EXIT_BAD_INPUT)
        if export.is_dir() and not any(export.iterdir()):
            fail(f"export folder is empty: {export}", EXIT_BAD_INPUT)
    from flows.build import build_warehouse

    try:
        result = build_warehouse(
            data_dir=str(data_dir),
            export=str(export) if export else None,
            unblinded=unblinded,
            randomisation=str(randomisation) if randomisation else None,
        )
    except PublishBlocked as err:
        fail(str(err), EXIT_BLOCKED)
    except BuildError as err:
        fail(str(err), EXIT_BAD_INPUT)
    except Exception as err:  # noqa: BLE001 - the one place that turns any failure into one line and a code
        code = EXIT_BAD_INPUT if type(err).__name__ == "ExportError" else EXIT_FAILED
        fail(f"{type(err).__name__}: {err}".splitlines()[0], code)
    print_build_summary(result)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder to write the demo exports into.")],
    subjects: Annotated[int, typer.Option(help="Number of randomised subjects.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, byte-identical files).")] = 20190515,
    inject_rate: Annotated[float, typer.Option(help="Rate of injected data-quality problems (0 = clean).")] = 0.0,
    format: Annotated[str, typer.Option(help="redcap, odm or both.")] = "both",
) -> None:
    """Write the synthetic demo study as eCRF exports (REDCap CSV and/or CDISC ODM), with its manifest."""
    from warehouse.demo import generate_demo

    formats = {"both": ("redcap", "odm"), "redcap": ("redcap",), "odm": ("odm",)}.get(format)
    if formats is None:
        fail(f"--format must be redcap, odm or both, not {format!r}", EXIT_BAD_INPUT)
    result = generate_demo(out, subjects=subjects, seed=seed, inject_rate=inject_rate, formats=formats)
    typer.echo(f"Demo study written to {out}: {subjects} subjects, seed {seed}, "
               f"{len(result.problems)} injected problem(s)")
    for label, path in (("REDCap", result.redcap_dir), ("ODM", result.odm_file),
                        ("randomisation list (restricted)", result.randomisation_file),
                        ("manifest", result.manifest_file)):
        if path:
            typer.echo(f"  {label}: {path}")


@app.command()
def extract(
    export: Annotated[Path, typer.Option(help="Export folder or ODM file.")],
    data_dir: DataDir = Path("data"),
) -> None:
    """Land any REDCap or ODM export in the raw zone and print its forms (rows, subjects)."""
    from warehouse.extract import ExportError, land_export

    if not export.exists():
        fail(f"export not found: {export}", EXIT_BAD_INPUT)
    try:
        result = land_export(export, data_dir)
    except ExportError as err:
        fail(str(err), EXIT_BAD_INPUT)
    state = "landed" if result.new else "already landed (no change)"
    typer.echo(f"Export {result.export_id} ({result.format}) {state}: {result.raw_dir}")
    for form, (rows, subjects_n) in sorted(result.forms.items()):
        typer.echo(f"  {form:<32} {rows:>9} rows {subjects_n:>7} subjects")


@app.command()
def status(
    data_dir: DataDir = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="List the unblinded builds.")] = False,
    limit: Annotated[int, typer.Option(help="How many builds to list.")] = 10,
) -> None:
    """List recent builds: time, export, result, findings."""
    from warehouse.publish import BuildPaths, read_records

    paths = BuildPaths(data_dir, blinded=not unblinded)
    records = read_records(paths)[:limit]
    if not records:
        typer.echo(f"no builds under {paths.root}")
        return
    typer.echo(f"published: {paths.published if paths.published.exists() else '(none)'}")
    for r in records:
        typer.echo(f"{r.build_id}  export {r.export_id or '-':<16}  {r.status:<9}  subjects {r.subjects or '-':>5}  "
                   f"errors {r.errors:>4}  warnings {r.warnings:>4}  {r.message}")


def register_areas() -> None:
    """Add the sub-commands of each area module that exists (see `warehouse.commands`)."""
    import importlib

    from warehouse.commands import AREAS

    for area in AREAS:
        try:
            module = importlib.import_module(f"warehouse.commands.{area}")
        except ModuleNotFoundError as err:
            if err.name != f"warehouse.commands.{area}":
                raise
            continue
        module.register(app)


register_areas()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
