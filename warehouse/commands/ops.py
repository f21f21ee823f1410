"""Operations commands: `lock`, `locks`, `query`, `shell`, `serve` (docs/operations.md).

Analysts' commands open the published warehouse (or a locked snapshot) read-only: a build publishing meanwhile
never blocks them and never changes what an open connection sees.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_BAD_INPUT = 2
EXIT_FAILED = 3
EXIT_BUSY = 4

DataDirOption = Annotated[Path, typer.Option("--data-dir", help="Data directory (raw zone, builds, warehouse).")]
UnblindedOption = Annotated[bool, typer.Option("--unblinded", help="The unblinded warehouse (DIR/unblinded).")]
SnapshotOption = Annotated[Optional[str], typer.Option("--snapshot", help="A locked snapshot's label instead of "
                                                                          "the published warehouse.")]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def database_file(data_dir: Path, unblinded: bool, snapshot: str | None) -> Path:
    from warehouse.publish import LOCKS_DIR, BuildPaths

    paths = BuildPaths(data_dir, blinded=not unblinded)
    path = paths.root / LOCKS_DIR / snapshot / "warehouse.duckdb" if snapshot else paths.published
    if not path.exists():
        what = f"locked snapshot {snapshot!r}" if snapshot else "published warehouse"
        fail(f"no {what} at {path}" + ("" if snapshot else ": run `warehouse build` first"), EXIT_BAD_INPUT)
    return path


def connect_read_only(path: Path):
    import duckdb

    return duckdb.connect(str(path), read_only=True)


def print_relation(rel, limit: int, fmt: str) -> None:
    columns = list(rel.columns)
    rows = rel.limit(limit + 1).fetchall() if limit > 0 else rel.fetchall()
    more = len(rows) > limit > 0
    rows = rows[:limit] if more else rows
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(columns, r)) for r in rows], default=str, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(str(c), overflow="fold")
    for r in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in r))
    console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 80))
    console.print(table)
    typer.echo(f"{len(rows)} row(s)" + (f", more not shown (--limit {limit})" if more else ""), err=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def query(
        sql: Annotated[str, typer.Argument(help="One SQL statement, run read-only.")],
        data_dir: DataDirOption = Path("data"),
        unblinded: UnblindedOption = False,
        snapshot: SnapshotOption = None,
        limit: Annotated[int, typer.Option(help="Rows to print (0 = all).")] = 100,
        format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    ) -> None:
        """Run a SQL query on the published warehouse (read-only) and print the result."""
        import duckdb

        if format not in ("table", "csv", "json"):
            fail(f"--format must be table, csv or json, not {format!r}", EXIT_BAD_INPUT)
        path = database_file(data_dir, unblinded, snapshot)
        try:
            with connect_read_only(path) as con:
                rel = con.sql(sql)
                if rel is None:
                    typer.echo("ok (no result)", err=True)
                    return
                print_relation(rel, limit, format)
        except duckdb.Error as err:
            fail(f"{type(err).__name__}: {err}".splitlines()[0], EXIT_BAD_INPUT)

    @app.command()
    def shell(
        data_dir: DataDirOption = Path("data"),
        unblinded: UnblindedOption = False,
        snapshot: SnapshotOption = None,
    ) -> None:
        """Open an interactive read-only session: the duckdb CLI if installed, else a Python prompt."""
        path = database_file(data_dir, unblinded, snapshot)
        duckdb_cli = shutil.which("duckdb")
        if duckdb_cli:
            os.execv(duckdb_cli, [duckdb_cli, "-readonly", str(path)])
        python_shell(path)

    @app.command()
    def lock(
        label: Annotated[str, typer.Option("--label", help="Name of the lock, e.g. interim-1 or final-db-lock.")],
        data_dir: DataDirOption = Path("data"),
        unblinded: UnblindedOption = False,
        note: Annotated[str, typer.Option(help="Free text kept in the manifest (why, who approved).")] = "",
    ) -> None:
        """Lock the published warehouse as a named read-only snapshot with a manifest of content hashes."""
        from warehouse.publish import BuildPaths, SnapshotError, lock_snapshot

        try:
            target = lock_snapshot(BuildPaths(data_dir, blinded=not unblinded), label, note=note)
        except SnapshotError as err:
            fail(str(err), EXIT_BAD_INPUT)
        except Exception as err:  # noqa: BLE001 - one line for people; nothing of a failed lock stays visible
            fail(f"{type(err).__name__}: {err}".splitlines()[0], EXIT_FAILED)
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        typer.echo(f"Locked {label}: {target}")
        typer.echo(f"  build {manifest['build_id']}  export {', '.join(e['export_id'] for e in manifest['exports'])}"
                   f"  code {manifest['code_version']}")
        typer.echo(f"  {len(manifest['tables'])} tables, {sum(t['rows'] for t in manifest['tables'].values())} rows;"
                   f" file sha256 {manifest['file']['sha256'][:16]}...")

    @app.command()
    def locks(
        data_dir: DataDirOption = Path("data"),
        unblinded: UnblindedOption = False,
    ) -> None:
        """List the locked snapshots."""
        from warehouse.publish import BuildPaths, list_locks

        manifests = list_locks(BuildPaths(data_dir, blinded=not unblinded))
        if not manifests:
            typer.echo("no locked snapshots")
        for m in manifests:
            typer.echo(f"{m['label']:<24} {m['locked_at']}  build {m['build_id']}  "
                       f"export {', '.join(e['export_id'] for e in m['exports'])}  {m.get('note', '')}")

    @app.command()
    def serve(
        export: Annotated[Optional[Path], typer.Option(help="Folder the eCRF system drops exports into; default: "
                                                            "the demo study.")] = None,
        data_dir: DataDirOption = Path("data"),
        study: Annotated[Optional[str], typer.Option(help="Study name or TOML file; default: the demo study.")] = None,
        cron: Annotated[str, typer.Option(help="When to look for a new export (cron).")] = "0 6 * * *",
        timezone: Annotated[str, typer.Option(help="Time zone of the cron schedule.")] = "Europe/Paris",
        name: Annotated[str, typer.Option(help="Deployment name (build-warehouse/<name>).")] = "served",
        keep_builds: Annotated[Optional[int], typer.Option("--keep-builds", min=1)] = None,
    ) -> None:
        """Serve the scheduled build as a Prefect deployment in this process (needs PREFECT_API_URL)."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            fail(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)", EXIT_BAD_INPUT)
        if export is not None and not export.exists():
            fail(f"export folder not found: {export}", EXIT_BAD_INPUT)
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            typer.echo("warning: no PREFECT_API_URL: serving against a temporary Prefect server that stops with this "
                       "process", err=True)
        from flows.serve import serve_builds

        typer.echo(f"Serving build-warehouse/{name}: cron '{cron}' ({timezone}), data {data_dir}, "
                   f"export {export or 'demo'}; Ctrl-C to stop", err=True)
        serve_builds(data_dir, export, study, cron=cron, timezone=timezone, name=name, keep_builds=keep_builds)


def python_shell(path: Path) -> None:
    """A small read-only REPL: `con` is a read-only DuckDB connection, `q("select ...")` prints a result."""
    import code

    con = connect_read_only(path)

    def q(sql: str, limit: int = 50):
        print_relation(con.sql(sql), limit, "table")

    banner = (f"Read-only warehouse {path}\n"
              "  q(\"select * from adsl\")      print a query's result\n"
              "  con.sql(\"...\").pl()          a Polars frame\n"
              "  tables: q(\"show all tables\"); Ctrl-D to leave")
    try:
        code.interact(banner=banner, local={"con": con, "q": q}, exitmsg="")
    finally:
        con.close()
