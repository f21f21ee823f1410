"""Whole-build benchmark: the demo study at several sizes, each stage timed, against a DuckDB-only floor.

    python bench/bench_build.py                       # N = 32, 1,000 and 10,000; writes BENCHMARKS.md
    python bench/bench_build.py --sizes 32,1000 --cli-runs 3      # small builds and the CLI only (~15 min)
    python bench/bench_build.py --sizes 32 --no-flow --cli-runs 1 --no-write   # the CI smoke run

For each N the demo study is generated once (hemodynamics at bedside-monitor resolution, one reading a minute)
under bench/out/, then, each in a fresh process so that peak RSS is the build's own:
- `direct`: the build without Prefect (warehouse.build.run_build), timed per stage;
- `rebuild`: the same export again into the same data directory (unchanged export, code and study: the build
  finds the published build up to date and rebuilds nothing);
- `flow`: the Prefect flow, timed after its temporary server is up (the orchestration overhead is flow - direct);
- `floor`: DuckDB alone: the records CSV read into Parquet, and every SQL model executed once over the typed
  forms, with no framework around it;
- `profile` (sizes in --profile-sizes): the fixed costs, the build's steps timed one by one (bench/profile_build.py),
  in a fresh data directory (cold: no compile, lineage or figure cache) and again with --force (warm);
and (unless --cli-runs 0) the demo build from the command line (bench/bench_cli.py): cold, warm, with a running
local server, up to date and --only-new, each a median of --cli-runs runs.
"## Whole build" in BENCHMARKS.md is rewritten only by a run that includes 10,000 subjects; "## Small builds and
the command line" by every run that writes.
Benchmarks measure; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
SECTION = "## Whole build"

CHILD_DIRECT = r"""
import json, resource, sys, time
from pathlib import Path
from warehouse import build
from warehouse.build import BuildRequest, PublishBlocked, run_build
export, data_dir = Path(sys.argv[1]), Path(sys.argv[2])

def high_water_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))

rss_after = {}
def watched(name, fn):  # the process's peak RSS so far, after each stage: where the peak was reached
    def call(*args, **kw):
        out = fn(*args, **kw)
        rss_after[name] = round(high_water_mb())
        return out
    return call
for module, name in (("extract", "land"), ("stage", "stage"), ("transform", "run_models"), ("validate", "validate_raw"),
                     ("validate", "validate_staging"), ("validate", "validate_marts"), ("publish", "publish")):
    steps = getattr(build, module)  # the stage modules warehouse.build calls through
    setattr(steps, name, watched(name, getattr(steps, name)))
started = time.perf_counter()
try:
    result = run_build(BuildRequest(data_dir=data_dir, export=export))
    stages, status = result.stage_seconds, "published"
