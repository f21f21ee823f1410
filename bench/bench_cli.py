"""The demo build as a person runs it: `warehouse build` from command to prompt, each case a median of several runs.

    python bench/bench_cli.py --runs 3          # prints the table; bench/bench_build.py calls bench_cli() too

Cases, in the order they run (each in a subprocess, PREFECT_* variables of the caller removed):
- `cold`: a fresh Prefect home and a fresh data directory each run (the temporary server creates its database,
  the demo export is generated, no cache of any kind in the data directory);
- `warm`: the same home and data directory, `--force` (a full build; the temporary server starts every time);
- `server`: the same, with a local server that stays up (`warehouse server start` once, before the runs; its
  start is reported on its own line, not in the runs);
- `up to date`: `warehouse build` with nothing changed (answered before any server);
- `only new`: `warehouse build --only-new` with nothing new.
Benchmarks measure; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BENCH_PORT = 4391  # the bench's own local server (another free port is taken when busy)
CASES = ("cold", "warm", "server", "up to date", "only new")


def warehouse(env: dict, *args: str, timeout: int = 900) -> float:
    """Run `warehouse ARGS` (python -m warehouse.cli) and return its wall time; a failure stops the benchmark."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "warehouse.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"warehouse {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(ROOT))
    return env


def bench_cli(runs: int = 3) -> dict:
    """Seconds per run of each case (see the module docstring), and the local server's start."""
    base = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    out: dict[str, list[float]] = {case: [] for case in CASES}
    server_start = None
    try:
        for i in range(runs):  # cold: nothing kept between runs
            home, data = base / f"home-cold-{i}", base / f"data-cold-{i}"
            out["cold"].append(warehouse(clean_env(home), "build", "--data-dir", str(data)))
            print(f"  cold {i + 1}: {out['cold'][-1]:.1f} s", flush=True)
        env, data = clean_env(base / "home-cold-0"), str(base / "data-cold-0")
        for i in range(runs):
            out["warm"].append(warehouse(env, "build", "--data-dir", data, "--force"))
            print(f"  warm {i + 1}: {out['warm'][-1]:.1f} s", flush=True)
        server_start = warehouse(env, "server", "start", "--port", str(BENCH_PORT))
        try:
            for i in range(runs):
                out["server"].append(warehouse(env, "build", "--data-dir", data, "--force"))
                print(f"  with a running server {i + 1}: {out['server'][-1]:.1f} s", flush=True)
        finally:
            warehouse(env, "server", "stop")
        for i in range(runs):
            out["up to date"].append(warehouse(env, "build", "--data-dir", data))
            out["only new"].append(warehouse(env, "build", "--data-dir", data, "--only-new"))
        print(f"  up to date {statistics.median(out['up to date']):.1f} s, only new "
              f"{statistics.median(out['only new']):.1f} s", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"runs": out, "server_start": server_start}


def render_cli(cli: dict) -> list[str]:
    """The table of the cases: median, min and max of the runs."""
    lines = ["| `warehouse build` of the demo | median s | min s | max s | runs |", "|---|---:|---:|---:|---:|"]
    labels = {"cold": "cold: fresh Prefect home and data directory, temporary server",
              "warm": "warm (`--force`), temporary server",
              "server": "warm (`--force`), running local server (`warehouse server start`)",
              "up to date": "up to date (nothing changed)", "only new": "`--only-new` with nothing new"}
    for case in CASES:
        values = cli["runs"][case]
        if values:
            lines.append(f"| {labels[case]} | {statistics.median(values):.1f} | {min(values):.1f} | "
                         f"{max(values):.1f} | {len(values)} |")
    if cli.get("server_start") is not None:
        lines += ["", f"`warehouse server start` itself (once, before the runs with it): {cli['server_start']:.1f} s."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print("\n".join(render_cli(bench_cli(args.runs))))


if __name__ == "__main__":
    main()
