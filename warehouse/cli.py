"""The `warehouse` command.

Exit codes: 0 done (also: a `--only-new` build that found no new export); 1 validation blocked publishing (the
previous warehouse stays published); 2 bad input or usage (missing or unreadable export: the message names file,
line and field; the export is quarantined; a read-only query that tries to write; an existing lock label);
3 a model or another build step failed; 4 busy: another build of the same data directory holds the build lock and
WAREHOUSE_LOCK_TIMEOUT ran out. Errors are one line on stderr, starting with `error:`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Clinical-trial data warehouse: eCRF exports -> validated marts in DuckDB. Every command takes "
         "--project DIR (a study project: study.toml, sql/, expectations/); default: the current directory when "
         "it holds a study.toml, else the built-in demo study.",
    pretty_exceptions_enable=False,
)

EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3

from warehouse.commands import DataDir  # noqa: E402


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_build_summary(result, verbose: bool = False) -> None:
    typer.echo("")
    if result.up_to_date:
        typer.echo(f"Up to date: the published build {result.build_id} was built from export {result.export_id} "
                   "with this code and study; nothing rebuilt (--force rebuilds).")
    state = "published" if result.published else "built (not published)"
    typer.echo(f"Warehouse {state}: {result.published or ''}")
    typer.echo(f"Validation report:  {result.report}")
    typer.echo(f"Analysis report:    {result.analysis_report}")
    marts = [t for t in result.tables if t.startswith("main.")]
    typer.echo(
        f"Subjects: {result.subjects}   Tables: {len(result.tables)} ({len(marts)} in main)   "
        f"Findings: {result.errors} error, {result.warnings} warning   "
        f"{'blinded' if result.blinded else 'UNBLINDED'} build {result.build_id}"
    )
    if getattr(result, "review", ""):
        typer.echo(result.review)
    if result.model_runs:
        runs = sorted(result.model_runs, key=lambda r: r.seconds, reverse=True)
        shown = runs if verbose else runs[:5]
        typer.echo(f"Models: {len(runs)} in {sum(r.seconds for r in runs):.2f} s; "
                   + ("per model" if verbose else "slowest") + ": "
                   + ", ".join(f"{r.name} {r.seconds:.2f} s" for r in shown))


@app.command()
def build(
    export: Annotated[Optional[Path], typer.Option(help="Export folder or ODM file; default: the demo study.")] = None,
    data_dir: DataDir = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="Build with treatment arms (separate location).")] = False,
    randomisation: Annotated[Optional[Path], typer.Option(help="Randomisation list (kit_no,arm) for --unblinded.")] = None,
    study: Annotated[Optional[str], typer.Option(help="A study TOML file (default: the project's study.toml; adress: the demo study).")] = None,
    only_new: Annotated[bool, typer.Option("--only-new", help="Do nothing when this export was already built.")] = False,
    keep_builds: Annotated[Optional[int], typer.Option("--keep-builds", min=1, help="Build files to keep (default 5 or WAREHOUSE_KEEP_BUILDS).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the published warehouse was built from "
                                                       "this export with this code and study.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own logs and every model's time.")] = False,
) -> None:
    """Build and publish the warehouse from an eCRF export (the demo study when none is given)."""
    import os

    from warehouse.resources import PROJECT_ENV

    if randomisation is not None and not unblinded:
        fail("--randomisation is only read by an --unblinded build", EXIT_BAD_INPUT)
    if export is not None:
        if not export.exists():
            fail(f"export not found: {export}", EXIT_BAD_INPUT)
        if export.is_dir() and not any(export.iterdir()) and not only_new:  # --only-new: nothing arrived yet
            fail(f"export folder is empty: {export}", EXIT_BAD_INPUT)
    # what needs no flow is decided before any Prefect server starts: a bad export, no new export, up to date
    early = decide_before_prefect(export, data_dir, unblinded, randomisation, study, only_new, force)
    if early is None:
        early = run_build_flow(verbose, data_dir=str(data_dir), export=str(export) if export else None,
                               unblinded=unblinded, randomisation=str(randomisation) if randomisation else None,
                               study=study, only_new=only_new, keep_builds=keep_builds, force=force,
                               project=os.environ.get(PROJECT_ENV))
    print_outcome(early, export, verbose)
    BUILT.append(True)


BUILT: list[bool] = []  # a build ran in this process (main() then exits without the last garbage collections)


def quick_exit() -> None:
    """Spare the interpreter's last garbage collections: after a build the process holds ~260,000 objects
    (Prefect, polars, DuckDB, sqlglot) and the collections Python runs while tearing its modules down took 1.0-1.5 s
    between the summary and the prompt (0.25 s with this). Only the collector is stopped: objects are still freed
    by reference counting, and the atexit handlers (Prefect's log and event workers, a temporary server's stop) run
    as before. Called by main() (the process's entry point, never in a test's process) after a build: its files are
    closed and published by then."""
    import gc

    gc.disable()
    gc.freeze()


class StageLines:
    """The build's progress on stderr, one line per stage with the seconds since the start; per-model progress
    as one line rewritten in place on a terminal."""

    def __init__(self) -> None:
        import time

        self.clock = time.monotonic
        self.started = self.clock()
        self.live = sys.stderr.isatty()

    def __call__(self, stage_name: str, message: str) -> None:
        line = f"{self.clock() - self.started:6.1f}s  {stage_name:<9} {message}"
        if stage_name == "transform" and "/" in message.split(" ", 1)[0]:  # per-model progress: one live line
            if self.live:
                typer.echo(f"\r{line[:100]:<100}", err=True, nl=False)
            return
        typer.echo(("\r" if self.live else "") + line, err=True)


def run_build_flow(verbose: bool, **parameters):
    """Run the build flow (a temporary Prefect server when none is configured) with stage lines on stderr; every
    failure becomes one line and its exit code."""
    import os

    from warehouse.build import BuildError, PublishBlocked
    from warehouse.commands.ops import EXIT_BUSY
    from warehouse.publish import BuildLocked

    configure_prefect(verbose)
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows import progress
    from flows.build import build_warehouse
    from warehouse.validate.steps import preload_validation

    preload_validation()  # a build is due: GX's import (~3 s of Python) runs while the Prefect server starts
    show = StageLines()
    if not PREFECT_API_URL.value():
        show("prefect", f"no PREFECT_API_URL: starting a temporary Prefect server (allowing up to "
                        f"{os.environ[STARTUP_TIMEOUT_ENV]} s; `warehouse server start` keeps one running)")
    progress.subscribe(show)
    try:
        # no heartbeat thread for a build run from the command line: it saves the ~1 s join at the end of the run;
        # heartbeats only serve to detect crashed runs of deployments (workers, `warehouse serve`).
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return build_warehouse(**parameters)
    except PublishBlocked as err:
        fail(str(err), EXIT_BLOCKED)
    except BuildLocked as err:
        fail(str(err), EXIT_BUSY)
    except BuildError as err:
        fail(str(err), EXIT_BAD_INPUT)
    except Exception as err:  # noqa: BLE001 - the one place that turns any failure into one line and a code
        if server_did_not_start(err):
            fail(f"the temporary Prefect server did not start within {os.environ[STARTUP_TIMEOUT_ENV]} s (a busy "
                 f"machine?): run again with {STARTUP_TIMEOUT_ENV} set higher, or start a server that stays up "
                 "(`warehouse server start`, or `prefect server start` and PREFECT_API_URL)", EXIT_FAILED)
        fail(one_line(err), EXIT_BAD_INPUT if type(err).__name__ == "ExportError" else EXIT_FAILED)
    finally:
        progress.unsubscribe(show)


STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_STARTUP_TIMEOUT = "180"  # Prefect's 20 s is too short on a loaded 2-core machine (37 s measured at load 4-6)


def configure_prefect(verbose: bool) -> None:
    """Prefect settings for a command-line build, before Prefect is imported: the temporary server gets a start-up
    allowance that fits a busy machine (the user's own setting wins); Prefect's console logs (tracebacks included)
    stay off the terminal: one-line errors and stage lines here, everything still reaches the Prefect API."""
    import os

    os.environ.setdefault(STARTUP_TIMEOUT_ENV, DEFAULT_STARTUP_TIMEOUT)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    for name, value in TEMPORARY_SERVER_SETTINGS.items():
        os.environ.setdefault(name, value)


# Read only by a Prefect server this process starts (the temporary one; Prefect passes the environment on), never by a
# server that runs already. Measured on a fresh PREFECT_HOME (CPU seconds of the server process until /health, 2+2
# runs): 9.6 -> 9.0 s; nothing changes once the database exists. The build uses no block document (results are local
# files), so the server does not register Prefect's ~40 block types at its start; with the memo off, nothing records
# them as registered, so a server started later on the same PREFECT_HOME (`warehouse server start`) registers them.
# Its telemetry heartbeat (a request to Prefect's telemetry service, failing without network) is off.
TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def server_did_not_start(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and "ephemeral Prefect API server" in str(err)


def one_line(err: BaseException) -> str:
    """The first line of an error, bounded: a compile failure's first line names its first error."""
    from warehouse.publish.steps import failure_message

    return failure_message(err).splitlines()[0]


def decide_before_prefect(export, data_dir, unblinded, randomisation, study, only_new, force):
    """The build's decisions that need no flow, taken before a Prefect server starts (about a second): a study
    that does not exist or an export that is not one (exit 2, the export quarantined), no export yet or no new
    export (`--only-new`), or a published build that is up to date. None: a build is due."""
    from warehouse import rebuild
    from warehouse.extract import ExportError
    from warehouse.extract import steps as extract
    from warehouse.request import BuildError, BuildRequest, NoNewExport
    from warehouse.study import UnknownStudy, resolve_study

    try:
        request = BuildRequest(
            data_dir=data_dir, export=export, blinded=not unblinded, randomisation=randomisation,
            study=resolve_study(study), force=force, only_new=only_new)
        export_path, randomisation_path = extract.resolve_export(request)
        if only_new and not extract.export_present(export_path):
            return NoNewExport("", None, str(data_dir))
        extract.check_export(export_path, data_dir, request.study)
        return rebuild.nothing_to_do(request, export_path, randomisation_path)
    except (UnknownStudy, BuildError, ExportError) as err:
        fail(one_line(err) if isinstance(err, ExportError) else str(err), EXIT_BAD_INPUT)


def print_outcome(result, export, verbose: bool) -> None:
    """What a build did: its summary, or why there was nothing to do."""
    from warehouse.build import NoNewExport

    if not isinstance(result, NoNewExport):
        print_build_summary(result, verbose)
    elif not result.export_id:
        typer.echo(f"No new export: nothing at {export or 'the export folder'} yet; nothing to do.")
    else:
        typer.echo(f"No new export: {result.export_id} was already built ({result.last_build_id}); nothing to do.")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder to write the demo exports into.")],
    subjects: Annotated[int, typer.Option(help="Number of randomised subjects.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, byte-identical files).")] = 20190515,
    inject_rate: Annotated[float, typer.Option(help="Rate of injected data-quality problems (0 = clean).")] = 0.0,
    format: Annotated[str, typer.Option(help="redcap, odm or both.")] = "both",
    monitor_minutes: Annotated[int, typer.Option(help="Hemodynamics every N minutes (60 = hourly, as the eCRF; "
                                                      "1 = bedside-monitor resolution).")] = 60,
) -> None:
    """Write the synthetic demo study as eCRF exports (REDCap CSV and/or CDISC ODM), with its manifest."""
    from warehouse.demo import DemoParameters, generate_demo

    formats = {"both": ("redcap", "odm"), "redcap": ("redcap",), "odm": ("odm",)}.get(format)
    if formats is None:
        fail(f"--format must be redcap, odm or both, not {format!r}", EXIT_BAD_INPUT)
    if not 1 <= monitor_minutes <= 60:
        fail(f"--monitor-minutes must be between 1 and 60, not {monitor_minutes}", EXIT_BAD_INPUT)
    params = DemoParameters(hemo_interval_minutes=monitor_minutes)
    result = generate_demo(out, subjects=subjects, seed=seed, inject_rate=inject_rate, formats=formats, params=params)
    typer.echo(f"Demo study written to {out}: {subjects} subjects, seed {seed}, "
               f"{len(result.problems)} injected problem(s)")
    for label, path in (("REDCap", result.redcap_dir), ("ODM", result.odm_file),
                        ("randomisation list (restricted)", result.randomisation_file),
                        ("manifest", result.manifest_file)):
        if path:
            typer.echo(f"  {label}: {path}")


