"""Operations commands: `lock`, `locks`, `query`, `shell`, `serve` (docs/operations.md).

Analysts' commands open the published warehouse (or a locked snapshot) through the read-only session of
`warehouse.readonly`: DuckDB with external access off and its configuration locked, and a gate that runs only
read statements. A build publishing meanwhile never blocks them and never changes what an open connection sees;
each new session sees the current build. Bad input (a missing or unreadable file, a refused statement): one
`error:` line, exit 2.
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

from warehouse.commands import DataDir as DataDirOption  # noqa: E402
UnblindedOption = Annotated[bool, typer.Option("--unblinded", help="The unblinded warehouse (DIR/unblinded).")]
SnapshotOption = Annotated[Optional[str], typer.Option("--snapshot", help="A locked snapshot's label instead of "
                                                                          "the published warehouse.")]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def database_file(data_dir: Path, unblinded: bool, snapshot: str | None) -> Path:
    """The published warehouse (or a locked snapshot) to open; one `error:` line and exit 2 when there is none."""
    from warehouse.readonly import BadInput, warehouse_file

    try:
        return warehouse_file(data_dir, unblinded, snapshot)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
        raise  # unreachable


def connect_read_only(path: Path, unblinded: bool = False):
    """The read-only session on `path` (warehouse.readonly.open_read_only); exit 2 when it cannot be opened."""
    from warehouse.readonly import BadInput, open_read_only

    try:
        return open_read_only(path, blinded=not unblinded)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
        raise  # unreachable


TABLE_LIMIT = 100


def effective_limit(limit: int | None, fmt: str) -> int:
    """Rows to print: `--limit` when given (0 = all); else all rows for csv and json (machines read them), the
    first TABLE_LIMIT for the table (people read it; stderr says when more were not shown)."""
    if limit is not None:
        return max(limit, 0)
    return TABLE_LIMIT if fmt == "table" else 0


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
        sys.stdout.flush()
        if more:
            typer.echo(f"{len(rows)} row(s) written, more not written (--limit {limit})", err=True)
        return
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(columns, r)) for r in rows], default=str, indent=1))
        if more:
            typer.echo(f"{len(rows)} row(s) written, more not written (--limit {limit})", err=True)
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
    typer.echo(f"{len(rows)} row(s)" + (f", more not shown (--limit {limit}; --limit 0 shows all)" if more else ""),
               err=True)


def run_read_statement(con, sql: str, limit: int, fmt: str) -> None:
    """Run one statement through the gate (warehouse.readonly.check_statement) and print its result.
    Raises BadInput (refused, or DuckDB's error as one line)."""
    import duckdb

    from warehouse.readonly import BadInput, check_statement

    check_statement(sql)
    try:
        rel = con.sql(sql)
        if rel is None:
            typer.echo("ok (no result)", err=True)
            return
        print_relation(rel, limit, fmt)
    except duckdb.PermissionException as err:  # the engine's own layer: external access is off
        reason = str(err).splitlines()[0].replace("Permission Error: ", "")
        raise BadInput(f"refused: {reason} (a read-only session reads the warehouse and nothing else)") from None
    except duckdb.Error as err:
        raise BadInput(f"{type(err).__name__}: {err}".splitlines()[0]) from None


FormatOption = Annotated[str, typer.Option("--format", help="table, csv or json.")]
LimitOption = Annotated[Optional[int], typer.Option(help="Rows to print (0 = all). Default: all for csv and json, "
                                                         f"{TABLE_LIMIT} for the table.")]


def open_read_session(data_dir: Path, unblinded: bool, snapshot: str | None, fmt: str):
    """`query`'s and `shell`'s start: `--format` checked, then (path, read-only session) of the published warehouse
    or the snapshot; one `error:` line and exit 2 when any of them is wrong."""
    if fmt not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, not {fmt!r}", EXIT_BAD_INPUT)
    path = database_file(data_dir, unblinded, snapshot)
    return path, connect_read_only(path, unblinded)


def prefect_api_url() -> str | None:
    """The Prefect API URL in effect: the environment variable when set (no Prefect import), else Prefect's own
    settings (its profile may set it). An ephemeral server cannot schedule flows, so `serve` needs one."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement, run read-only.")],
    data_dir: DataDirOption = Path("data"), unblinded: UnblindedOption = False, snapshot: SnapshotOption = None,
    limit: LimitOption = None, format: FormatOption = "table",  # the read session's options (open_read_session)
) -> None:
    """Run one read-only SQL statement on the published warehouse and print the result."""
    from warehouse.readonly import BadInput

    _, con = open_read_session(data_dir, unblinded, snapshot, format)
    try:
        run_read_statement(con, sql, effective_limit(limit, format), format)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
    finally:
        con.close()


def shell(
    data_dir: DataDirOption = Path("data"), unblinded: UnblindedOption = False, snapshot: SnapshotOption = None,
    limit: LimitOption = None, format: FormatOption = "table",  # the read session's options (open_read_session)
) -> None:
    """A read-only SQL prompt on the published warehouse (statements end with `;`; .tables, .help, .quit).

    SQL piped on standard input runs statement by statement; the first error stops it (one line, exit 2)."""
    path, con = open_read_session(data_dir, unblinded, snapshot, format)
    try:
        code = sql_shell(con, path, lambda c, sql: run_read_statement(c, sql, effective_limit(limit, format),
                                                                       format))
    finally:
        con.close()
    if code:
        raise typer.Exit(code)


def lock(
    label: Annotated[str, typer.Option("--label", help="Name of the lock, e.g. interim-1 or final-db-lock.")],
    data_dir: DataDirOption = Path("data"),
    unblinded: UnblindedOption = False,
    note: Annotated[str, typer.Option(help="Free text kept in the manifest (why, who approved).")] = "",
) -> None:
    """Lock the published warehouse as a named read-only snapshot with a manifest of content hashes."""
    from warehouse.publish import BuildPaths, SnapshotError, lock_snapshot
    from warehouse.readonly import BadInput, check_dir

    paths = BuildPaths(data_dir, blinded=not unblinded)
    try:
        check_dir(data_dir)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
    if paths.published.exists():  # a file that is not a readable warehouse: say so before copying it
        connect_read_only(paths.published, unblinded).close()
    try:
        target = lock_snapshot(paths, label, note=note)
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

def locks(
    data_dir: DataDirOption = Path("data"),
    unblinded: UnblindedOption = False,
) -> None:
    """List the locked snapshots."""
    from warehouse.publish import BuildPaths, list_locks
    from warehouse.readonly import BadInput, check_dir

    try:
        check_dir(data_dir)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
    manifests = list_locks(BuildPaths(data_dir, blinded=not unblinded))
    if not manifests:
        typer.echo("no locked snapshots")
    for m in manifests:
        typer.echo(f"{m['label']:<24} {m['locked_at']}  build {m['build_id']}  "
                   f"export {', '.join(e['export_id'] for e in m['exports'])}  {m.get('note', '')}")

def serve(
    export: Annotated[Optional[Path], typer.Option(help="Folder the eCRF system drops exports into; default: "
                                                        "the demo study.")] = None,
    data_dir: DataDirOption = Path("data"),
    study: Annotated[Optional[str], typer.Option(help="Study TOML file or adress; default: the project's "
                                                      "study.toml.")] = None,
    cron: Annotated[str, typer.Option(help="When to look for a new export (cron).")] = "0 6 * * *",
    timezone: Annotated[str, typer.Option(help="Time zone of the cron schedule.")] = "Europe/Paris",
    name: Annotated[Optional[str], typer.Option(help="Deployment name (build-warehouse/<name>); default: the "
                                                     "study id in lower case.")] = None,
    keep_builds: Annotated[Optional[int], typer.Option("--keep-builds", min=1)] = None,
) -> None:
    """Serve the scheduled build of the study project (--project DIR) as a Prefect deployment in this process
    (needs PREFECT_API_URL)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from warehouse.resources import PROJECT_ENV, ProjectError, find_project

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)", EXIT_BAD_INPUT)
    if export is not None and not export.exists():
        fail(f"export folder not found: {export}", EXIT_BAD_INPUT)
    try:  # the active project: --project DIR (WAREHOUSE_PROJECT), else the current directory's, else the demo
        project = find_project(os.environ.get(PROJECT_ENV) or None)
    except ProjectError as err:
        fail(str(err), EXIT_BAD_INPUT)
    from flows.serve import deployment_name, study_id_of

    try:
        name = name or deployment_name(study_id_of(project, study))
    except (OSError, ValueError) as err:  # an unknown study, an unreadable or incomplete study TOML
        fail(str(err), EXIT_BAD_INPUT)
    if not prefect_api_url():
        fail("`warehouse serve` needs a Prefect server to schedule on: set PREFECT_API_URL (e.g. "
             "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`) or start one with "
             "`prefect server start`", EXIT_BAD_INPUT)
    from flows.serve import serve_builds

    typer.echo(f"Serving build-warehouse/{name}: project {project}, cron '{cron}' ({timezone}), data {data_dir}, "
               f"export {export or 'demo'}; Ctrl-C to stop", err=True)
    serve_builds(data_dir, export, study, cron=cron, timezone=timezone, name=name, keep_builds=keep_builds,
                 project=project)


