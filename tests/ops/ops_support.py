"""Helpers of the operations tests (imported by module name: tests/ops is on sys.path under pytest)."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[2]
ARM_VALUES = ("Dexmedetomidine", "Placebo", "DEX", "PBO")
ARM_COLUMNS = {"arm", "arm_label", "armcd", "actarm", "actarmcd", "trt01p", "trt01a", "trtp", "trta",
               "arm_n", "trt01pn", "trt01an"}  # the numbers of an arm: null in a blinded build
TEXT_SUFFIXES = {".html", ".htm", ".csv", ".json", ".txt", ".md", ".log", ".xml", ".tsv"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict | None = None, timeout: float = 120, input: str | None = None):
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, input=input, cwd=PROJECT)


def build_info(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        rel = con.sql("select * from src.build_info")
        return dict(zip(rel.columns, rel.fetchall()[0]))


def direct_build_code(data_dir: Path, **request) -> str:
    """`python -c` source of a direct (no Prefect) build of the demo study; forced (a real rebuild even when the
    published build is up to date), as these tests build the same export again on purpose."""
    request.setdefault("force", True)
    extra = "".join(f", {k}={v!r}" for k, v in request.items())
    return ("from pathlib import Path\nfrom warehouse.build import BuildRequest, run_build\n"
            f"r = run_build(BuildRequest(data_dir=Path({str(data_dir)!r}){extra}))\nprint('BUILT', r.build_id)\n")


# -- what a blinded build must never contain ---------------------------------------------------------------------


def read_randomisation(path: Path) -> dict[str, tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["kit_no"]: (row["arm"], row["arm_label"]) for row in csv.DictReader(fh)}


def read_identifiers(redcap_dir: Path) -> tuple[set[str], dict[str, set[str]]]:
    """(identifier field names, their values in the data) of a REDCap export, from its data dictionary."""
    dictionary = next(redcap_dir.glob("*DataDictionary*.csv"))
    with dictionary.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("Identifier?")
    names = {r[0] for r in rows[1:] if r[col].strip().lower() in ("y", "yes", "1")}
    data = next(redcap_dir.glob("*_DATA_*.csv"))
    values: dict[str, set[str]] = {n: set() for n in names}
    with data.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for n in names:
                if row.get(n):
                    values[n].add(row[n])
    return names, values


def scan_duckdb(path: Path, forbidden: set[str], kit_arms: dict[str, tuple[str, str]],
                identifier_names: set[str] = frozenset()) -> list[str]:
    """Problems found in every table and column of a DuckDB file (all schemas)."""
    problems = []
    lowered = {v.lower() for v in forbidden}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.sql("select table_schema, table_name from information_schema.tables "
                         "where table_catalog = current_database()").fetchall()
        for schema, table in tables:
            rel = con.sql(f'select * from "{schema}"."{table}"')
            columns = list(rel.columns)
            for c in columns:
                if c.lower() in {n.lower() for n in identifier_names}:
                    problems.append(f"{path.name}:{schema}.{table} has identifier column {c}")
            for row in rel.fetchall():
                cells = {str(v) for v in row if v is not None}
                hits = {v for v in cells if v.lower() in lowered}
                if hits:
                    problems.append(f"{path.name}:{schema}.{table} holds {sorted(hits)}")
                for v in cells & kit_arms.keys():
                    if cells & set(kit_arms[v]):
                        problems.append(f"{path.name}:{schema}.{table} pairs kit {v} with its arm")
            for c in columns:  # nothing per arm: a treatment column holds the blinded label only
                if c.lower() in ARM_COLUMNS:
                    values = {r[0] for r in con.sql(f'select distinct "{c}" from "{schema}"."{table}"').fetchall()}
                    if values - {None, "Blinded"}:
                        problems.append(f"{path.name}:{schema}.{table}.{c} has groups {sorted(map(str, values))}")
    return sorted(set(problems))


def scan_parquet(path: Path, forbidden: set[str], kit_arms: dict[str, tuple[str, str]]) -> list[str]:
    import polars as pl

    frame = pl.read_parquet(path)
    problems = []
    lowered = {v.lower() for v in forbidden}
    for row in frame.iter_rows():
        cells = {str(v) for v in row if v is not None}
        if {v for v in cells if v.lower() in lowered}:
            problems.append(f"{path} holds an arm value")
        for v in cells & kit_arms.keys():
            if cells & set(kit_arms[v]):
                problems.append(f"{path} pairs kit {v} with its arm")
    return sorted(set(problems))


def whole_value_pattern(values) -> re.Pattern:
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def scan_text_cells(name: str, text: str, values: set[str]) -> list[str]:
    """Values found as a whole cell of a text output: an HTML cell, a CSV/TSV field or a JSON string."""
    if not values:
        return []
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    pattern = re.compile(rf'(?:^|[>,"\t;|])\s*({alternatives})\s*(?=$|[<,"\t;|])', re.MULTILINE)
    hits = sorted(set(pattern.findall(text)))
    return [f"{name} contains {hits}"] if hits else []


def scan_text(name: str, text: str, forbidden: set[str]) -> list[str]:
    hits = sorted(set(whole_value_pattern(forbidden).findall(text)))
    return [f"{name} contains {hits}"] if hits else []


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def is_text(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


def walk_outputs(data_dir: Path, skip_top: set[str]) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file()
                  and p.relative_to(data_dir).parts[0] not in skip_top)


def env_without_prefect(**extra: str) -> dict:
    """The current environment minus PREFECT_* (a subprocess must not share the test harness's settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(extra)
    return env


def dump(obj) -> str:
    return json.dumps(obj, default=str)
