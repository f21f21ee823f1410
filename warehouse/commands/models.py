"""`warehouse compile | lineage | docs | run | test`: the SQL model runner's commands.

Exit codes as in `warehouse.cli`: 2 bad input or usage (no build to read the `src` schema from, a missing data
directory, a file that is not a DuckDB database, an unknown model or column, a malformed unit case: one `error:`
line); 3 a model failed to compile or to run (the message names file, line and column); `warehouse test`: 1 when
a unit case fails.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from warehouse.commands import DataDir as DataDirOption  # noqa: E402
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _data_dir(data_dir: Path) -> Path:
    """`data_dir` is an existing directory, else one `error:` line and exit 2."""
    if not data_dir.exists():
        _fail(f"data directory not found: {data_dir} (run `warehouse build --data-dir {data_dir}` first)",
              EXIT_BAD_INPUT)
    if not data_dir.is_dir():
        _fail(f"data directory {data_dir} is a file, not a directory", EXIT_BAD_INPUT)
    return data_dir


def _database(path: Path, blinded: bool | None = None) -> Path:
    """`path` opens as a DuckDB database (read-only session), else one `error:` line naming it and exit 2."""
    from warehouse.readonly import BadInput, open_read_only

    try:
        open_read_only(path, blinded=blinded).close()
    except BadInput as err:
        _fail(str(err), EXIT_BAD_INPUT)
    return path


def _source(data_dir: Path, unblinded: bool | None) -> Path:
    from warehouse.transform.compile import find_source_database

    _data_dir(data_dir)
    try:
        source = find_source_database(data_dir, unblinded)
    except FileNotFoundError as err:
        _fail(str(err), EXIT_BAD_INPUT)
        raise  # unreachable
    return _database(source)


def compile_command(
    data_dir: DataDirOption = Path("data"),
    database: Annotated[Optional[Path], typer.Option(help="Compile against this build or warehouse file.")] = None,
) -> None:
    """Check every SQL model against the staged schema and its upstream models, writing nothing.

    The `src` schema comes from the newest build file under DIR/builds (or DIR/unblinded/builds), else the
    published warehouse; --database names a file instead."""
    from warehouse.transform.compile import CompileError, compile_database
    from warehouse.transform.models import ModelError

    source = _database(database) if database is not None else _source(data_dir, None)
    started = time.perf_counter()
    try:
        compiled = compile_database(source)
    except CompileError as err:
        _fail(str(err), EXIT_FAILED)
    except ModelError as err:
        _fail(str(err), EXIT_FAILED)
    seconds = time.perf_counter() - started
    for name in compiled.order:
        unit = compiled.compiled[name]
        typer.echo(f"  ok  {unit.model.relation:<40} {len(unit.columns):>3} columns   {unit.model.path.name}")
    for warning in compiled.warnings:
        typer.echo(f"  warning: {warning}")
    typer.echo(f"{len(compiled.compiled)} models compiled in {seconds:.2f} s against the src schema of {source}")


def lineage_command(
    column: Annotated[str, typer.Argument(help="<table>.<column>, e.g. adeff.AVAL")],
    data_dir: DataDirOption = Path("data"),
    live: Annotated[bool, typer.Option("--live", help="Derive from the current SQL, not the published lineage.")] = False,
) -> None:
    """Print the chain of models and columns back to the raw eCRF form and item.

    A mart column is read from the published warehouse's `main.lineage` (what the published numbers came from);
    any other column, or --live, is derived from the current SQL files."""
    from warehouse.transform.compile import compile_database
    from warehouse.transform.lineage import Lineage, format_chain, stored_lineage
    from warehouse.transform.models import ModelError

    table, _, name = column.rpartition(".")
    if not table or not name:
        _fail(f"lineage needs <table>.<column>, not '{column}'", EXIT_BAD_INPUT)
    published = _data_dir(data_dir) / "warehouse.duckdb"
    if not live and published.exists():
        _database(published)
    rows = None if live or not published.is_file() else stored_lineage(published, table.rpartition(".")[2], name)
    origin = f"stored lineage of {published}"
    if rows is None:
        source = _source(data_dir, None)
        try:
            rows = Lineage(compile_database(source)).chain(table.rpartition(".")[2], name)
        except ModelError as err:
            _fail(str(err), EXIT_BAD_INPUT)
        origin = "derived from the current SQL"
    typer.echo(format_chain(rows))
    raw = sorted({f"{r['raw_form']}.{r['raw_item']}" for r in rows if r["raw_form"]})
    typer.echo(f"\nraw eCRF items: {', '.join(raw) if raw else '(none)'}   ({origin})")


def docs_command(
    data_dir: DataDirOption = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="Document the unblinded warehouse.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="HTML file to write; default DIR/reports/catalog.html.")] = None,
) -> None:
    """Write the catalog of the published warehouse as one self-contained HTML page with the dependency graph."""
    from warehouse.transform.catalog import write_catalog_html
    from warehouse.publish import BuildPaths

    paths = BuildPaths(_data_dir(data_dir), blinded=not unblinded)
    if not paths.published.exists():
        _fail(f"no published warehouse at {paths.published}; run `warehouse build` first", EXIT_BAD_INPUT)
    _database(paths.published, blinded=not unblinded)
    target = out or paths.reports / "catalog.html"
    if target.is_dir():
        _fail(f"--out {target} is a directory: name the HTML file to write", EXIT_BAD_INPUT)
    try:
        target = write_catalog_html(paths.published, target)
    except OSError as err:
        _fail(f"cannot write {err.filename or target}: {err.strerror or err}", EXIT_BAD_INPUT)
    typer.echo(f"Catalog written: {target}")


def run_command(
    select: Annotated[Optional[list[str]], typer.Option(
        "--select", "-s",
        help="Models to run: name, name+ (and descendants), +name (and ancestors), tag:<tag>, layer:<layer>; "
             "repeatable. Default: all.")] = None,
    data_dir: DataDirOption = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="Work on the unblinded builds.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start the dev database again from the newest build.")] = False,
) -> None:
    """Compile, then run the selected models in a development copy of the newest build (DIR/dev/warehouse.duckdb).

    The published warehouse is never touched. A failed model stops its descendants; the others still run."""
    import duckdb

    from warehouse.transform.compile import CompileError, compile_database
    from warehouse.transform.models import ModelError
    from warehouse.transform.runner import prepare_schemas, run_project
    from warehouse.publish import BuildPaths

    dev = BuildPaths(_data_dir(data_dir), blinded=not unblinded).root / "dev" / "warehouse.duckdb"
    if fresh or not dev.exists():
        source = _source(data_dir, unblinded)
        dev.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dev)
        typer.echo(f"dev database {dev} copied from {source}")
    _database(dev)
    try:
        compiled = compile_database(dev)
    except (CompileError, ModelError) as err:
        _fail(str(err), EXIT_FAILED)
    with duckdb.connect(str(dev)) as con:
        prepare_schemas(con)
        try:
            result = run_project(con, compiled.models, compiled.order, select)
        except ModelError as err:
            _fail(str(err), EXIT_BAD_INPUT)
    typer.echo(result.summary())
    if not result.ok:
        _fail(result.failure_message(), EXIT_FAILED)


def _update_schema(data_dir: Path) -> None:
    """Write the project's `sql/src_schema.json` from the newest build of `data_dir` (exit 2 when there is none)."""
    from warehouse.transform.testing import dump_src_schema, snapshot_path

    source = _source(data_dir, None)
    target = snapshot_path()
    target.write_text(dump_src_schema(source), encoding="utf-8")
    typer.echo(f"src schema written: {target} (from {source})")


