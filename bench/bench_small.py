"""The "Small builds and the command line" section of BENCHMARKS.md, from one run of bench/bench_build.py: the fixed
costs per step (bench/profile_build.py) at the profiled sizes, the CLI timings (bench/bench_cli.py) and issue 19's
targets table, each figure against the floor measured in the same run."""

from __future__ import annotations

import os
import platform
import statistics
import time

from bench_cli import render_cli

SMALL_SECTION = "## Small builds and the command line"

# issue 19's table: figure, the figure when it was filed, the target
TARGETS = [
    ("32-subject build without Prefect / floor", "16-22x", "<= 5x"),
    ("1,000-subject build / floor", "3.1x", "<= 2x"),
    ("`warehouse build` of the demo, warm, with a running local server (command to prompt)", "31-44 s", "<= 10 s"),
    ("`warehouse build` of the demo, cold (fresh Prefect home and data directory), temporary server", "41-66 s",
     "<= 35 s, and never a failure from a slow server start"),
    ('"Up to date" / `--only-new` with nothing new', "17-22 s", "<= 2 s"),
    ("10,000 subjects / floor, peak RSS", "1.84x, 1.74 GB", "stay <= 2x, <= 2 GB"),
]


def load_average() -> float:
    return os.getloadavg()[0]


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def _runs(walls: list[float]) -> str:
    """'4.1 s' for one run, '4.1 s, median of 3: 3.9-4.9' for several."""
    m = statistics.median(walls)
    return f"{m:.1f} s" if len(walls) == 1 else f"{m:.1f} s, median of {len(walls)}: {min(walls):.1f}-{max(walls):.1f}"


def target_rows(results: list[dict], cli: dict | None) -> list[tuple[str, str, str, str, str]]:
    """(figure, then, target, this run, met) for each row of TARGETS that this run measured."""
    by_n = {r["n"]: r for r in results}
    measured: list[tuple[str, bool | None]] = []

    def ratio(n: int, limit: float) -> tuple[str, bool | None]:
        if n not in by_n:
            return "not run", None
        r = by_n[n]
        colds = r.get("cold_walls") or [r["direct"]["wall"]]
        cold = statistics.median(colds)
        x = cold / r["floor"]["wall"]
        text = f"{x:.1f}x ({_runs(colds)} / floor {r['floor']['wall']:.2f} s, cold data directory)"
        if r.get("profile"):
            warms = r["profile"].get("warm_walls") or [r["profile"]["warm"]["wall"]]
            text += f"; warm (`--force`) {statistics.median(warms) / r['floor']['wall']:.1f}x ({_runs(warms)})"
        return text, x <= limit

    measured.append(ratio(32, 5))
    measured.append(ratio(1000, 2))
    runs = (cli or {}).get("runs") or {}

    def median(case: str, limit: float) -> tuple[str, bool | None]:
        values = runs.get(case) or []
        if not values:
            return "not run", None
        m = statistics.median(values)
        return f"{m:.1f} s (median of {len(values)})", m <= limit

    measured.append(median("server", 10))
    cold = median("cold", 35)
    measured.append((cold[0] + ", no failure" if runs.get("cold") else cold[0], cold[1]))
    up, new = median("up to date", 2), median("only new", 2)
    measured.append((f"{up[0]} / {new[0]}", None if up[1] is None else bool(up[1] and new[1])))
    if 10000 in by_n:
        r = by_n[10000]
        x, rss = r["direct"]["wall"] / r["floor"]["wall"], r["direct"]["rss_mb"]
        measured.append((f"{x:.2f}x, {rss / 1024:.2f} GB", x <= 2 and rss <= 2048))
    else:
        measured.append(("not run", None))
    return [(f, then, target, got, _verdict(ok)) for (f, then, target), (got, ok) in zip(TARGETS, measured)]


def profile_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the fixed-cost table: a column per profiled size and cold / warm, a row per step."""
    profiled = [r for r in results if r.get("profile")]
    columns = [(r, kind) for r in profiled for kind in ("cold", "warm")]
    header = ["step (s)"] + [f"N={r['n']:,} {kind}" for r, kind in columns]
    labels: list[str] = []
    for r, kind in columns:
        for label in r["profile"][kind]["steps"]:
            if label not in labels:
                labels.append(label)
    rows = [["imports of the build's modules"] + [f"{r['profile'][k]['imports']:.2f}" for r, k in columns]]
    for label in labels:
        rows.append([label] + [f"{r['profile'][k]['steps'].get(label, 0.0):.2f}" for r, k in columns])
    rows.append(["**build (wall)**"] + [f"**{r['profile'][k]['wall']:.2f}**" for r, k in columns])
    rows.append(["floor (same run)"] + [f"{r['floor']['wall']:.2f}" for r, _ in columns])
    return header, rows


def render_small(results: list[dict], cli: dict | None, command: str, load: list[float]) -> str:
    lines = [
        SMALL_SECTION, "",
        (f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {os.cpu_count()} cores, "
         f"Python {platform.python_version()}). Load average (1 min) at the start and the end of the run: "
         f"{load[0]:.1f} and {load[-1]:.1f}: the machine is shared, and every figure moves with its load."), "",
        "### Targets (issue 19)", "",
        "| figure | when filed | target | this run | |", "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in target_rows(results, cli)]
    header, rows = profile_rows(results)
    if rows and len(header) > 1:
        lines += [
            "", "### Where the fixed time goes (bench/profile_build.py)", "",
            ("One direct build (no Prefect) per column, in a fresh process, its steps timed where they are called "
             "(inclusive wall seconds; a step inside another is also in its parent's figure). Cold: a fresh data "
             "directory (no compile, lineage or figure cache); warm: the same export again with `--force` (every "
             "cache hit). Great Expectations is not imported in the build's process: its worker process (started "
             "with the build) imports it, judges the suite files and renders Data Docs; the build waits for it only "
             "at the Data Docs line."), "",
            "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    if cli:
        lines += ["", "### The command line (bench/bench_cli.py)", "", *render_cli(cli)]
    return "\n".join(lines) + "\n"
