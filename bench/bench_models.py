"""Benchmark: the SQL model runner's overhead against executing the same SQL directly in DuckDB.

    python bench/bench_models.py [--data-dir DIR] [--repeat 5] [--prefect] [--write]

On the demo study build (32 subjects; built under DIR first when DIR has no build), measures

- direct: each model's `create or replace table <relation> as <sql>` on one open connection, nothing else;
- parse: discovering the files, reading headers and parsing every model with sqlglot; cold: no cache at all
  (in memory or on disk), as the first build after a change of the models; warm: a new process (nothing in
  memory) with the parse cache in DIR/cache from an earlier build of the same models (what `warehouse build`
  does when only the export changed);
- compile: qualifying every model against the src schema and inferring its output types; cold and warm as for
  parse (warm: the compile cache in DIR/cache, same models and src schema);
- graph: resolving dependencies and ordering them;
- dispatch: running each model as the build does (`transform.steps.run_models` with `transform.steps.transform_model`: one
  connection held open around the loop, which transform_model runs on; the comments, the row count) minus its
  direct execution time; also on one connection with `ModelSession.run` (as `warehouse run`), and with no
  connection held (transform_model connects per model; each close checkpoints the file), for comparison;
- with --prefect: each model as the build's Prefect task (flows/build.py) inside a flow, dispatched by
  `transform.steps.run_models` as `warehouse build` does (a temporary Prefect server is started first and not counted;
  one warm-up flow run, then --repeat rounds of a direct pass and a flow run, median per model of the task's
  time minus the direct time of the same round; Prefect logs at INFO to the API as in the build).

Overhead per model = (parse + compile + graph + dispatch) / number of models; target <= 50 ms per model and
<= 1 s in total, reported for the cold and the warm parse and compile separately. Medians over --repeat runs.
--write puts the table into BENCHMARKS.md under "## SQL model runner overhead" (only that section is replaced).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import sqlglot

SECTION = "## SQL model runner overhead"


def ensure_build(data_dir: Path) -> Path:
    from warehouse.transform.compile import find_source_database

    try:
        return find_source_database(data_dir, unblinded=False)
    except FileNotFoundError:
        from warehouse.build import BuildRequest, run_build

        run_build(BuildRequest(data_dir=data_dir))
        return find_source_database(data_dir, unblinded=False)


def cold_caches() -> None:
    import warehouse.transform.compile as compile_module
    import warehouse.transform.models as models_module

    models_module._AST_CACHE.clear()
    models_module._TABLE_SOURCES.clear()
    compile_module._LAST.clear()


def one_round(build: Path, work: Path) -> dict:
    from warehouse.transform.compile import compile_model_set, source_schema_of
    from warehouse.transform.models import discover_models
    from warehouse.transform.order import execution_order
    from warehouse.transform.runner import ModelSession, prepare_schemas
    from warehouse.transform.steps import run_models, transform_model
    from warehouse.resources import sql_dir

    direct_file, runner_file = work / "direct.duckdb", work / "runner.duckdb"
    shutil.copyfile(build, direct_file)
    shutil.copyfile(build, runner_file)
    cold_caches()

    started = time.perf_counter()
    models = discover_models(sql_dir())
    parse = time.perf_counter() - started
    sources = source_schema_of(runner_file)
    started = time.perf_counter()
    order = execution_order(models, set(sources))
    graph = time.perf_counter() - started
    started = time.perf_counter()
    compile_model_set(models, sources)
    compile_s = time.perf_counter() - started - graph  # compile_model_set orders again; count it once

    cache_dir = work / "cache"
    if not cache_dir.is_dir():  # an earlier build of the same models and src schema left its caches here
        compile_model_set(discover_models(sql_dir(), cache_dir), sources, cache_dir)
    cold_caches()  # a new process: nothing in memory
    started = time.perf_counter()
    warm_models = discover_models(sql_dir(), cache_dir)
    parse_warm = time.perf_counter() - started
    started = time.perf_counter()
    warm = compile_model_set(warm_models, sources, cache_dir)
    compile_warm = time.perf_counter() - started - graph
    assert warm.from_cache and [m.name for m in warm.ordered_models()] == order, "warm compile not from the cache"

    direct = direct_pass(direct_file, [models[name] for name in order])

    shared_file = work / "shared.duckdb"
    shutil.copyfile(build, shared_file)
    shared: dict[str, float] = {}
    with duckdb.connect(str(shared_file)) as con:
        session = ModelSession.open(con)  # as models.run_project: schemas and descriptions read once
        for name in order:
            t0 = time.perf_counter()
            session.run(models[name])
            shared[name] = time.perf_counter() - t0

    runner: dict[str, float] = {}
    for name in order:
        t0 = time.perf_counter()
        transform_model(runner_file, models[name])
        runner[name] = time.perf_counter() - t0
    held_file = work / "held.duckdb"
    shutil.copyfile(build, held_file)
    held: dict[str, float] = {}
    # as the build: transform.steps.run_models holds one connection open and transform_model runs on it
    run_models(held_file, [models[name] for name in order], timed(transform_model, held)).raise_for_failures()
    return {"held": held, "parse": parse, "compile": compile_s, "graph": graph, "direct": direct, "runner": runner,
            "shared": shared, "parse_warm": parse_warm, "compile_warm": compile_warm}


def direct_pass(build_file: Path, models: list) -> dict[str, float]:
    """Each model's SQL executed in DuckDB on one connection, nothing around it: the baseline."""
    from warehouse.transform.runner import prepare_schemas

    direct: dict[str, float] = {}
    with duckdb.connect(str(build_file)) as con:
        prepare_schemas(con)
        for model in models:
            kind = "view" if model.materialized == "view" else "table"
            t0 = time.perf_counter()
            con.execute(f"create or replace {kind} {model.relation} as\n{model.sql}")
            direct[model.name] = time.perf_counter() - t0
    return direct