# -- the SQL prompt of `warehouse shell` --------------------------------------------------------------------------

SHELL_HELP = """Statements end with `;` and may span lines; each runs read-only (SELECT, WITH, DESCRIBE, SHOW,
SUMMARIZE, EXPLAIN, read-only PRAGMA).
  .tables          the tables of the warehouse (schema, name, rows)
  .help            this help
  .quit / .exit    leave (or Ctrl-D)"""
TABLES_SQL = ("select schema_name as schema, table_name as table, estimated_size as rows from duckdb_tables() "
          "where database_name = current_database() order by schema_name, table_name")
HISTORY_FILE = Path("~/.warehouse_history")


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(shell)
    app.command()(lock)
    app.command()(locks)
    app.command()(serve)


def statement_complete(text: str) -> bool:
    """True when `text` ends with a `;` outside string literals, quoted names and comments."""
    state, last = None, ""
    i, n = 0, len(text)
    while i < n:
        ch, nxt = text[i], text[i + 1: i + 2]
        if state is None:
            if ch in ("'", '"'):
                state = ch
            elif ch == "-" and nxt == "-":
                state = "--"
            elif ch == "/" and nxt == "*":
                state, i = "/*", i + 1
            elif not ch.isspace():
                last = ch
        elif state in ("'", '"'):
            if ch == state:
                if nxt == state:
                    i += 1
                else:
                    state = None
                    last = ch
        elif state == "--":
            if ch == "\n":
                state = None
        elif state == "/*" and ch == "*" and nxt == "/":
            state, i = None, i + 1
        i += 1
    return state in (None, "--") and last == ";"