except PublishBlocked as err:
    from warehouse.publish import BuildPaths, read_records
    stages, status = read_records(BuildPaths(data_dir, True))[0].stage_seconds, "blocked: " + str(err)[:200]
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "stages": stages, "status": status, "rss_after": rss_after,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_FLOW = r"""
import json, os, resource, sys, time
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
from prefect import flow
from flows.build import build_warehouse
@flow
def warm_up() -> int:
    return 1
warm_up()  # starts the temporary server, so it is not counted in the build
export, data_dir = sys.argv[1], sys.argv[2]
started = time.perf_counter()
build_warehouse(data_dir=data_dir, export=export)
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_FLOOR = r"""
import json, resource, sys, time
from pathlib import Path
import duckdb
from warehouse.transform.models import discover_models
from warehouse.transform.order import execution_order
from warehouse.transform.runner import prepare_schemas
from warehouse.resources import sql_dir
csv_file, typed_build, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
work.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()
con = duckdb.connect(str(work / "floor.duckdb"))
con.execute(f"copy (select * from read_csv('{csv_file}', all_varchar = true)) to '{work / 'records.parquet'}' (format parquet)")
read_seconds = time.perf_counter() - started
# the typed forms, as a build's staging leaves them: the SQL floor starts from there
con.execute(f"attach '{typed_build}' as typed (read_only)")
prepare_schemas(con)
names = [r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = 'typed' and schema_name = 'src'").fetchall()]
for name in names:
    con.execute(f"create table src.{name} as select * from typed.src.{name}")
con.execute("detach typed")
models = discover_models(sql_dir())
sql_started = time.perf_counter()
for name in execution_order(models, set(names)):
    model = models[name]
    con.execute(f"create or replace table {model.relation} as {model.sql}")
sql_seconds = time.perf_counter() - sql_started
print(json.dumps({"read_csv_to_parquet": read_seconds, "models": sql_seconds, "wall": read_seconds + sql_seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(code: str, *args: str, timeout: int = 7200) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export_for(n: int, minutes: int) -> Path:
    """The demo export of n subjects (generated once; the generator is deterministic)."""
    from warehouse.demo import DemoParameters, generate_demo

    target = OUT / f"export-n{n}-m{minutes}"
    if not (target / "redcap").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        started = time.perf_counter()
        generate_demo(target, subjects=n, formats=("redcap",), params=DemoParameters(hemo_interval_minutes=minutes))
        print(f"  generated N={n} in {time.perf_counter() - started:.1f} s", flush=True)
    return target / "redcap"


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*")) / 1e6


def count_rows(data_dir: Path) -> int:
    import duckdb

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select sum(estimated_size) from duckdb_tables() where schema_name in ('src')"
        ).fetchall()[0][0]


def bench_size(n: int, minutes: int, with_flow: bool, with_profile: bool = False, runs: int = 1) -> dict:
    """One size: the direct build (its stages and peak RSS; with ``runs`` > 1, again into fresh data directories
    for a median), an unchanged rebuild, the floor, the flow run and, if asked, the fixed-cost profile."""
    print(f"N = {n}", flush=True)
    export = export_for(n, minutes)
    data_dir = OUT / f"build-n{n}"
    colds = []
    for _ in range(max(runs, 1)):
        shutil.rmtree(data_dir, ignore_errors=True)
        colds.append(run_child(CHILD_DIRECT, str(export), str(data_dir)))
    cold_walls = [c["wall"] for c in colds]
    direct = sorted(colds, key=lambda c: c["wall"])[(len(colds) - 1) // 2]  # the median run's stages and memory
    print(f"  direct {direct['wall']:.1f} s, peak RSS {direct['rss_mb']:.0f} MB ({direct['status']})"
          + (f"; cold runs {', '.join(f'{w:.1f}' for w in cold_walls)} s" if runs > 1 else ""), flush=True)
    rebuild = run_child(CHILD_DIRECT, str(export), str(data_dir))
    print(f"  rebuild {rebuild['wall']:.1f} s", flush=True)
    builds = sorted((data_dir / "builds").glob("*.duckdb"))
    shutil.rmtree(OUT / f"floor-n{n}", ignore_errors=True)
    floor = run_child(CHILD_FLOOR, str(next(export.glob("*_DATA_*.csv"))), str(builds[-1]), str(OUT / f"floor-n{n}"))
    print(f"  floor {floor['wall']:.1f} s", flush=True)
    flow = None
    if with_flow:
        flow_dir = OUT / f"flow-n{n}"
        shutil.rmtree(flow_dir, ignore_errors=True)
        flow = run_child(CHILD_FLOW, str(export), str(flow_dir))
        print(f"  flow {flow['wall']:.1f} s", flush=True)
    profile = None
    if with_profile:
        from profile_build import profile as profile_build

        profile_dir = OUT / f"profile-n{n}"
        shutil.rmtree(profile_dir, ignore_errors=True)
        profile = {"cold": profile_build(export, profile_dir), "warm": profile_build(export, profile_dir, warm=True)}
        profile["warm_walls"] = [profile["warm"]["wall"]] + [
            profile_build(export, profile_dir, warm=True)["wall"] for _ in range(runs - 1)]
        print(f"  profiled: cold {profile['cold']['wall']:.1f} s, warm "
              f"{', '.join(f'{w:.1f}' for w in profile['warm_walls'])} s", flush=True)
    rows = count_rows(data_dir) if (data_dir / "warehouse.duckdb").exists() else None
    return {"n": n, "export_mb": size_mb(export), "rows": rows, "direct": direct, "cold_walls": cold_walls,
            "rebuild": rebuild, "floor": floor, "flow": flow, "profile": profile}


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def render(results: list[dict], command: str, minutes: int) -> str:
    stages = ["extract", "stage", "transform", "validate", "analyse", "report", "publish"]
    header = ("| N | export MB | src rows | " + " | ".join(f"{s} s" for s in stages)
              + " | build s | peak RSS MB | rows/s | floor s | build / floor | rebuild s | rebuild / build | flow s"
              " | flow - direct s |")
    lines = [
        SECTION,
        "",
        f"Command: `{command}`. Demo study with hemodynamics every {minutes} minute(s); blinded builds; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}. Each build runs in a fresh process; "
        "peak RSS is that process's maximum resident set. The floor is DuckDB alone: the records CSV to Parquet "
        "plus every SQL model executed once over the typed forms.",
        "",
        header,
        "|---" * (header.count("|") - 1) + "|",
    ]
    for r in results:
        d = r["direct"]
        build = d["wall"]
        rows = r["rows"]
        flow = r["flow"]["wall"] if r["flow"] else None
        lines.append(
            f"| {r['n']:,} | {fmt(r['export_mb'])} | {fmt(rows, 0) if rows else '-'} | "
            + " | ".join(fmt(d["stages"].get(s), 2) for s in stages)
            + f" | {fmt(build)} | {fmt(d['rss_mb'], 0)} | {fmt(rows / build, 0) if rows else '-'} | "
            f"{fmt(r['floor']['wall'])} | {fmt(build / r['floor']['wall'], 2)} | {fmt(r['rebuild']['wall'])} | "
            f"{fmt(r['rebuild']['wall'] / build, 2)} | {fmt(flow)} | {fmt(flow - build if flow else None)} |"
        )
    lines += ["", "Peak RSS so far (MB, VmHWM) after each stage of the direct build: where the peak is reached."]
    for r in results:
        after = r["direct"].get("rss_after") or {}
        lines.append(f"- N = {r['n']:,}: " + ", ".join(f"{k} {v:,}" for k, v in after.items()))
    by_n = {r["n"]: r for r in results}
    if 1000 in by_n and 10000 in by_n:
        ratio = by_n[10000]["direct"]["wall"] / by_n[1000]["direct"]["wall"]
        lines += ["", f"time(10,000) / time(1,000) = {ratio:.2f} (target at most 11)."]
    if 10000 in by_n:
        r = by_n[10000]
        lines += [
            "",
            "Targets at 10,000 subjects: build at most 2x the floor "
            f"({'met' if r['direct']['wall'] <= 2 * r['floor']['wall'] else 'NOT met'}: "
            f"{r['direct']['wall'] / r['floor']['wall']:.2f}x); peak RSS at most 2 GB "
            f"({'met' if r['direct']['rss_mb'] <= 2048 else 'NOT met'}: {r['direct']['rss_mb']:.0f} MB); "
            f"rebuild of an unchanged export at most 10% of a build "
            f"({'met' if r['rebuild']['wall'] <= 0.1 * r['direct']['wall'] else 'NOT met'}: "
            f"{100 * r['rebuild']['wall'] / r['direct']['wall']:.0f}%).",
        ]
    return "\n".join(lines) + "\n"


def write_section(text: str, section: str = SECTION) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    updated = pattern.sub(text + "\n", current) if pattern.search(current) else current.rstrip() + "\n\n" + text
    path.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,1000,10000", help="comma-separated numbers of subjects")
    parser.add_argument("--minutes", type=int, default=1, help="hemodynamics interval (1 = monitor resolution)")
    parser.add_argument("--no-flow", action="store_true", help="skip the Prefect flow runs")
    parser.add_argument("--profile-sizes", default="32,1000", help="sizes whose fixed costs are profiled")
    parser.add_argument("--cli-runs", type=int, default=3, help="runs per `warehouse build` case (0: none)")
    parser.add_argument("--runs", type=int, default=3,
                        help="cold and warm direct builds per size up to 1,000 subjects, for the medians (larger: 1)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    from bench_cli import bench_cli
    from bench_small import SMALL_SECTION, load_average, render_small
    from profile_build import compile_bytecode

    compile_bytecode()  # a user's second run: the package's bytecode cached (profile_build.compile_bytecode)

    sizes = [int(s) for s in args.sizes.split(",")]
    profiled = {int(s) for s in args.profile_sizes.split(",") if s}
    OUT.mkdir(parents=True, exist_ok=True)
    load = [load_average()]
    results = [bench_size(n, args.minutes, with_flow=not args.no_flow, with_profile=n in profiled,
                          runs=args.runs if n <= 1000 else 1) for n in sizes]
    cli = bench_cli(args.cli_runs) if args.cli_runs > 0 else None
    load.append(load_average())
    command = ("python bench/bench_build.py " + " ".join(sys.argv[1:])).strip()
    text = render(results, command, args.minutes)
    small = render_small(results, cli, command, load)
    print(text)
    print(small)
    (OUT / "build-results.json").write_text(json.dumps({"sizes": results, "cli": cli, "load": load}, indent=2),
                                             encoding="utf-8")
    if not args.no_write:
        if 10000 in sizes:
            write_section(text)
        write_section(small, SMALL_SECTION)


if __name__ == "__main__":
    main()
