"""The read-only session: how analysts' commands (`query`, `shell`, `warehouse.connect`) open a warehouse file.

Two layers (docs/operations.md, "The read-only session"):

1. DuckDB itself. `open_read_only` starts an in-memory DuckDB with extension auto-install and auto-load off,
   ATTACHes the one file READ_ONLY, makes it the default database, then turns external access off
   (`enable_external_access=false`: no file, directory, network or extension access, no other ATTACH, no COPY TO,
   no EXPORT) and locks the configuration (`lock_configuration=true`: no SET or RESET can turn it back on). Only
   our own four statements run before the lock. Why not `duckdb.connect(path, read_only=True, config=...)`:
   DuckDB keeps one database instance per path and process, so a second connect to the published path after a
   publish (an atomic rename) would see the old build, and it refuses a second connect with another
   configuration. An ATTACH opens the file as it is now. (`allowed_paths` / `allowed_directories` would let us set
   external access off in the connect config and still ATTACH the file, but DuckDB 2.0.1 refuses both in the
   connect config and refuses to set them once external access is off.)
2. A statement gate (`check_statement`), for the SQL people type: exactly one statement, and only a read:
   SELECT (with WITH, FROM-first, VALUES, PIVOT), DESCRIBE, SHOW, SUMMARIZE, EXPLAIN of a read, and read-only
   PRAGMAs (table_info, show_tables...). Anything else is refused with the reason before it reaches DuckDB.

Where a file comes from is checked too (`warehouse_file`): a snapshot label must name a folder under DIR/locks,
and a blinded session never opens a file under DIR/unblinded nor a build whose `src.build_info` says unblinded.

Errors are `BadInput` (one line: the file and the reason; the commands print it as `error: ...` and exit 2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

READ_ONLY_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_persistent_secrets": False,
}

# PRAGMAs (and their `pragma_*` table functions for CALL) that only read the catalog or the engine's state.
READ_PRAGMAS = frozenset({
    "table_info", "show", "show_tables", "show_tables_expanded", "show_databases", "database_list", "database_size",
    "storage_info", "metadata_info", "version", "platform", "user_agent", "functions", "collations",
})

WHY_REFUSED = {
    "ATTACH": "it would open another database",
    "DETACH": "it would close the warehouse",
    "COPY": "it would read or write files",
    "EXPORT": "it would write files",
    "LOAD": "it would install or load an extension",
    "SET": "it would change the session's settings",
    "CREATE": "it would create an object",
    "INSERT": "it would change data",
    "UPDATE": "it would change data",
    "DELETE": "it would change data",
    "MERGE_INTO": "it would change data",
    "DROP": "it would drop an object",
    "ALTER": "it would change an object",
    "CALL": "only read-only PRAGMA functions can be called",
    "PRAGMA": "only read-only PRAGMAs (table_info, show_tables, database_size...) are allowed",
    "TRANSACTION": "a read-only session has no transactions to manage",
    "VACUUM": "it would write to the database",
    # by first word, where DuckDB's statement type is shared with other statements
    "IMPORT": "it would read files into the session",
    "INSTALL": "it would download an extension",
    "USE": "it would switch to another database",
    "CHECKPOINT": "it would write to the database",
}
ALLOWED = "SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and read-only PRAGMA"


class BadInput(Exception):
    """A file, folder, label or statement the read-only session cannot or will not open or run (exit 2)."""


class Refused(BadInput):
    """A statement the read-only session refuses (not a read, or more than one statement)."""


# -- files ------------------------------------------------------------------------------------------------------


def check_file(path: Path, what: str = "database file") -> Path:
    """`path` exists, is a regular file and is readable, else BadInput naming it and the reason."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{what} not found: {path}")
    if path.is_dir():
        raise BadInput(f"{what} {path} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{what} {path}: no read permission")
    return path


def check_dir(path: Path, what: str = "data directory") -> Path:
    """`path` exists, is a directory and is readable, else BadInput naming it and the reason."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{what} not found: {path}")
    if not path.is_dir():
        raise BadInput(f"{what} {path} is a file, not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise BadInput(f"{what} {path}: no read permission")
    return path


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", text)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_read_only(path: Path, blinded: bool | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that can read `path` (a DuckDB file, attached READ_ONLY as the default database) and nothing
    else: no other file, no network, no extension, no setting changed. Each call opens the file as it is now.

    `blinded=True`: refuse a file whose `src.build_info` says it is an unblinded build."""
    path = check_file(Path(path))
    resolved = path.resolve()
    alias = re.sub(r"\W", "_", resolved.stem) or "warehouse"
    if alias[0].isdigit():
        alias = f"db_{alias}"
    con = duckdb.connect(":memory:", config=dict(READ_ONLY_CONFIG))
    try:
        try:
            con.execute(f"attach {_quote(str(resolved))} as {alias} (type duckdb, read_only)")
        except duckdb.Error as err:
            reason = _one_line(err)
            if "not a valid DuckDB database" in reason:
                reason = "not a DuckDB database file"
            raise BadInput(f"cannot open {path}: {reason}") from None
        con.execute(f"use {alias}")
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        if blinded and _is_unblinded_build(con, alias):
            raise BadInput(f"{path} is an unblinded build: a blinded session does not open it (use --unblinded)")
    except BaseException:
        con.close()
        raise
    return con