def _history(load: bool):
    try:
        import readline
    except ImportError:  # not on every platform (Windows without pyreadline): the prompt works without history
        return None
    path = HISTORY_FILE.expanduser()
    try:
        if load:
            readline.set_history_length(1000)
            if path.exists():
                readline.read_history_file(path)
        else:
            readline.write_history_file(path)
    except OSError:
        pass
    return readline


def sql_shell(con, path: Path, run) -> int:
    """Read SQL from the terminal (a prompt with history) or from piped standard input, run each statement with
    `run(con, sql)`. Returns the exit code: 0, or 2 after the first error of piped input (one `error:` line)."""
    from warehouse.readonly import BadInput, split_statements

    interactive = sys.stdin.isatty()
    if interactive:
        _history(load=True)
        typer.echo(f"Read-only warehouse {path}\n{SHELL_HELP}", err=True)

    def execute(text: str) -> bool:
        try:
            for statement in split_statements(text):
                run(con, statement)
        except BadInput as err:
            typer.echo(f"error: {err}", err=True)
            return False
        return True

    buffer: list[str] = []
    lines = None if interactive else iter(sys.stdin)
    try:
        while True:
            try:
                if interactive:
                    line = input("warehouse> " if not buffer else "      ...> ")
                else:
                    line = next(lines).rstrip("\n")
            except (EOFError, StopIteration):
                break
            except KeyboardInterrupt:
                typer.echo("", err=True)
                buffer = []
                continue
            if not buffer and line.strip().startswith("."):
                command = line.strip().split()[0].lower()
                if command in (".quit", ".exit", ".q"):
                    break
                if command == ".help":
                    typer.echo(SHELL_HELP, err=True)
                    continue
                if command == ".tables":
                    ok = execute(TABLES_SQL)
                else:
                    typer.echo(f"error: unknown command {command} (.help lists them)", err=True)
                    ok = False
                if not ok and not interactive:
                    return EXIT_BAD_INPUT
                continue
            if not buffer and not line.strip():
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if statement_complete(text):
                buffer = []
                if not execute(text) and not interactive:
                    return EXIT_BAD_INPUT
        rest = "\n".join(buffer).strip()
        if rest and not interactive and not execute(rest):  # piped input may end without a last `;`
            return EXIT_BAD_INPUT
    finally:
        if interactive:
            _history(load=False)
    return 0
