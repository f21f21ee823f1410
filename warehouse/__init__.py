"""A clinical-trial data warehouse: eCRF exports to validated, ADaM-style marts in DuckDB.

The package knows nothing of Prefect: every stage is a plain function, and `flows/` wires them into a flow.
"""

__version__ = "0.1.0"


def connect(data_dir="data", unblinded: bool = False, snapshot: str | None = None):
    """A read-only DuckDB connection to the build published in `data_dir` now (or a locked snapshot's copy).

    Each call opens the current published file afresh, so after a new build is published, calling it again sees
    the new build (a plain `duckdb.connect(path)` in a process that already opened that path returns DuckDB's cached
    instance: the old build). The connection reads that one file and nothing else (see warehouse.readonly)."""
    from warehouse.readonly import connect as read_only_connect

    return read_only_connect(data_dir, unblinded=unblinded, snapshot=snapshot)