def _is_unblinded_build(con: duckdb.DuckDBPyConnection, alias: str) -> bool:
    has_info = con.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'src' "
        "and table_name = 'build_info'", [alias]).fetchone()[0]
    if not has_info:
        return False
    try:
        rows = con.execute("select blinded from src.build_info").fetchall()
    except duckdb.Error:
        return False
    return any(r[0] is False for r in rows)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def warehouse_file(data_dir: Path, unblinded: bool = False, snapshot: str | None = None) -> Path:
    """The published warehouse of `data_dir` (DIR/warehouse.duckdb, or DIR/unblinded/warehouse.duckdb), or a
    locked snapshot's copy (DIR[/unblinded]/locks/<label>/warehouse.duckdb). BadInput when it is not there, when
    the label is not a lock of this data directory, or when a blinded session would land under DIR/unblinded."""
    from warehouse.publish import LABEL_PATTERN, LOCKS_DIR, BuildPaths

    data_dir = Path(data_dir)
    check_dir(data_dir)
    paths = BuildPaths(data_dir, blinded=not unblinded)
    if snapshot is not None:
        locks = paths.root / LOCKS_DIR
        if not LABEL_PATTERN.match(snapshot) or "/" in snapshot or ".." in snapshot:
            raise BadInput(f"snapshot label {snapshot!r} is not a lock label (see `warehouse locks`)")
        folder = locks / snapshot
        if not folder.is_dir() or not _inside(folder, locks):
            raise BadInput(f"no locked snapshot {snapshot!r} at {folder} (see `warehouse locks`)")
        path = folder / "warehouse.duckdb"
        what = f"locked snapshot {snapshot!r}"
    else:
        path = paths.published
        what = "published warehouse"
    if not path.exists():
        raise BadInput(f"no {what} at {path}" + ("" if snapshot else ": run `warehouse build` first"))
    if not unblinded and _inside(path, data_dir / "unblinded"):
        raise BadInput(f"{path} is under {data_dir / 'unblinded'}: a blinded session does not open it")
    return check_file(path, what)


def connect(data_dir: Path | str = "data", unblinded: bool = False,
            snapshot: str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the current published warehouse (or a locked snapshot): `warehouse.connect`."""
    return open_read_only(warehouse_file(Path(data_dir), unblinded, snapshot), blinded=not unblinded)


# -- statements -------------------------------------------------------------------------------------------------


def split_statements(sql: str) -> list[str]:
    """The statements of `sql` (DuckDB's own parser; BadInput on a syntax error)."""
    try:
        return [s.query.strip().rstrip(";").strip() for s in duckdb.extract_statements(sql)]
    except (duckdb.Error, ValueError) as err:
        raise BadInput(f"cannot parse the SQL: {_one_line(err)}") from None


def _statement_type(sql: str) -> str:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise BadInput(f"cannot parse the SQL: {_one_line(err)}") from None
    if len(statements) != 1:
        raise Refused(f"refused: {len(statements)} statements; a read-only call runs exactly one")
    try:
        return statements[0].type.name
    except ValueError:  # a statement type the Python API does not name (e.g. UPDATE EXTENSIONS)
        return "OTHER"


def _first_word(sql: str) -> str:
    text = re.sub(r"^(\s|--[^\n]*\n|/\*.*?\*/)*", "", sql, flags=re.S)
    match = re.match(r"[A-Za-z_]+", text)
    return match.group(0).upper() if match else ""


def check_statement(sql: str) -> str:
    """`sql` if it is exactly one read statement, else Refused saying what is refused and why."""
    kind = _statement_type(sql)
    first = _first_word(sql)
    if kind == "SELECT":
        return sql
    if kind == "MULTI" and first in ("PIVOT", "UNPIVOT"):
        return sql
    if kind == "EXPLAIN":
        inner = re.sub(r"^\s*explain\s+(analy[sz]e\s+)?", "", re.sub(r"^(\s|--[^\n]*\n)*", "", sql), flags=re.I)
        if inner != sql and _statement_type(inner) == "SELECT":
            return sql
        raise Refused(f"refused: EXPLAIN of a statement that is not a read ({ALLOWED} only)")
    if kind in ("PRAGMA", "CALL"):
        match = re.match(r"\s*(?:pragma|call)\s+([A-Za-z_]+)", re.sub(r"^(\s|--[^\n]*\n)*", "", sql), flags=re.I)
        name = match.group(1).lower() if match else ""
        if kind == "CALL":
            name = name[len("pragma_"):] if name.startswith("pragma_") else ""
        if name in READ_PRAGMAS and "=" not in sql:
            return sql
    label = first if kind in ("LOAD", "SET", "PRAGMA", "CALL", "VACUUM", "TRANSACTION", "OTHER") and first else kind
    why = WHY_REFUSED.get(first if first in ("IMPORT", "INSTALL", "USE", "CHECKPOINT") else kind,
                          "it is not a read statement")
    raise Refused(f"refused: {label} statement in a read-only session ({why}); {ALLOWED} only")
