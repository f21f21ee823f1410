"""`warehouse export`: the published marts for statisticians' tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        out: Annotated[Optional[Path], typer.Option(
            help="Folder to write the exports into (default DIR/exports; with --unblinded DIR/unblinded/exports: "
                 "an unblinded export goes under DIR/unblinded/ only, a blinded one never does).")] = None,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Data directory.")] = Path("data"),
        unblinded: Annotated[bool, typer.Option("--unblinded", help="Export the unblinded warehouse.")] = False,
        format: Annotated[str, typer.Option(help="Comma-separated: parquet, csv, xpt.")] = "parquet,csv,xpt",
        warehouse: Annotated[Optional[Path], typer.Option(help="A warehouse file (default: the published one).")] = None,
    ) -> None:
        """Write every mart as Parquet, CSV and SAS transport (XPT v5, with variable labels)."""
        from warehouse.analyse.exports import check_export_dir, default_export_dir, export_marts
        from warehouse.publish import BuildPaths

        out = out or default_export_dir(data_dir, unblinded)
        try:
            check_export_dir(out, data_dir, unblinded)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        source = warehouse or BuildPaths(data_dir, blinded=not unblinded).published
        if not source.exists():
            typer.echo(f"error: no warehouse at {source} (run `warehouse build` first)", err=True)
            raise typer.Exit(2)
        from warehouse.readonly import BadInput, open_read_only

        try:  # a directory, a file that is not a DuckDB database, an unreadable one: one line, exit 2
            open_read_only(source, blinded=not unblinded).close()
        except BadInput as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        formats = tuple(f.strip().lower() for f in format.split(",") if f.strip())
        try:
            exported = export_marts(source, out, formats, blinded=not unblinded)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        for mart in exported:
            files = ", ".join(p.name for p in mart.files.values())
            typer.echo(f"{mart.table:<14} {mart.rows:>8} rows  {files}")
        typer.echo(f"written to {out}")