def timed(run_one, timings: dict[str, float]):
    """`run_one` (path, model) -> ModelRun, recording each model's wall time in `timings`."""
    def run(path: Path, model):
        t0 = time.perf_counter()
        result = run_one(path, model)
        timings[model.name] = time.perf_counter() - t0
        return result
    return run


def prefect_round(build: Path, work: Path, repeat: int = 1) -> dict[str, float]:
    """Per model, the wall time of its Prefect task as `warehouse build` dispatches it, minus the same SQL run
    directly in the same round (just before, in the same process: on a shared machine a baseline taken minutes
    earlier is not one). Prefect logs as in the build: INFO to the API, console quiet (as `warehouse build`)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    import flows.build as build_flow
    from warehouse.transform.steps import plan_models, run_models

    timings: dict[str, float] = {}
    overheads: list[dict[str, float]] = []

    @flow(name="bench-models")
    def bench_flow(build_file: Path) -> None:
        models = plan_models(build_file)
        run_models(build_file, models, timed(build_flow.run_model_task, timings)).raise_for_failures()  # as the build

    models = plan_models(_copy(build, work / "plan.duckdb"))
    with prefect_test_harness(server_startup_timeout=180):
        bench_flow(_copy(build, work / "p0.duckdb"))  # warm-up
        for i in range(max(1, repeat)):  # per round: a direct pass, then one flow run, each on a fresh copy
            direct = direct_pass(_copy(build, work / f"d{i + 1}.duckdb"), models)
            timings.clear()
            build_flow._MODEL_TASKS.clear()  # as in a `warehouse build` process: each model's task made in the run
            bench_flow(_copy(build, work / f"p{i + 1}.duckdb"))
            overheads.append({name: timings[name] - direct[name] for name in timings})
    return {name: statistics.median(o[name] for o in overheads) for name in overheads[0]}


def _copy(build: Path, target: Path) -> Path:
    shutil.copyfile(build, target)
    return target


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, DuckDB {duckdb.__version__}, sqlglot {sqlglot.__version__}")


def report(rounds: list[dict], prefect: dict[str, float] | None, command: str,
           load: tuple[float, float] | None = None) -> str:
    med = statistics.median
    names = list(rounds[0]["direct"])
    n = len(names)
    parse = med(r["parse"] for r in rounds)
    compile_s = med(r["compile"] for r in rounds)
    parse_warm = med(r["parse_warm"] for r in rounds)
    compile_warm = med(r["compile_warm"] for r in rounds)
    graph = med(r["graph"] for r in rounds)
    direct = {m: med(r["direct"][m] for r in rounds) for m in names}
    runner = {m: med(r["runner"][m] for r in rounds) for m in names}
    shared = {m: med(r["shared"][m] for r in rounds) for m in names}
    dispatch = {m: runner[m] - direct[m] for m in names}
    dispatch_shared = {m: shared[m] - direct[m] for m in names}
    held = {m: med(r["held"][m] for r in rounds) for m in names}
    dispatch_held = {m: held[m] - direct[m] for m in names}
    fixed = {"cold": parse + compile_s + graph, "warm": parse_warm + compile_warm + graph}

    def ms(seconds: float, digits: int = 1) -> str:
        return f"{seconds * 1e3:.{digits}f}"

    def row(label: str, total: float, bold: bool = False, digits: int = 1) -> str:
        cells = (ms(total, digits), ms(total / n, digits if digits > 1 else 1))
        if bold:
            return f"| **{label}** | **{cells[0]}** | **{cells[1]}** |"
        return f"| {label} | {cells[0]} | {cells[1]} |"

    totals: dict[tuple[str, str], float] = {}
    for kind in ("cold", "warm"):
        totals[("one connection", kind)] = fixed[kind] + sum(dispatch_shared.values())
        totals[("build, no Prefect", kind)] = fixed[kind] + sum(dispatch_held.values())
        totals[("no held connection", kind)] = fixed[kind] + sum(dispatch.values())
        if prefect:
            totals[("Prefect", kind)] = fixed[kind] + sum(prefect.values())
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (medians of {len(rounds)} rounds; demo study build, 32 subjects, {n} models).",
        f"Machine: {machine()}."
        + (f" Load average (1 min) at the start and the end of the run: {load[0]:.1f} and {load[1]:.1f} on "
           f"{os.cpu_count()} CPU(s): the machine is shared, and the direct row shows how slow it was at the time."
           if load else ""),
        "",
        "Cold: nothing cached, in memory or on disk (the first build after the models, the `src` schema or the "
        "library versions changed). Warm: a new process with the parse and compile caches that an earlier build "
        "of the same models and `src` schema left in DIR/cache (a build of a new export with unchanged code).",
        "",
        "| step | total (ms) | per model (ms) |",
        "|---|---:|---:|",
        row("direct: the models' SQL executed in DuckDB on one connection", sum(direct.values())),
        row("parse, cold: discover files, headers, sqlglot parse", parse),
        row("parse, warm: discover files, headers, tables read from the parse cache", parse_warm),
        row("compile, cold: sqlglot qualify + DuckDB type inference over empty inputs", compile_s),
        row("compile, warm: read from the compile cache", compile_warm),
        row("graph: resolve dependencies, topological order", graph, digits=2),
        row("dispatch, one connection (`ModelSession.run`: transaction, comments, row count) minus direct",
            sum(dispatch_shared.values())),
        row("dispatch as the build calls it (`transform.steps.run_models`: `transform_model` with one connection held "
            "open around the loop) minus direct", sum(dispatch_held.values())),
        row("for comparison: `transform_model` with no connection held (each close checkpoints the file) minus "
            "direct", sum(dispatch.values())),
    ]
    if prefect:
        lines.append(row("with Prefect, as `warehouse build` runs them: a task per model (connection held) minus "
                         "direct (server start not counted)", sum(prefect.values())))
    for kind in ("cold", "warm"):
        lines.append(row(f"runner overhead, one connection, {kind} (parse + compile + graph + dispatch)",
                         totals[("one connection", kind)], bold=True, digits=0))
        lines.append(row(f"runner overhead as the build calls it, without Prefect, {kind}",
                         totals[("build, no Prefect", kind)], bold=True, digits=0))
        if prefect:
            lines.append(row(f"runner overhead with Prefect tasks, {kind} (parse + compile + graph + task dispatch)",
                             totals[("Prefect", kind)], bold=True, digits=0))

    def verdict(total: float) -> str:
        return "met" if total <= 1.0 and total / n <= 0.05 else "NOT met"

    lines += ["", "Target (<= 50 ms per model, <= 1 s in total):", ""]
    for kind in ("cold", "warm"):
        parts = [f"without Prefect {verdict(totals[('build, no Prefect', kind)])} "
                 f"({ms(totals[('build, no Prefect', kind)], 0)} ms)"]
        if prefect:
            parts.append(f"with a Prefect task per model {verdict(totals[('Prefect', kind)])} "
                         f"({ms(totals[('Prefect', kind)], 0)} ms)")
        parts.append(f"without the held connection it would be {verdict(totals[('no held connection', kind)])} "
                     f"({ms(totals[('no held connection', kind)], 0)} ms)")
        lines.append(f"- {kind}: " + "; ".join(parts) + ".")
    lines += [
        "",
        "Slowest models, direct vs through the runner (ms):",
        "",
        "| model | direct | runner (held connection) | dispatch overhead |",
        "|---|---:|---:|---:|",
    ]
    for name in sorted(names, key=lambda m: -held[m])[:6]:
        lines.append(f"| {name} | {direct[name] * 1e3:.1f} | {held[name] * 1e3:.1f} | "
                     f"{dispatch_held[name] * 1e3:.1f} |")
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace (or append) only the SQL-runner section of BENCHMARKS.md."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        path.write_text(current.rstrip("\n") + "\n\n" + text, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + text + ("\n" + tail if tail else ""), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with (or for) a demo build")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--prefect", action="store_true", help="also measure Prefect task dispatch")
    parser.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        build = ensure_build(data_dir)
        work = Path(tmp) / "work"
        work.mkdir()
        one_round(build, work)  # warm-up: imports, file cache
        rounds = [one_round(build, work) for _ in range(args.repeat)]
        prefect = None
        if args.prefect:
            prefect = prefect_round(build, work, args.repeat)
    command = "python bench/bench_models.py" + (" --prefect" if args.prefect else "") + f" --repeat {args.repeat}"
    text = report(rounds, prefect, command, (load_start, os.getloadavg()[0]))
    print(text)
    if args.write:
        write_section(root / "BENCHMARKS.md", text)
        print(f"written to {root / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
