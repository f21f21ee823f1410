"""Benchmark: validation of every stage pushed down into DuckDB, against the transform time of the same build, and a
rule failing on a million rows.

    python bench/bench_validate.py [--subjects 2000] [--monitor-minutes 60] [--inject-rate 0.02] [--repeat 3]
                                   [--no-gx] [--write]

1. Generates the demo study with ``--subjects`` subjects (hemodynamics every ``--monitor-minutes``; problems
   injected at ``--inject-rate``), lands it, stages it and runs the transform as the build does (compile, then every
   model on one held connection: ``transform.steps.plan_models`` + ``transform.steps.run_models``).
2. Validates raw (views over the raw zone's Parquet files), staging (``src``) and marts as the build does
   (``validate.steps.validate_raw`` / ``validate_staging`` / ``validate_marts``: every suite, on the engine the build
   picks: DuckDB once a table of the stage has more than 200,000 rows, as at 10,000 subjects), and, unless --no-gx,
   with Great Expectations on pandas, the tables read into Polars first (the build's path for small studies).
   Both give the same findings (checked). GX is imported before timing. Target: DuckDB validation of all stages
   <= 0.5x the transform time.
3. A table of 1,000,000 rows on which one rule fails on every row: DuckDB counts all of them and fetches 1,000
   (max_findings_per_expectation); GX on pandas for comparison unless --no-gx.

Medians over --repeat runs for DuckDB (GX once: it is slow). --write replaces the "## Validation" section of
BENCHMARKS.md (and nothing else).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

SECTION = "## Validation"
ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def prepare(work: Path, subjects: int, inject_rate: float, seed: int, minutes: int) -> dict:
    from warehouse.demo import DemoParameters, generate_demo
    from warehouse.build import BuildRequest
    from warehouse.extract.steps import land
    from warehouse.transform.steps import plan_models, run_models, transform_model
    from warehouse.stage.load import stage
    from warehouse.publish.steps import start_build

    res, t_gen = timed(generate_demo, work / "demo", subjects=subjects, seed=seed, inject_rate=inject_rate,
                       formats=("redcap",), params=DemoParameters(hemo_interval_minutes=minutes))
    export = res.redcap_dir
    try:
        export_id, t_land = timed(land, export, work / "data")
    except Exception as e:  # noqa: BLE001 - an extract that refuses the injected duplicate records
        if "duplicate record key" not in str(e):
            raise
        sys.path.insert(0, str(ROOT / "tests" / "validate"))
        from validate_frames import drop_duplicate_records

        drop_duplicate_records(export)
        export_id, t_land = timed(land, export, work / "data")
    request = BuildRequest(data_dir=work / "data", export=export)
    build_id, build_file = start_build(request, export_id)
    _, t_stage = timed(stage, request, export_id, build_file, None)
    # the transform as the build runs it: compile, then every model on one held connection (lineage and catalog,
    # written after, are left out of the baseline)
    started = time.perf_counter()
    models = plan_models(build_file)
    result = run_models(build_file, models, transform_model)
    result.raise_for_failures()
    t_transform = time.perf_counter() - started
    return {"data_dir": work / "data", "export_id": export_id, "build_file": build_file, "generate": t_gen,
            "land": t_land, "stage": t_stage, "transform": t_transform, "models": len(models)}


def validate_duckdb(b: dict) -> tuple[list, dict[str, float]]:
    """Every stage as the build validates it (``validate.steps.validate_raw`` / ``validate_staging`` /
    ``validate_marts``): at this size each stage has a table above the pushdown threshold, so DuckDB evaluates it,
    over views of the raw zone's Parquet files and over the build file."""
    from warehouse.validate.steps import validate_marts, validate_raw, validate_staging

    seconds = {}
    raw, seconds["raw"] = timed(validate_raw, b["data_dir"], b["export_id"])
    staging, seconds["staging"] = timed(validate_staging, b["data_dir"], b["export_id"], b["build_file"])
    marts, seconds["marts"] = timed(validate_marts, b["build_file"])
    return [raw, staging, marts], seconds


def validate_gx(b: dict) -> tuple[list, dict[str, float]]:
    """Great Expectations on pandas over every table read into Polars (the build's path for small studies)."""
    from warehouse.extract.steps import read_meta, read_raw
    from warehouse.validate.steps import tables_of_schema, withhold_identifier_values
    from warehouse.stage.typed import identifier_items
    from warehouse.validate import validate_stage

    seconds = {}
    t = time.perf_counter()
    raw_forms, meta = read_raw(b["data_dir"], b["export_id"])
    raw = withhold_identifier_values(validate_stage("raw", raw_forms, metadata=meta), identifier_items(meta["items"]))
    seconds["raw"] = time.perf_counter() - t
    t = time.perf_counter()
    staging = validate_stage("staging", tables_of_schema(b["build_file"], "src"),
                             metadata=read_meta(b["data_dir"], b["export_id"]))
    seconds["staging"] = time.perf_counter() - t
    t = time.perf_counter()
    marts_tables = tables_of_schema(b["build_file"], "main")
    marts_tables["stg_randomisation"] = tables_of_schema(b["build_file"], "staging")["stg_randomisation"]
    marts = validate_stage("marts", marts_tables)
    seconds["marts"] = time.perf_counter() - t
    return [raw, staging, marts], seconds


