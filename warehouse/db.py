"""The DuckDB connection of a build file, with the build's memory limit and storage version.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DUCKDB_MEMORY_ENV = "WAREHOUSE_DUCKDB_MEMORY"


DEFAULT_DUCKDB_MEMORY = "1GB"

# The storage format a new build file is written in. DuckDB 2.x writes its own format by default ('latest': storage
# version 999), which DuckDB 1.x cannot open ("version number 999, can read 64-67"), nor the DuckDB CLI on PyPI
# (1.5.x); 'v1.4.0' (storage version 67) is read by DuckDB 1.4 and every later release, and keeps every table,
# view and COMMENT. The setting decides the format of a file only when the file is created: a file opened again
# keeps the version it was created with, so the build file and the published one (the same bytes) stay 1.4-readable
# whichever connection writes to them later. docs/deliverables.md says why and what it costs (nothing measurable).
STORAGE_VERSION = "v1.4.0"


def connect_build(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to a build file (or in memory) with the build's DuckDB memory limit: DuckDB's default (80% of
    RAM) keeps every page it reads cached, which made a 10,000-subject build hold ~8 GB; above the limit it evicts
    and spills to disk instead. WAREHOUSE_DUCKDB_MEMORY sets it ('4GB'; '' for DuckDB's default). A file this
    creates is written in STORAGE_VERSION (readable by DuckDB 1.4 and later)."""
    import os

    config = {} if read_only else {"storage_compatibility_version": STORAGE_VERSION}
    con = duckdb.connect(str(path) if path is not None else ":memory:", read_only=read_only, config=config)
    limit = os.environ.get(DUCKDB_MEMORY_ENV, DEFAULT_DUCKDB_MEMORY)
    if limit:
        con.execute(f"set memory_limit = '{limit}'")
    return con


def storage_version(con: duckdb.DuckDBPyConnection, database: str | None = None) -> str:
    """The storage version a database file of this connection was written in ('v1.4.0+'; '' when DuckDB does not
    say, as for an in-memory database). `database`: its name in the connection (default: the current one)."""
    row = con.execute("select tags['storage_version'] from duckdb_databases() where database_name = "
                      "coalesce(?, current_database())", [database]).fetchone()
    return (row[0] or "") if row else ""