@app.command()
def status(
    data_dir: DataDir = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="List the unblinded builds.")] = False,
    limit: Annotated[int, typer.Option(help="How many builds to list.")] = 10,
) -> None:
    """List recent builds: time, export, result, findings (and the published build, locks, a running build)."""
    import os
    from datetime import datetime

    from warehouse.publish import BuildPaths, list_locks, lock_holder, read_records, verify_published

    if not data_dir.is_dir():
        fail(f"data directory not found: {data_dir}" if not data_dir.exists() else
             f"not a data directory (a file): {data_dir}", EXIT_BAD_INPUT)
    paths = BuildPaths(data_dir, blinded=not unblinded)
    records = read_records(paths)[:limit]
    if not records:
        typer.echo(f"no builds under {paths.root}")
        return
    holder = lock_holder(data_dir)
    published_ino = os.stat(paths.published).st_ino if paths.published.exists() else None

    def local_time(stamp: str | None) -> str:
        try:
            return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"
        except ValueError:
            return stamp or "-"

    typer.echo(f"published: {paths.published if published_ino else '(none)'}")
    checked = verify_published(paths)
    tampered = checked is not None and checked.build_id is not None and checked.expected and not checked.ok
    if checked is not None and (tampered or checked.build_id is None):
        typer.echo(f"error: {checked.describe()}", err=True)
    if holder:
        typer.echo(f"running:   a build holds the lock (pid {holder.get('pid')} on {holder.get('host')} "
                   f"since {holder.get('since')})")
    typer.echo(f"  {'finished':<19}  {'build':<31}  {'export':<16}  {'result':<11}  {'subj':>4}  "
               f"{'errors':>6}  {'warn':>6}  message")
    for r in records:
        result = r.status
        if result == "running" and not holder:
            result = "interrupted"
        build_file = paths.build_file(r.build_id)
        mark = "*" if published_ino and build_file.exists() and build_file.stat().st_ino == published_ino else " "
        typer.echo(f"{mark} {local_time(r.finished_at):<19}  {r.build_id:<31}  {r.export_id or '-':<16}  "
                   f"{result:<11}  {r.subjects if r.subjects is not None else '-':>4}  {r.errors:>6}  "
                   f"{r.warnings:>6}  {r.message.splitlines()[0] if r.message else ''}")
        for line in (r.message or "").splitlines()[1:]:  # e.g. every compile error of a failed build
            typer.echo(f"{'':<24}{line}")
    locks = list_locks(paths)
    if locks:
        typer.echo("locks: " + ", ".join(f"{m['label']} ({m.get('build_id')})" for m in locks))
    typer.echo("* = the published build")
    if checked is not None and (tampered or checked.build_id is None):
        raise typer.Exit(EXIT_BLOCKED)