def million_rows(with_gx: bool, cap: int = 1000) -> dict:
    from warehouse.validate import validate_stage
    from warehouse.validate.pushdown import validate_stage_duckdb

    suite = {"name": "big", "meta": {"table": "big"}, "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "hd_hr", "min_value": 20, "max_value": 220},
         "meta": {"severity": "error", "rule": "hd_hr within [20, 220]"}}]}
    con = duckdb.connect()
    con.execute("create table big as select 'S' || lpad((i // 500)::varchar, 5, '0') as subject_id, "
                "'site_0' || (i % 5) as site_id, 'icu_arm_1' as event, (i % 500 + 1)::integer as repeat_instance, "
                "1000 + i % 7 as hd_hr from range(1000000) t(i)")
    empty = Path(tempfile.mkdtemp(prefix="bench-suites-"))
    out = {}
    runs = []
    for _ in range(3):
        v, t = timed(validate_stage_duckdb, "staging", con, ["big"], suites_dir=empty, extra_suites=[suite],
                     max_findings_per_expectation=cap)
        runs.append(t)
    out["duckdb"] = statistics.median(runs)
    out["unexpected"] = int(v.results["unexpected_count"][0])
    out["findings"] = v.findings.height
    if with_gx:
        frame = con.sql("select * from big").pl()
        g, out["gx"] = timed(validate_stage, "staging", {"big": frame}, suites_dir=empty, extra_suites=[suite],
                             max_findings_per_expectation=cap)
        assert int(g.results["unexpected_count"][0]) == out["unexpected"] and g.findings.height == out["findings"]
    return out


def same(a: list, b: list) -> bool:
    fa = pl.concat([v.findings for v in a]).sort("finding_id")
    fb = pl.concat([v.findings for v in b]).sort("finding_id")
    return fa.equals(fb)


def report(b: dict, db: dict, gx: dict | None, rows: dict, big: dict, n_findings: int, agree: bool | None,
           args) -> str:
    total_db = sum(db.values())
    ratio = total_db / b["transform"]
    lines = [
        SECTION,
        "",
        f"`python bench/bench_validate.py --subjects {args.subjects} --inject-rate {args.inject_rate} "
        f"--monitor-minutes {args.monitor_minutes} --repeat {args.repeat}{' --no-gx' if args.no_gx else ''}` "
        f"(Python {platform.python_version()}, "
        f"{os.cpu_count()} cores). Every suite of every stage (files and generated), demo study of "
        f"{args.subjects} subjects with problems injected at {args.inject_rate}: largest tables "
        + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + f" rows; {n_findings:,} findings.",
        "",
        "| | seconds | x transform |",
        "|---|---:|---:|",
        f"| transform (compile + {b['models']} SQL models on one connection, as the build runs them) | "
        f"{b['transform']:.2f} | 1.00 |",
    ]
    for stage in ("raw", "staging", "marts"):
        lines.append(f"| validate {stage}, as the build runs it (`validate.steps.validate_{stage}`) | {db[stage]:.2f} | "
                     f"{db[stage] / b['transform']:.2f} |")
    lines.append(f"| **validate all stages, as the build runs them** | **{total_db:.2f}** | **{ratio:.2f}** "
                 f"({'meets' if ratio <= 0.5 else 'misses'} the 0.5x target) |")
    if gx:
        total_gx = sum(gx.values())
        for stage in ("raw", "staging", "marts"):
            lines.append(f"| validate {stage}, GX on pandas (the build's path below 200,000 rows a table) | {gx[stage]:.2f} | "
                         f"{gx[stage] / b['transform']:.2f} |")
        lines.append(f"| validate all stages, GX on pandas | {total_gx:.2f} | {total_gx / b['transform']:.2f} |")
    lines += [
        "",
        (f"Same findings from both paths: {'yes' if agree else 'NO'}." if agree is not None else ""),
        f"Stage (Polars typing) took {b['stage']:.2f} s; landing {b['land']:.2f} s. Build-path timings are medians of "
        f"{args.repeat} runs; GX is imported before timing; the GX path includes reading the tables into Polars, "
        "as the build does.",
        "",
        f"A rule failing on 1,000,000 rows (`expect_column_values_to_be_between`): DuckDB "
        f"{big['duckdb']:.2f} s, {big['unexpected']:,} failing rows counted, {big['findings']:,} finding rows kept "
        f"(max_findings_per_expectation=1000)"
        + (f"; GX on pandas {big['gx']:.2f} s (same counts)." if "gx" in big else "."),
        "",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace (or append) only the validation section of BENCHMARKS.md."""
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
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--inject-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=20190515)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--monitor-minutes", type=int, default=60,
                        help="hemodynamics interval (1 = bedside-monitor resolution, as the whole-build benchmark)")
    parser.add_argument("--no-gx", action="store_true", help="skip the GX-on-pandas comparison")
    parser.add_argument("--write", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from warehouse.validate.core import gx_runtime

    gx_runtime()  # the import is not what we measure
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        b = prepare(Path(tmp), args.subjects, args.inject_rate, args.seed, args.monitor_minutes)
        print(f"built: transform {b['transform']:.2f} s over {b['models']} models", flush=True)
        with duckdb.connect(str(b["build_file"]), read_only=True) as con:
            counts = {r[0]: int(r[1]) for r in con.sql(
                "select table_name, estimated_size from duckdb_tables() where schema_name = 'src' "
                "order by estimated_size desc limit 3").fetchall()}
        runs = [validate_duckdb(b) for _ in range(args.repeat)]
        db = {s: statistics.median(r[1][s] for r in runs) for s in ("raw", "staging", "marts")}
        print("duckdb", db, flush=True)
        gx, agree = None, None
        if not args.no_gx:
            gx_out, gx = validate_gx(b)
            agree = same(runs[0][0], gx_out)
            print("gx", gx, "same findings:", agree, flush=True)
        n_findings = sum(v.findings.height for v in runs[0][0])
    big = million_rows(not args.no_gx)
    text = report(b, db, gx, counts, big, n_findings, agree, args)
    print(text)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", text)
        print(f"written to {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
