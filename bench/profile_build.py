"""Where the fixed time of a small build goes: one direct build (no Prefect) in a fresh process, with the wall time
of each stage and of the steps inside it (imports, GX context, suites, validation, compile, lineage, catalog, Data
Docs, reports, figures, publish).

    python bench/profile_build.py --export bench/out/export-n32-m1/redcap --data-dir /tmp/prof32
    python bench/profile_build.py --export ... --data-dir ... --warm   # a second build of the same export, --force
    python bench/profile_build.py ... --cprofile /tmp/build.prof       # also a cProfile of the main thread

How: the child process replaces the step functions named in STEPS (module, attribute) by timing wrappers before the
build runs, so a step is timed wherever it is called from (each module that imported it by name is patched too).
Times are inclusive and wall-clock; a step called several times is summed, with its number of calls. Great
Expectations is imported by the build's GX worker, a process of its own started with the build
(validate.gx_process): the build waits for it only where it needs its answers (the check of the suite files, the
Data Docs), and the output says whether GX was imported in the build's process (it should not be).
Benchmarks measure; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, module, attribute): the steps timed, in the order a build reaches them
STEPS: list[tuple[str, str, str]] = [
    ("extract: land", "warehouse.extract.steps", "land"),
    ("stage: stage", "warehouse.stage.load", "stage"),
    ("transform: compile", "warehouse.transform.steps", "plan_models"),
    ("transform: run models", "warehouse.transform.steps", "run_models"),
    ("transform: lineage", "warehouse.transform.lineage", "write_lineage"),
    ("transform: catalog", "warehouse.transform.catalog", "write_catalog"),
    ("validate: plan suites", "warehouse.validate.core", "plan_suites"),
    ("validate: GX check of the suite files (wait for the worker)", "warehouse.validate.suites",
     "check_suites_with_gx"),
    ("validate: GX runtime (in process: GX on pandas only)", "warehouse.validate.core", "gx_runtime"),
    ("validate: derived tables", "warehouse.validate.core", "add_derived_tables"),
    ("validate: GX run (in memory)", "warehouse.validate.core", "PolarsEngine.run"),
    ("validate: DuckDB run (pushdown)", "warehouse.validate.pushdown_engine", "DuckDBEngine.run"),
    ("validate: identifiers withheld", "warehouse.validate.steps", "withhold_identifier_values"),
    ("validate: vanished records", "warehouse.validate.vanished", "check_vanished"),
    ("validate: ADaM conformance", "warehouse.validate.adam", "check_adam"),
    ("validate: raw", "warehouse.validate.steps", "validate_raw"),
    ("validate: staging", "warehouse.validate.steps", "validate_staging"),
    ("validate: marts", "warehouse.validate.steps", "validate_marts"),
    ("analyse: changes", "warehouse.analyse.steps", "record_changes"),
    ("analyse: results", "warehouse.analyse", "analyse"),
    ("analyse: figures and page", "warehouse.analyse.report", "render_analysis_report"),
    ("analyse: all", "warehouse.analyse.steps", "analyse"),
    ("report: findings history", "warehouse.validate.steps", "record_validation"),
    ("validate: Data Docs sent to the GX worker", "warehouse.validate.datadocs", "start_data_docs"),
    ("report: Data Docs (wait for the worker)", "warehouse.validate.datadocs", "build_data_docs"),
    ("report: site listings", "warehouse.validate.report", "write_site_listings"),
    ("report: validation page", "warehouse.validate.report", "render_validation_report"),
    ("report: all", "warehouse.analyse.steps", "write_report"),
    ("report: catalog refresh", "warehouse.transform.catalog", "refresh_build_catalog"),
    ("publish: publish", "warehouse.publish.steps", "publish"),
    ("publish: record", "warehouse.publish.steps", "record_outcome"),
]

CHILD = r"""
import cProfile, importlib, json, sys, time
t0 = time.perf_counter()
import warehouse.build as build  # the build's own imports (not GX: that is lazy)
from warehouse.request import BuildRequest, PublishBlocked
import warehouse.validate.steps, warehouse.validate.core, warehouse.validate.pushdown_engine, warehouse.analyse.report
import warehouse.validate.datadocs, warehouse.validate.report, warehouse.validate.vanished, warehouse.validate.adam
import warehouse.transform.lineage, warehouse.transform.catalog, warehouse.analyse
imports = time.perf_counter() - t0
steps, export, data_dir, warm, prof_out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
spent, calls = {}, {}

