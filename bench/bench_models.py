"""Benchmark: the SQL model runner's overhead against executing the same SQL directly in DuckDB.

    python bench/bench_models.py [--data-dir DIR] [--repeat 5] [--prefect] [--write]

On the demo study build (32 subjects; built under DIR first when DIR has no build), measures

- direct: each model's `create or replace table <relation> as <sql>` on one open connection, nothing else;
- parse: discovering the files, reading headers and parsing every model with sqlglot (cold: no parse cache);
- compile: qualifying every model against the src schema and inferring its output types (cold: no cache);
- graph: resolving dependencies and ordering them;
- dispatch: running each model as the build does (`pipeline.transform_model` inside `pipeline.run_models`: one
  connection held open around the loop; the comments, the row count) minus its direct execution time; also
  without the held connection (each close checkpoints the file), for comparison;
- with --prefect: each model as a Prefect task inside a flow, as `warehouse build` runs them (a temporary Prefect
  server is started first and not counted), minus its direct execution time.

Overhead per model = (parse + compile + graph + dispatch) / number of models; target <= 50 ms per model and
<= 1 s in total. Medians over --repeat runs. --write puts the table into BENCHMARKS.md under
"## SQL model runner overhead" (only that section is replaced).
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
    from warehouse.compile import find_source_database

    try:
        return find_source_database(data_dir, unblinded=False)
    except FileNotFoundError:
        from warehouse.pipeline import BuildRequest, run_build

        run_build(BuildRequest(data_dir=data_dir))
        return find_source_database(data_dir, unblinded=False)


def cold_caches() -> None:
    import warehouse.compile as compile_module
    import warehouse.models as models_module

    models_module._AST_CACHE.clear()
    compile_module._LAST.clear()


def one_round(build: Path, work: Path) -> dict:
    from warehouse.compile import compile_model_set, source_schema_of
    from warehouse.models import discover_models, execution_order, prepare_schemas, run_model
    from warehouse.pipeline import transform_model
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

    direct: dict[str, float] = {}
    with duckdb.connect(str(direct_file)) as con:
        prepare_schemas(con)
        for name in order:
            model = models[name]
            kind = "view" if model.materialized == "view" else "table"
            t0 = time.perf_counter()
            con.execute(f"create or replace {kind} {model.relation} as\n{model.sql}")
            direct[name] = time.perf_counter() - t0

    shared_file = work / "shared.duckdb"
    shutil.copyfile(build, shared_file)
    shared: dict[str, float] = {}
    with duckdb.connect(str(shared_file)) as con:
        prepare_schemas(con)
        for name in order:
            t0 = time.perf_counter()
            run_model(con, models[name])
            shared[name] = time.perf_counter() - t0

    runner: dict[str, float] = {}
    for name in order:
        t0 = time.perf_counter()
        transform_model(runner_file, models[name])
        runner[name] = time.perf_counter() - t0
    held_file = work / "held.duckdb"
    shutil.copyfile(build, held_file)
    held: dict[str, float] = {}
    with duckdb.connect(str(held_file)):  # one connection held open: transform_model's connects share it
        for name in order:
            t0 = time.perf_counter()
            transform_model(held_file, models[name])
            held[name] = time.perf_counter() - t0
    return {"held": held, "parse": parse, "compile": compile_s, "graph": graph, "direct": direct, "runner": runner,
            "shared": shared}


def prefect_round(build: Path, work: Path, direct: dict[str, float]) -> dict[str, float]:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect import flow, task
    from prefect.cache_policies import NONE
    from prefect.testing.utilities import prefect_test_harness

    from warehouse.pipeline import plan_models, transform_model

    @task(cache_policy=NONE)
    def run_model(build_file: Path, model):
        return transform_model(build_file, model)

    timings: dict[str, float] = {}

    @flow(name="bench-models")
    def bench_flow(build_file: Path) -> None:
        models = plan_models(build_file)
        with duckdb.connect(str(build_file)):  # held around the loop, as pipeline.run_models does in the build
            for model in models:
                t0 = time.perf_counter()
                run_model.with_options(name=model.name)(build_file, model)
                timings[model.name] = time.perf_counter() - t0

    with prefect_test_harness(server_startup_timeout=180):
        bench_flow(_copy(build, work / "p0.duckdb"))  # warm-up
        timings.clear()
        bench_flow(_copy(build, work / "p1.duckdb"))
    return {name: timings[name] - direct.get(name, 0.0) for name in timings}


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


def report(rounds: list[dict], prefect: dict[str, float] | None, command: str) -> str:
    med = statistics.median
    names = list(rounds[0]["direct"])
    n = len(names)
    parse = med(r["parse"] for r in rounds)
    compile_s = med(r["compile"] for r in rounds)
    graph = med(r["graph"] for r in rounds)
    direct = {m: med(r["direct"][m] for r in rounds) for m in names}
    runner = {m: med(r["runner"][m] for r in rounds) for m in names}
    shared = {m: med(r["shared"][m] for r in rounds) for m in names}
    dispatch = {m: runner[m] - direct[m] for m in names}
    dispatch_shared = {m: shared[m] - direct[m] for m in names}
    held = {m: med(r["held"][m] for r in rounds) for m in names}
    dispatch_held = {m: held[m] - direct[m] for m in names}
    fixed = parse + compile_s + graph
    total_shared = fixed + sum(dispatch_shared.values())
    total_overhead = fixed + sum(dispatch.values())
    total_held = fixed + sum(dispatch_held.values())
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (medians of {len(rounds)} rounds; demo study build, 32 subjects, {n} models).",
        f"Machine: {machine()}.",
        "",
        "| step | total (ms) | per model (ms) |",
        "|---|---:|---:|",
        f"| direct: the models' SQL executed in DuckDB on one connection | {sum(direct.values()) * 1e3:.1f} | "
        f"{sum(direct.values()) / n * 1e3:.1f} |",
        f"| parse: discover files, headers, sqlglot parse (cold) | {parse * 1e3:.1f} | {parse / n * 1e3:.1f} |",
        f"| compile: sqlglot qualify + DuckDB type inference over empty inputs (cold) | {compile_s * 1e3:.1f} | "
        f"{compile_s / n * 1e3:.1f} |",
        f"| graph: resolve dependencies, topological order | {graph * 1e3:.2f} | {graph / n * 1e3:.2f} |",
        f"| dispatch, one connection (`run_model`: transaction, comments, row count) minus direct | "
        f"{sum(dispatch_shared.values()) * 1e3:.1f} | {sum(dispatch_shared.values()) / n * 1e3:.1f} |",
        f"| **runner overhead, one connection (parse + compile + graph + dispatch)** | **{total_shared * 1e3:.0f}** | "
        f"**{total_shared / n * 1e3:.1f}** |",
        f"| dispatch as the build calls it (`pipeline.run_models`: `transform_model` with one connection held "
        f"open around the loop) minus direct | {sum(dispatch_held.values()) * 1e3:.1f} | "
        f"{sum(dispatch_held.values()) / n * 1e3:.1f} |",
        f"| **runner overhead as the build calls it, without Prefect (parse + compile + graph + that dispatch)** | "
        f"**{total_held * 1e3:.0f}** | **{total_held / n * 1e3:.1f}** |",
        f"| for comparison: `transform_model` with no connection held (each close checkpoints the file) minus direct"
        f" | {sum(dispatch.values()) * 1e3:.1f} | {sum(dispatch.values()) / n * 1e3:.1f} |",
    ]
    total_prefect = None
    if prefect:
        total_prefect = fixed + sum(prefect.values())
        lines.append(f"| with Prefect, as `warehouse build` runs them: a task per model (connection held) minus direct "
                     f"(server start not counted) | {sum(prefect.values()) * 1e3:.0f} | "
                     f"{sum(prefect.values()) / len(prefect) * 1e3:.1f} |")
        lines.append(f"| **runner overhead with Prefect tasks (parse + compile + graph + task dispatch)** | "
                     f"**{total_prefect * 1e3:.0f}** | **{total_prefect / n * 1e3:.1f}** |")
    def verdict(total: float) -> str:
        return "met" if total <= 1.0 and total / n <= 0.05 else "NOT met"

    lines += [
        "",
        f"Target (<= 50 ms per model, <= 1 s in total): {verdict(total_held)} as the build calls the models without "
        f"Prefect ({total_held * 1e3:.0f} ms)"
        + (f"; {verdict(total_prefect)} with a Prefect task per model ({total_prefect * 1e3:.0f} ms)"
           if total_prefect is not None else "")
        + f"; without the held connection it would be {verdict(total_overhead)} ({total_overhead * 1e3:.0f} ms).",
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
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        build = ensure_build(data_dir)
        work = Path(tmp) / "work"
        work.mkdir()
        one_round(build, work)  # warm-up: imports, file cache
        rounds = [one_round(build, work) for _ in range(args.repeat)]
        prefect = None
        if args.prefect:
            direct = {m: statistics.median(r["direct"][m] for r in rounds) for m in rounds[0]["direct"]}
            prefect = prefect_round(build, work, direct)
    command = "python bench/bench_models.py" + (" --prefect" if args.prefect else "") + f" --repeat {args.repeat}"
    text = report(rounds, prefect, command)
    print(text)
    if args.write:
        write_section(root / "BENCHMARKS.md", text)
        print(f"written to {root / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
