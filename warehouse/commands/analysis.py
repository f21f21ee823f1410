"""`warehouse export`: the published analysis tables (marts and ar_* results) for statisticians' tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from warehouse.commands import DataDir


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        out: Annotated[Optional[Path], typer.Option(
            help="Folder to write the exports into (default DIR/exports; with --unblinded DIR/unblinded/exports: "
                 "an unblinded export goes under DIR/unblinded/ only, a blinded one never does).")] = None,
        data_dir: DataDir = Path("data"),
        unblinded: Annotated[bool, typer.Option("--unblinded", help="Export the unblinded warehouse.")] = False,
        format: Annotated[str, typer.Option(help="Comma-separated: parquet, csv, xpt.")] = "parquet,csv,xpt",
        warehouse: Annotated[Optional[Path], typer.Option(help="A warehouse file (default: the published one).")] = None,
        tables: Annotated[Optional[str], typer.Option(
            help="Comma-separated tables of the warehouse's main schema (default: the marts and every ar_* "
                 "result; e.g. 'adsl,findings').")] = None,
    ) -> None:
        """Write the marts and analysis results as Parquet (with column and dataset labels), CSV and SAS transport
        (XPT v5: ASCII, labels of at most 40 characters, unique per dataset)."""
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
            chosen = tuple(t.strip() for t in tables.split(",") if t.strip()) if tables else None
            exported = export_marts(source, out, formats, chosen, blinded=not unblinded)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        for mart in exported:
            files = ", ".join(p.name for p in mart.files.values())
            typer.echo(f"{mart.table:<14} {mart.rows:>8} rows  {files}")
        typer.echo(f"written to {out}")
