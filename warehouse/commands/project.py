"""`warehouse init`: a study project written from an export's own metadata (warehouse.project)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXIT_BAD_INPUT = 2


def init(
    export: Annotated[Path, typer.Option("--export", help="The study's eCRF export: a REDCap folder or an ODM file.")],
    out: Annotated[Path, typer.Option("--out", help="The project folder to write (created; files it writes are "
                                                   "overwritten, others left alone).")],
) -> None:
    """Write a study project (study.toml, staging models, a subject mart, suites) from an export's metadata."""
    from warehouse.extract import ExportError
    from warehouse.project import init_project

    if not export.exists():
        typer.echo(f"error: export not found: {export}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if out.exists() and not out.is_dir():
        typer.echo(f"error: --out is a file, not a folder: {out}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        result = init_project(export, out)
    except ExportError as err:
        typer.echo(f"error: ExportError: {err}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(f"Study project written to {out}: {len(result.forms)} form(s) of a {result.format} export "
               f"({result.export_id}), {len(result.files)} files")
    typer.echo(f"Next: warehouse build --project {out} --export {export}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