def test_command(
    select: Annotated[Optional[str], typer.Option(
        "--select", "-s", help="Run only this model's unit cases.")] = None,
    data_dir: DataDirOption = Path("data"),
    update_schema: Annotated[bool, typer.Option(
        "--update-schema", help="First write the project's sql/src_schema.json from its newest build.")] = False,
) -> None:
    """Run the project's unit cases (sql/<layer>/<model>.yml): one line per case, a diff for each failure.

    Exit 0 when every case passes, 1 when one fails, 2 on bad input (a malformed case names file and line). The
    given rows are typed with the project's sql/src_schema.json, else the src schema of its newest build."""
    from warehouse.resources import find_project, sql_dir
    from warehouse.transform.cases import case_files, load_cases, project_src_schema, run_cases
    from warehouse.transform.models import ModelError
    from warehouse.transform.testing import UnitContext

    if update_schema:
        _update_schema(data_dir)
    try:
        cases = [case for path in case_files(sql_dir()) for case in load_cases(path)]
        if not cases:
            typer.echo(f"no unit cases under {sql_dir()} (write sql/<layer>/<model>.yml)")
            return
        schema, origin, warnings = project_src_schema(find_project(), data_dir)
        context = UnitContext.of(schema, sql_root=sql_dir())
    except (ModelError, FileNotFoundError, ValueError) as err:
        _fail(str(err), EXIT_BAD_INPUT)
    typer.echo(f"src schema: {origin}")
    for warning in warnings:
        typer.echo(f"warning: {warning}")
    if select is not None:
        if select.lower() not in context.models:
            _fail(f"--select {select}: no model of that name in {sql_dir()}", EXIT_BAD_INPUT)
        cases = [case for case in cases if case.model.lower() == select.lower()]
    if not cases:
        typer.echo(f"no unit cases for {select} under {sql_dir()} (write sql/<layer>/{select}.yml)")
        return
    _report_cases(run_cases(cases, context))


def _report_cases(results: list) -> None:
    """One line per case, the diff under a failure, a summary; exit 1 on a failure, 2 on a case in error."""
    width = max(len(r.case.model) for r in results)
    for result in results:
        typer.echo(f"{result.outcome.upper():<5} {result.case.model:<{width}}  {result.case.name}")
        if result.outcome == "fail":
            typer.echo(f"      at {result.case.where}")
            typer.echo("\n".join(f"      {line}" for line in result.detail.splitlines()))
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("pass", "fail", "error")}
    typer.echo(f"{len(results)} case(s): {counts['pass']} passed, {counts['fail']} failed"
               + (f", {counts['error']} could not run" if counts["error"] else ""))
    if counts["error"]:
        first = next(r for r in results if r.outcome == "error")
        _fail(first.detail.splitlines()[0], EXIT_BAD_INPUT)
    if counts["fail"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_command)
    app.command("lineage")(lineage_command)
    app.command("docs")(docs_command)
    app.command("run")(run_command)
    app.command("test")(test_command)
