"""Where the validate stage's time goes on an existing data directory: the validate steps of a build, in the
build's order (warehouse/build.py build_and_publish), each with the steps inside it, without building again.

    python bench/profile_validate.py --data-dir bench/out/build-n10000 --work /tmp/prof10k
    python bench/profile_validate.py --data-dir /tmp/prof10k --runs 2         # a copy made earlier, twice
    python bench/profile_validate.py --data-dir /tmp/prof32 --dump /tmp/before # also the outputs, to compare
    python bench/profile_validate.py --data-dir ... --compare /tmp/before /tmp/after   # the two dumps, equal?

What runs: the newest build file of the data directory (builds/*.duckdb, blinded root) and its landed export
(raw/EXPORT, from the build's record); then validate_raw, validate_staging, validate_marts,
withhold_identifier_values, review_findings and record_validation (which writes the results, findings and their
history into the build file: hence ``--work``, a copy of the data directory made first; a directory is never
written unless it is a ``--work`` copy or ``--in-place`` says so). Data Docs, analyse and report do not run.

How: as bench/profile_build.py, the functions named in STEPS are replaced by timing wrappers (also in every module
that imported them by name) before the steps run. Times are inclusive wall-clock seconds; a step called several
times is summed, with its number of calls. Great Expectations' import (the build preloads it on a background
thread from its start) is waited for and timed before the steps, so it is not in them.

Differences from a build: the reference of the vanished-records check is the newest published build's export,
here usually the same export (a first build has none: the check is then free), and the findings history's
previous build is the build file itself. Benchmarks measure; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (label, module, attribute): the build's validate steps (top level, no indent) and the steps inside them
# (indented by depth), in the order a build reaches them; a label is printed once even when called from several
STEPS: list[tuple[str, str, str]] = [
    ("validate_raw", "warehouse.validate.steps", "validate_raw"),
    ("  raw: row counts + read meta", "warehouse.validate.steps", "read_meta"),
    ("  raw: parquet views / temp tables", "warehouse.validate.pushdown", "parquet_views"),
    ("  run_stage (the suites)", "warehouse.validate.core", "run_stage"),
    ("    plan suites", "warehouse.validate.core", "plan_suites"),
    ("    derived tables", "warehouse.validate.core", "add_derived_tables"),
    ("    DuckDB run (pushdown)", "warehouse.validate.pushdown_engine", "DuckDBEngine.run"),
    ("    DuckDB run, all suites of a table", "warehouse.validate.pushdown_engine", "DuckDBEngine.run_many"),
    ("      tally (one aggregate per table)", "warehouse.validate.pushdown_engine", "DuckDBEngine._tally"),
    ("      duplicates probe", "warehouse.validate.pushdown_engine", "DuckDBEngine._duplicates"),
    ("      count by value", "warehouse.validate.pushdown_engine", "DuckDBEngine._count_by_value"),
    ("      first failing rows", "warehouse.validate.pushdown_engine", "DuckDBEngine._first_failing"),
    ("      failing rows fetched", "warehouse.validate.pushdown_engine", "DuckDBEngine._rows_at"),
    ("    GX run (in memory)", "warehouse.validate.core", "PolarsEngine.run"),
    ("    findings of outcomes", "warehouse.validate.core", "findings_of"),
    ("    engine identifier values", "warehouse.validate.core", "engine_identifier_values"),
    ("    validation frames", "warehouse.validate.core", "_StageRun.validation"),
    ("  vanished records (check_vanished)", "warehouse.validate.vanished", "check_vanished"),
    ("    vanished: DuckDB queries", "warehouse.validate.vanished", "vanished_records"),
    ("validate_staging", "warehouse.validate.steps", "validate_staging"),
    ("validate_marts", "warehouse.validate.steps", "validate_marts"),
    ("  ADaM conformance (check_adam)", "warehouse.validate.adam", "check_adam"),
    ("  ADaM merge", "warehouse.validate.adam", "merge"),
    ("withhold_identifier_values (all stages)", "warehouse.validate.steps", "withhold_identifier_values"),
    ("  export identifier values (raw snapshot)", "warehouse.validate.identifiers", "export_identifier_values"),
    ("  withhold_identifiers (by field, scrub)", "warehouse.validate.identifiers", "withhold_identifiers"),
    ("    scrub frames", "warehouse.validate.identifiers", "scrub_identifier_values"),
    ("    scrub GX results", "warehouse.validate.identifiers", "scrub_gx_results"),
    ("review_findings", "warehouse.validate.steps", "review_findings"),
    ("  read decisions", "warehouse.review.gate", "read_decisions"),
    ("  review status", "warehouse.review.gate", "review_status"),
    ("  blocking", "warehouse.review.gate", "blocking"),
    ("record_validation (report stage)", "warehouse.validate.steps", "record_validation"),
    ("  previous findings", "warehouse.validate.steps", "previous_findings"),
    ("  findings history", "warehouse.validate", "update_findings_history"),
]
# what the build's clock counts as its validate stage (warehouse/build.py)
VALIDATE_CLOCK = ("validate_raw", "validate_staging", "validate_marts", "review_findings")


def newest_build(data_dir: Path) -> tuple[str, str, Path]:
    """(build_id, export_id, build file) of the newest build file of the blinded root that has a record."""
    builds = sorted((p for p in (data_dir / "builds").glob("*.duckdb")), key=lambda p: p.stem)
    for path in reversed(builds):
        record = path.with_suffix(".json")
        if record.is_file():
            meta = json.loads(record.read_text())
            if (data_dir / "raw" / meta["export_id"]).is_dir():
                return meta["build_id"], meta["export_id"], path
    raise SystemExit(f"{data_dir}: no build file with a record and its landed export under builds/ and raw/")


def copy_data_dir(source: Path, work: Path) -> Path:
    """A writable copy of ``source`` at ``work`` (made once; an existing copy is used as it is)."""
    if not work.exists():
        shutil.copytree(source, work, symlinks=True)
        for root, dirs, files in os.walk(work):
            for name in dirs + files:
                path = Path(root) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o200)
    return work


class Timer:
    """Inclusive wall time and calls of the functions in STEPS: a build step's (no indent) by its label, a step
    inside one by (the build step, its label), so that e.g. the DuckDB run shows per stage."""

    def __init__(self) -> None:
        self.spent: dict = {}  # label of a build step, or (its label, label of a step inside it)
        self.calls: dict = {}
        self.top: str | None = None  # the build step running

    def wrap(self, label: str, fn):
        top = not label.startswith(" ")

        def timed(*args, **kw):
            outer = self.top
            if top and outer is None:  # a build step (withhold_identifier_values inside validate_raw: not one)
                self.top = label
            key = label if outer is None else (outer, label)
            started = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.spent[key] = self.spent.get(key, 0.0) + time.perf_counter() - started
                self.calls[key] = self.calls.get(key, 0) + 1
                self.top = outer
        timed.__wrapped__ = fn
        return timed

    def install(self, steps: list[tuple[str, str, str]]) -> None:
        for label, module, attr in steps:
            mod = importlib.import_module(module)
            owner, _, name = attr.rpartition(".")
            target = getattr(mod, owner) if owner else mod
            original = getattr(target, name, None)
            if original is None:  # a step renamed or gone (the code moves on): time the rest
                continue
            setattr(target, name, self.wrap(label, original))
            if not owner:  # every loaded module that imported it by name calls the wrapper too
                for other in list(sys.modules.values()):
                    if getattr(other, "__name__", "").startswith("warehouse") and getattr(other, name, None) is original:
                        setattr(other, name, getattr(target, name))

    def reset(self) -> None:
        self.spent, self.calls = {}, {}


def run_steps(data_dir: Path, build_id: str, export_id: str, build_file: Path, record: bool = True):
    """The validate steps of warehouse.build.build_and_publish, in its order; (validations, review, history)."""
    from warehouse.publish import BuildPaths
    from warehouse.validate import steps as validate

    paths = BuildPaths(data_dir, True)
    validations = [
        validate.validate_raw(data_dir, export_id),
        validate.validate_staging(data_dir, export_id, build_file),
        validate.validate_marts(build_file),
    ]
    validate.withhold_identifier_values(validations, data_dir=data_dir, export_id=export_id)
    review = validate.review_findings(data_dir, validations)
    history = validate.record_validation(build_file, paths, build_id, validations, review) if record else None
    return validations, review, history


def dump(out: Path, validations: list, review, history) -> None:
    """The outputs a build keeps, sorted so that two runs compare row for row: per stage results and findings,
    the reviewed findings and the gate, the findings history (without its timestamps), the GX results (what Data
    Docs render) as JSON."""
    import polars as pl

    out.mkdir(parents=True, exist_ok=True)
    for v in validations:
        for name in ("results", "findings"):
            frame: pl.DataFrame = getattr(v, name)
            frame.sort(by=frame.columns, nulls_last=True).write_parquet(out / f"{v.stage}_{name}.parquet")
    reviewed = review.reviewed
    reviewed.sort(by=reviewed.columns, nulls_last=True).write_parquet(out / "reviewed.parquet")
    if history is not None:
        h = history.drop([c for c in history.columns if c.endswith("_at")])
        h.sort(by=h.columns, nulls_last=True).write_parquet(out / "history.parquet")
    gx = {v.stage: [[name, [[getattr(r, "result", None), getattr(r, "exception_info", None)]
                             for r in getattr(suite_result, "results", []) or []]]
                    for name, suite_result in getattr(v, "gx_results", []) or []] for v in validations}
    (out / "gx_results.json").write_text(json.dumps(gx, indent=1, default=str, sort_keys=True))
    gate = {k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in vars(review.gate).items()}
    (out / "gate.json").write_text(json.dumps(gate, indent=1, default=str, sort_keys=True))
    (out / "summary.json").write_text(json.dumps({v.stage: {"errors": v.errors, "warnings": v.warnings,
                                                             "skipped": v.skipped, "results": v.results.height,
                                                             "findings": v.findings.height}
                                                  for v in validations}, indent=1))


def compare(before: Path, after: Path) -> bool:
    """The dumps of two runs equal file for file (frames row for row, exact)."""
    import polars as pl
    from polars.testing import assert_frame_equal

    same = True
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    for name in names:
        a, b = before / name, after / name
        if not (a.exists() and b.exists()):
            print(f"  {name}: only in {'before' if a.exists() else 'after'}")
            same = False
            continue
        if name.endswith(".parquet"):
            try:
                assert_frame_equal(pl.read_parquet(a), pl.read_parquet(b))
                print(f"  {name}: same ({pl.read_parquet(a).height} rows)")
            except AssertionError as err:
                print(f"  {name}: DIFFERENT: {str(err)[:300]}")
                same = False
        else:
            ok = a.read_text() == b.read_text()
            print(f"  {name}: {'same' if ok else 'DIFFERENT'}")
            same = same and ok
    return same


def render(timer: Timer, wall: float, gx_wait: float, build_id: str, export_id: str) -> str:
    clock = sum(timer.spent.get(k, 0.0) for k in VALIDATE_CLOCK)
    lines = [f"build {build_id} (export {export_id}): validate steps {wall:.2f} s wall; the build's validate "
             f"clock (raw + staging + marts + review) {clock:.2f} s; GX import waited for first {gx_wait:.2f} s",
             f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"]

    def line(key, label):
        n = timer.calls.get(key, 0)
        lines.append(f"  {label:<46} {timer.spent[key]:7.2f} s" + (f"  ({n} calls)" if n > 1 else ""))

    for top, _, _ in STEPS:
        if top.startswith(" ") or top not in timer.spent:
            continue
        line(top, top)
        for label, _, _ in STEPS:  # the steps inside it (a build step called inside another: indented)
            if (top, label) in timer.spent:
                line((top, label), label if label.startswith(" ") else "  " + label)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--work", type=Path, help="copy --data-dir here first (once) and run on the copy")
    parser.add_argument("--in-place", action="store_true", help="--data-dir is a copy: record_validation may write")
    parser.add_argument("--no-record", action="store_true", help="skip record_validation (writes nothing)")
    parser.add_argument("--runs", type=int, default=1, help="run the steps this many times, each timed")
    parser.add_argument("--dump", type=Path, help="write the outputs of the last run here (see --compare)")
    parser.add_argument("--json", type=Path, help="write the timings of every run here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                        help="compare two --dump directories and exit (status 1 when they differ)")
    args = parser.parse_args()
    if args.compare:
        sys.exit(0 if compare(*args.compare) else 1)
    if args.data_dir is None:
        parser.error("--data-dir is required")
    data_dir = args.data_dir.resolve()
    record = not args.no_record
    if args.work:
        data_dir = copy_data_dir(data_dir, args.work.resolve())
    elif record and not args.in_place:
        parser.error("record_validation writes into the build file: give --work COPY, --in-place (on a copy) "
                     "or --no-record")
    build_id, export_id, build_file = newest_build(data_dir)

    timer = Timer()
    timer.install(STEPS)
    # the build imports GX ahead of validation (on a thread of its own, or in a process of its own once the build
    # no longer imports it): waited for here, so that no step pays it
    preload = getattr(importlib.import_module("warehouse.validate.core"), "preload_gx", None)
    started = time.perf_counter()
    if preload is not None:
        preload().join()
    gx_wait = time.perf_counter() - started
    runs = []
    for k in range(args.runs):
        timer.reset()
        started = time.perf_counter()
        validations, review, history = run_steps(data_dir, build_id, export_id, build_file, record)
        wall = time.perf_counter() - started
        print(render(timer, wall, gx_wait if k == 0 else 0.0, build_id, export_id), flush=True)
        runs.append({"wall": wall, "steps": {" / ".join(k) if isinstance(k, tuple) else k: v
                                             for k, v in timer.spent.items()},
                     "load": os.getloadavg()})
    if args.dump:
        dump(args.dump, validations, review, history)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