@app.command()
def verify(
    data_dir: DataDir = Path("data"),
    unblinded: Annotated[bool, typer.Option("--unblinded", help="Check the unblinded root.")] = False,
) -> None:
    """Check the published warehouse and every kept build file against the content hash recorded when the build
    was completed: exit 0 when all match, 1 when a file was changed (do not trust it), 2 when nothing is there."""
    from warehouse.publish import BuildPaths, published_build_of, verify_file

    paths = BuildPaths(data_dir, blinded=not unblinded)
    files = [(paths.published, published_build_of(paths))] if paths.published.exists() else []
    if paths.builds.is_dir():
        files += [(f, f.name[: -len(".duckdb")]) for f in sorted(paths.builds.glob("*.duckdb"))]
    if not files:
        fail(f"no published warehouse or build file under {paths.root}", EXIT_BAD_INPUT)
    changed = 0
    for path, build_id in files:
        checked = verify_file(paths, path, build_id)
        bad = not checked.ok and (checked.build_id is None or bool(checked.expected))
        changed += bad
        typer.echo(("CHANGED " if bad else "ok      ") + checked.describe())
    if changed:
        fail(f"{changed} file(s) differ from what their build recorded", EXIT_BLOCKED)


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


def take_project_option(argv: list[str]) -> str | None:
    """Remove `--project DIR` (or `--project=DIR`) from the arguments, wherever it stands: every command takes it."""
    for i, arg in enumerate(argv):
        if arg == "--project" and i + 1 < len(argv):
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if arg.startswith("--project="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None


def activate_project(project: str | None) -> None:
    """The study project every command works on (see warehouse.resources.find_project): `--project DIR`, else the
    current directory when it holds a study.toml, else the demo study. With --project, the data directory defaults
    to DIR/data."""
    import os

    from warehouse.commands import DATA_DIR_ENV
    from warehouse.resources import ProjectError, use_project

    if project is None:
        return
    try:
        root = use_project(project)
    except ProjectError as err:
        fail(str(err), EXIT_BAD_INPUT)
    os.environ.setdefault(DATA_DIR_ENV, str(root / "data"))


def main() -> None:
    from warehouse.commands.server import use_local_server

    use_local_server()  # a server from `warehouse server start`, unless PREFECT_API_URL names one
    try:
        activate_project(take_project_option(sys.argv))
        app()
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        if BUILT:
            quick_exit()


if __name__ == "__main__":
    main()
