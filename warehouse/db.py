"""The DuckDB connection of a build file, with the build's memory limit.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DUCKDB_MEMORY_ENV = "WAREHOUSE_DUCKDB_MEMORY"


DEFAULT_DUCKDB_MEMORY = "1GB"


def connect_build(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to a build file (or in memory) with the build's DuckDB memory limit: DuckDB's default (80% of
    RAM) keeps every page it reads cached, which made a 10,000-subject build hold ~8 GB; above the limit it evicts
    and spills to disk instead. WAREHOUSE_DUCKDB_MEMORY sets it ('4GB'; '' for DuckDB's default)."""
    import os

    con = duckdb.connect(str(path) if path is not None else ":memory:", read_only=read_only)
    limit = os.environ.get(DUCKDB_MEMORY_ENV, DEFAULT_DUCKDB_MEMORY)
    if limit:
        con.execute(f"set memory_limit = '{limit}'")
    return con