def wrap(label, fn):
    def timed(*args, **kw):
        started = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
            calls[label] = calls.get(label, 0) + 1
    timed.__wrapped__ = fn
    return timed

for label, module, attr in steps:
    mod = importlib.import_module(module)
    owner, _, name = attr.rpartition(".")
    target = getattr(mod, owner) if owner else mod
    original = getattr(target, name)
    wrapped = wrap(label, original)
    setattr(target, name, wrapped)
    if not owner:  # every loaded module that imported it by name calls the wrapper too
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").startswith("warehouse") and getattr(other, name, None) is original:
                setattr(other, name, wrapped)

from pathlib import Path
request = BuildRequest(data_dir=Path(data_dir), export=Path(export), force=warm)
profiler = cProfile.Profile() if prof_out else None
started = time.perf_counter()
if profiler: profiler.enable()
try:
    result = build.run_build(request)
    stages, status = result.stage_seconds, "published"
except PublishBlocked as err:
    from warehouse.publish import BuildPaths, read_records
    stages, status = read_records(BuildPaths(Path(data_dir), True))[0].stage_seconds, "blocked"
wall = time.perf_counter() - started
if profiler:
    profiler.disable(); profiler.dump_stats(prof_out)
print(json.dumps({"imports": imports, "wall": wall, "stages": stages, "status": status, "steps": spent,
                  "calls": calls, "gx_in_process": "great_expectations" in sys.modules}))
"""


def profile(export: Path, data_dir: Path, warm: bool = False, cprofile: str = "") -> dict:
    """One build in a fresh process, its steps timed (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(STEPS), str(export), str(data_dir),
                           "1" if warm else "0", cprofile], capture_output=True, text=True, env=env, cwd=ROOT, check=False,
                          timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"profiled build failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_bytecode() -> None:
    """Write the bytecode of the project's own packages, as a user's first run does.

    This machine sets PYTHONDONTWRITEBYTECODE=1, so Python never keeps the bytecode of `warehouse/` (an editable
    install; the installed libraries were compiled by pip): every fresh process compiled the package's sources
    again, ~0.3 s of `import warehouse.build` alone (0.75-0.87 -> 0.48 s) and more for the modules a build imports
    later. On a user's machine the first run writes `__pycache__/`, and every run after it reads it; the benchmarks
    measure that run."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "warehouse"), str(ROOT / "flows")],
                   check=True, env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})


def import_times(module: str = "warehouse.build", top: int = 8) -> list[tuple[str, float]]:
    """`python -X importtime -c 'import MODULE'`: the top-level packages whose import (cumulative, wherever it
    happened) costs most, in seconds, and MODULE's own total first."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, check=False)
    rows: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].strip()
            if "." not in name or name == module:
                rows[name] = rows.get(name, 0.0) + int(parts[1]) / 1e6
    total = rows.pop(module, None)
    ranked = sorted(((k, v) for k, v in rows.items() if not k.startswith("_")), key=lambda r: -r[1])[:top]
    return ([(module, total)] if total is not None else []) + ranked


def render(label: str, out: dict) -> str:
    gx = "GX imported in the build's process" if out.get("gx_in_process") else "no GX in the build's process"
    lines = [f"{label}: build {out['wall']:.2f} s ({out['status']}); the build's imports {out['imports']:.2f} s; {gx}",
             "  stages: " + ", ".join(f"{k} {v:.2f}" for k, v in out["stages"].items())]
    for name, seconds in out["steps"].items():
        n = out["calls"].get(name)
        lines.append(f"  {name:<60} {seconds:7.2f} s" + (f"  ({n} calls)" if n and n > 1 else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--warm", action="store_true", help="--force a build into an existing data directory")
    parser.add_argument("--cprofile", default="", help="write a cProfile of the build's main thread here")
    parser.add_argument("--imports", action="store_true", help="also list the slowest imports of warehouse.build")
    args = parser.parse_args()
    compile_bytecode()
    out = profile(args.export, args.data_dir, args.warm, args.cprofile)
    print(render("warm" if args.warm else "cold", out))
    if args.imports:
        for name, seconds in import_times():
            print(f"  import {name:<40} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
