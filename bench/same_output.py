"""Same output before and after a speed change: what a build checks and reports on the demo and the injected demo.

    python bench/same_output.py dump DIR AFTER.json                      # this tree
    PYTHONPATH=/path/to/old/worktree python bench/same_output.py dump DIR2 BEFORE.json
    python bench/same_output.py compare BEFORE.json AFTER.json           # non-zero exit when anything differs

`dump` builds the demo and the injected demo (rate 0.1, seed 7) unblinded into DIR with the `warehouse` package
found first on the path (a worktree of an older commit on PYTHONPATH), and writes: every table's content hash
(`publish.table_content_hashes`), `validation_results` and `findings` row for row in their stored order (build ids
and times aside), the findings by severity, whether the build was published, and a hash of every report file (HTML,
JSON, CSV; Data Docs included) with build ids, run times and GX's generated element ids masked. Used for the
"checked the same" paragraphs of BENCHMARKS.md; nothing here is a test.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

STUDIES = (("demo", 0.0, None), ("injected", 0.1, 7))
STAMP = re.compile(r"\d{8}T\d{6}(\.?\d+)?Z?(-[0-9a-f]+)?")  # build ids and GX run names
MASKS = [
    (STAMP, "#T"),
    (re.compile(r"'_run_time_sort': [^,]+"), "'_run_time_sort': #N"),  # GX's index page sorts runs by their time
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "#U"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z| UTC)?"), "#D"),
    (re.compile(r"[0-9a-f]{8,}"), "#H"),
    (re.compile(r'id="[^"]*"'), 'id=""'),
    (re.compile(r"\d+(\.\d+)? ?(s|ms)\b"), "#S"),  # durations
]
VOLATILE = re.compile(r"build_id|_at$|time|run_name")


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def report_hashes(reports: Path) -> dict[str, str]:
    out = {}
    for path in sorted(reports.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".json", ".csv"):
            text = masked(path.read_text(encoding="utf-8", errors="replace"))
            out[STAMP.sub("#T", str(path.relative_to(reports)))] = hashlib.sha256(text.encode()).hexdigest()
    return out


def dump(root: Path, target: Path) -> None:
    import duckdb

    from warehouse import build
    from warehouse.publish.snapshots import table_content_hashes
    from warehouse.request import BuildRequest, PublishBlocked

    out = {}
    for name, rate, seed in STUDIES:
        data_dir = root / name
        started = time.perf_counter()
        try:
            build.run(BuildRequest(data_dir=data_dir, blinded=False, demo_inject_rate=rate,
                                   **({"demo_seed": seed} if seed is not None else {})))
            status = "published"
        except PublishBlocked:
            status = "blocked"
        built = data_dir / "unblinded"
        newest = max((built / "builds").glob("*.duckdb"), key=lambda p: p.stat().st_mtime)
        with duckdb.connect(str(newest), read_only=True) as con:
            def rows(table: str) -> str:
                columns = [c for (c,) in con.execute(
                    "select column_name from duckdb_columns() where schema_name = 'main' and table_name = ?",
                    [table]).fetchall() if not VOLATILE.search(c)]
                return repr(con.execute(f"select {', '.join(json.dumps(c) for c in columns)} from main.{table}")
                            .fetchall())

            out[name] = {
                "status": status,
                "tables": table_content_hashes(con),
                "validation_results": hashlib.sha256(rows("validation_results").encode()).hexdigest(),
                "findings": hashlib.sha256(rows("findings").encode()).hexdigest(),
                "severity": con.execute("select severity, count(*) from main.findings group by all order by 1")
                .fetchall(),
                "reports": report_hashes(built / "reports"),
            }
        print(f"{name}: {status}, findings {out[name]['severity']}, {len(out[name]['tables'])} tables, "
              f"{len(out[name]['reports'])} report files, {time.perf_counter() - started:.1f} s", file=sys.stderr)
    target.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")


def compare(before: Path, after: Path) -> int:
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (before, after))
    differs = 0
    for study in a:
        for key in a[study]:
            x, y = a[study][key], b.get(study, {}).get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                diff = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            else:
                diff = [] if x == y else [f"{x!r} != {y!r}"[:200]]
            differs += bool(diff)
            print(f"{study} {key}: " + ("same" if not diff else f"DIFFERENT ({len(diff)}): {diff[:5]}"))
    return 1 if differs else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "dump":
        dump(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
