"""Validation pushed down into DuckDB: the suites' expectations compiled to SQL, for tables too large to validate in
memory with Great Expectations on pandas.

The suite files stay the single source of truth, and the output is the same as ``validate_stage``'s (results,
findings, suites; per expectation a result in GX's shape, ``expectations.Result``): planning, skipped expectations,
parameters, severities and findings are the same code (``core.run_stage``); only the evaluation differs. Per table
one aggregate query counts, for every row-wise expectation at once, the rows in its domain, the missing and the
failing ones, over the full table; uniqueness needs a probe of its own (sorted hashes). Only when expectations
failed do two more queries run per table, whatever the number of failed rules: one scan finds the positions of the
first ``max_findings_per_expectation`` failing rows of each (in table order, as GX lists them), reading only the
columns the rules read, and one query fetches those rows whole. A rule failing on a million rows therefore costs
three scans and N rows of Python, and ten failed rules on a table cost the same three scans.

Why our own SQL and not GX's SQL datasource: GX 1.x on DuckDB (via duckdb-engine) returns empty results as shipped
(see ../shared/GUIDE.md), it is one more dependency, and it builds one query per metric (dozens of scans per
table). The compiled subset is what the suites use; see ``SQL_EXPECTATIONS``. Any other expectation type still
runs, with GX on pandas over that one table (correct, not cheap), and is logged.

    from warehouse.validate.pushdown import validate_stage_duckdb, use_pushdown
    with duckdb.connect(build_file, read_only=True) as con:
        v = validate_stage_duckdb("staging", con, ["src.labs", "src.vitals"], metadata=meta)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from warehouse.validate.core import (
    StageOptions,
    StageValidation,
    run_stage,
    validate_stage,
)
from warehouse.validate.pushdown_engine import DuckDBEngine
from warehouse.validate.pushdown_sql import (
    POS,
    SQL_EXPECTATIONS,
    compile_expectation,
    ident,
    literal,
    qualified,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

# Tables above this many rows are validated in DuckDB: every table with a row. GX on pandas stays the reference
# engine (tests/validate/test_pushdown.py: same results and findings) and runs the expectation types not compiled to
# SQL, but it is not the cheaper one at any size: per suite and table it builds a batch, a pandas frame and a GX
# run (~0.1 s each, 55 of them in the 32-subject demo: 5.0 s against 2.5 s for the whole validate stage in DuckDB,
# bench/profile_build.py). It was 200,000 while small tables were thought cheaper in memory.
PUSHDOWN_ROW_THRESHOLD = 0
# Raw forms up to this many rows are read into temporary tables once (every suite on a form scans it: 0.35 s of the
# 32-subject demo's raw stage, 1.9 -> 1.6 s); larger ones stay views over their Parquet files, so that memory stays
# flat in the size of the export.
RAW_MATERIALISE_ROWS = 200_000

__all__ = [  # DuckDBEngine: pushdown_engine.py; SQL_EXPECTATIONS, compile_expectation: pushdown_sql.py
    "PUSHDOWN_ROW_THRESHOLD",
    "RAW_MATERIALISE_ROWS",
    "SQL_EXPECTATIONS",
    "DuckDBEngine",
    "compile_expectation",
    "parquet_views",
    "table_row_counts",
    "use_pushdown",
    "validate_stage_auto",
    "validate_stage_duckdb",
]


# --------------------------------------------------------------------------------------------- entry points


def validate_stage_duckdb(
    stage: str,
    con,
    tables: list[str] | dict[str, str],
    metadata: dict[str, pl.DataFrame] | None = None,
    suites_dir: Path | None = None,
    **options: Unpack[StageOptions],
) -> StageValidation:
    """``validate_stage`` on tables of a DuckDB connection, evaluated in DuckDB; same output.

    ``tables``: relations of ``con`` ("src.labs", "main.adsl", a view name), each known to the suites by its last
    name part; or a dict suite name -> relation. ``con`` may be read-only: derived ``chk_*`` tables are registered
    frames, unregistered at the end."""
    engine = DuckDBEngine(con, tables)
    try:
        return run_stage(stage, engine, metadata, suites_dir, **options)
    finally:
        engine.close()


def table_row_counts(con, tables: list[str]) -> dict[str, int]:
    """Row counts of relations of ``con`` (exact: count(*), cheap in DuckDB and on Parquet)."""
    return {t: int(con.sql(f"select count(*) from {qualified(t)}").fetchall()[0][0]) for t in tables}


def use_pushdown(con, tables: list[str], threshold: int = PUSHDOWN_ROW_THRESHOLD) -> bool:
    """The threshold rule: validate in DuckDB when any table of the stage has more than ``threshold`` rows."""
    return any(n > threshold for n in table_row_counts(con, tables).values())


def validate_stage_auto(
    stage: str,
    con,
    tables: list[str],
    metadata: dict[str, pl.DataFrame] | None = None,
    *,
    threshold: int = PUSHDOWN_ROW_THRESHOLD,
    **kwargs,
) -> StageValidation:
    """The stage's validation on the engine the threshold rule picks: DuckDB when a table has more than
    ``threshold`` rows, else GX on pandas (the tables read into Polars)."""
    if use_pushdown(con, tables, threshold):
        return validate_stage_duckdb(stage, con, tables, metadata, **kwargs)
    frames = {t.split(".")[-1].strip('"'): con.sql(f"select * from {qualified(t)}").pl() for t in tables}
    return validate_stage(stage, frames, metadata, **kwargs)


def parquet_views(con, files: dict[str, Path], materialise: bool = True) -> list[str]:
    """Parquet files (e.g. the raw zone's forms) as relations of ``con`` with the row position as ``__pos``;
    returns their names, for ``validate_stage_duckdb(..., tables=...)``.

    ``materialise``: read each file once into a temporary table (a stage runs several queries per table; the raw
    zone's text columns are cheaper to scan in memory than to decompress again); else temporary views."""
    names = []
    kind = "table" if materialise else "view"
    for name, path in files.items():
        con.execute(f"create or replace temp {kind} {ident(name)} as select * rename (file_row_number as {POS}) "
                    f"from read_parquet({literal(str(path))}, file_row_number = true)")
        names.append(name)
    return names
