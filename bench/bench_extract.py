"""Extract benchmark (issue 3, item 6): not a test.

1. REDCap CSV throughput: a generated export of >= 1 GB of records CSV (``--size large``) is landed with
   ``land_export`` and, in the same run, copied by DuckDB's own ``read_csv`` -> Parquet; both wall times,
   MB/s and the ratio (target: land_export at least 0.5x DuckDB's speed).
2. ODM peak memory: ``land_export`` on demo ODM files of two sizes, each in a fresh subprocess, peak RSS
   (VmHWM; ru_maxrss where there is no /proc) reported; it should stay flat as the file grows.

    python bench/bench_extract.py --size large      # the numbers in BENCHMARKS.md ("## Extract")
    python bench/bench_extract.py --size small      # a quick smoke run (CI)

Generated exports are written once under bench/out/ (git ignores it) and reused by later runs.
The demo generator writes about 9.6 kB of records CSV per subject, so 1 GiB is about 112,000 subjects; it is
fast enough (~1 ms per subject) to generate directly, no row replication needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SIZES = {
    # name: (REDCap subjects, ODM subjects at two sizes, repeats)
    "small": (2_000, (100, 400), 3),
    "large": (113_000, (500, 2_000, 8_000), 1),
}
MB = 1_000_000


def generate(kind: str, subjects: int) -> Path:
    """The demo export (``redcap`` folder or ``odm`` file) for ``subjects``, generated once and cached."""
    from warehouse.demo import generate_demo

    root = OUT / f"demo_{kind}_{subjects}"
    done = root / ".complete"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        generate_demo(root, subjects=subjects, seed=7, formats=(kind,))
        done.write_text(f"{time.perf_counter() - t:.1f}\n")
        print(f"  generated {kind} N={subjects} in {time.perf_counter() - t:.1f} s", flush=True)
    if kind == "redcap":
        return root / "redcap"
    return next((root / "odm").glob("*.xml"))


def records_csv(export: Path) -> Path:
    return max(export.glob("*.csv"), key=lambda p: p.stat().st_size)


def time_land(export: Path, work: Path) -> tuple[float, dict]:
    from warehouse.extract import land_export

    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    res = land_export(export, data)
    elapsed = time.perf_counter() - t
    raw_bytes = sum(p.stat().st_size for p in res.raw_dir.glob("*.parquet"))
    rows = sum(r for r, _ in res.forms.values())
    shutil.rmtree(data, ignore_errors=True)
    return elapsed, {"raw_parquet_bytes": raw_bytes, "raw_rows": rows, "forms": len(res.forms)}


def time_duckdb(csv: Path, work: Path) -> tuple[float, dict]:
    import duckdb

    target = work / "duckdb_copy.parquet"
    target.unlink(missing_ok=True)
    con = duckdb.connect()
    con.sql("set enable_progress_bar = false")
    src = str(csv).replace("'", "''")
    t = time.perf_counter()
    con.sql(f"copy (select * from read_csv('{src}', all_varchar = true)) to '{target}' (format parquet)")
    elapsed = time.perf_counter() - t
    rows = con.sql(f"select count(*) from read_parquet('{target}')").fetchall()[0][0]
    info = {"parquet_bytes": target.stat().st_size, "rows": rows}
    con.close()
    target.unlink(missing_ok=True)
    return elapsed, info


def bench_csv(subjects: int, repeats: int) -> dict:
    export = generate("redcap", subjects)
    csv = records_csv(export)
    size = csv.stat().st_size
    all_bytes = sum(p.stat().st_size for p in export.iterdir() if p.is_file())
    work = OUT / "work"
    work.mkdir(parents=True, exist_ok=True)
    land_t, duck_t, land_info, duck_info = [], [], {}, {}
    for k in range(repeats):  # alternate, so both see the same page cache and machine state
        t, duck_info = time_duckdb(csv, work)
        duck_t.append(t)
        t, land_info = time_land(export, work)
        land_t.append(t)
        print(f"  run {k + 1}: duckdb {duck_t[-1]:.2f} s, land_export {land_t[-1]:.2f} s", flush=True)
    land, duck = statistics.median(land_t), statistics.median(duck_t)
    return {
        "subjects": subjects, "records_csv_bytes": size, "export_bytes": all_bytes, "csv_rows": duck_info["rows"],
        "land_s": land, "duckdb_s": duck, "land_runs": land_t, "duckdb_runs": duck_t,
        "land_mb_s": size / MB / land, "duckdb_mb_s": size / MB / duck, "ratio": duck / land,
        **land_info, "duckdb_parquet_bytes": duck_info["parquet_bytes"],
    }


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (reset by exec, unlike ru_maxrss, which Linux carries over from the
    forking parent), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def odm_child(path: str) -> None:
    """Subprocess body: land one ODM file, print peak RSS and time as JSON."""
    import tempfile

    from warehouse.extract import land_export

    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        t = time.perf_counter()
        res = land_export(Path(path), Path(tmp) / "data")
        elapsed = time.perf_counter() - t
        rows = sum(r for r, _ in res.forms.values())
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "land_s": elapsed, "rows": rows}))


def baseline_child() -> None:
    """Subprocess body: the same imports, nothing landed (the interpreter + libraries floor)."""
    import warehouse.extract  # noqa: F401

    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_odm(sizes: tuple[int, ...]) -> dict:
    rows = []
    base = run_child("--baseline-child")
    for n in sizes:
        path = generate("odm", n)
        r = run_child("--odm-child", str(path))
        r.update(subjects=n, file_bytes=path.stat().st_size, mb_s=path.stat().st_size / MB / r["land_s"])
        rows.append(r)
        print(f"  ODM N={n}: {r['file_bytes'] / MB:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"{r['land_s']:.1f} s", flush=True)
    return {"baseline_rss_mb": base["peak_rss_mb"], "sizes": rows}


def machine() -> dict:
    import duckdb
    import polars
    import pyarrow

    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) / 1024 / 1024
    except OSError:  # pragma: no cover
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem, 1) if mem else None,
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "polars": polars.__version__, "pyarrow": pyarrow.__version__}


def markdown(res: dict) -> str:
    m, c, o = res["machine"], res["csv"], res["odm"]
    lines = [
        f"Machine: {m['nproc']} CPUs, {m['memory_gib']} GiB RAM; Python {m['python']}, DuckDB {m['duckdb']}, "
        f"Polars {m['polars']}, PyArrow {m['pyarrow']}.",
        "",
        f"REDCap CSV, demo N={c['subjects']:,}: records CSV {c['records_csv_bytes'] / MB:,.0f} MB "
        f"({c['csv_rows']:,} rows), median of {len(c['land_runs'])} run(s)"
        + ("" if c["records_csv_bytes"] >= 1e9 else " (smaller than the 1 GB the issue asks for: not the reference run)"),
        "",
        "| step | wall time (s) | throughput (MB/s of records CSV) | ratio to DuckDB |",
        "|---|---:|---:|---:|",
        f"| DuckDB `read_csv(all_varchar)` -> Parquet | {c['duckdb_s']:.1f} | {c['duckdb_mb_s']:.0f} | 1.00 |",
        f"| `land_export` (hash, landing copy, checks, split into {c.get('forms', '?')} forms) | "
        f"{c['land_s']:.1f} | {c['land_mb_s']:.0f} | {c['ratio']:.2f} |",
        "",
        f"ODM peak RSS (`land_export` in a fresh process; interpreter + libraries alone: "
        f"{o['baseline_rss_mb']:.0f} MB)",
        "",
        "| ODM file | subjects | peak RSS (MB) | wall time (s) | MB/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in o["sizes"]:
        lines.append(f"| {r['file_bytes'] / MB:,.0f} MB | {r['subjects']:,} | {r['peak_rss_mb']:.0f} | "
                     f"{r['land_s']:.1f} | {r['mb_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--subjects", type=int, help="REDCap export size (subjects), overriding --size")
    ap.add_argument("--repeats", type=int, help="runs of each CSV measurement (median reported)")
    ap.add_argument("--odm-sizes", help="comma-separated ODM subject counts, overriding --size")
    ap.add_argument("--skip-csv", action="store_true")
    ap.add_argument("--skip-odm", action="store_true")
    ap.add_argument("--odm-child", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.odm_child:
        return odm_child(args.odm_child)
    if args.baseline_child:
        return baseline_child()
    OUT.mkdir(parents=True, exist_ok=True)
    subjects, odm_sizes, repeats = SIZES[args.size]
    subjects = args.subjects or subjects
    repeats = args.repeats or repeats
    if args.odm_sizes:
        odm_sizes = tuple(int(x) for x in args.odm_sizes.split(","))
    res: dict = {"size": args.size, "machine": machine()}
    if not args.skip_csv:
        print(f"REDCap CSV: N={subjects}", flush=True)
        res["csv"] = bench_csv(subjects, repeats)
        c = res["csv"]
        print(f"  records CSV {c['records_csv_bytes'] / MB:.0f} MB: land_export {c['land_s']:.2f} s "
              f"({c['land_mb_s']:.0f} MB/s), duckdb {c['duckdb_s']:.2f} s ({c['duckdb_mb_s']:.0f} MB/s), "
              f"ratio {c['ratio']:.2f} (target >= 0.5)", flush=True)
    if not args.skip_odm:
        print(f"ODM peak RSS: N={odm_sizes}", flush=True)
        res["odm"] = bench_odm(odm_sizes)
    path = OUT / f"extract_{args.size}.json"
    path.write_text(json.dumps(res, indent=2))
    if "csv" in res and "odm" in res:
        print("\n" + markdown(res))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
