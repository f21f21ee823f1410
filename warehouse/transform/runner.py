"""Transform: SQL models in `sql/`, run in DuckDB in the order their dependencies demand.

A model is one SELECT in one file, named after the table it builds. Dependencies are read from the SQL itself by
sqlglot (scope traversal, so CTE names are not mistaken for tables): there is no templating to learn, and the
SQL an analyst reads is the SQL that runs.

The header, a block of `--` comment lines at the top of the file, carries the model's configuration:

    -- description: One row per randomised subject.
    -- materialized: table
    -- grain: usubjid
    -- tags: marts, subject-level
    -- columns:
    --   usubjid: Unique subject identifier
"""

from __future__ import annotations

import difflib
import graphlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

LAYER_SCHEMAS = {"staging": "staging", "intermediate": "intermediate", "marts": "main"}
LAYER_ORDER = ["staging", "intermediate", "marts"]
SEARCH_PATH = "main,intermediate,staging,src"


class ModelError(Exception):
    """A model that cannot be parsed, ordered or run; the message names the file."""


@dataclass
class Model:
    name: str
    path: Path
    layer: str
    sql: str
    description: str = ""
    materialized: str = "table"
    grain: str = ""
    tags: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    depends_on: set[str] = field(default_factory=set)
    # filled by `execution_order`: the models this one reads (resolved names)
    upstream: set[str] = field(default_factory=set)
    header_lines: dict[str, int] = field(default_factory=dict, repr=False)
    reference_positions: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    # filled by the compile: the output columns as DuckDB names them, in order (empty: not compiled, the runner
    # asks DuckDB); spares a DESCRIBE per model when the build documents its tables
    output_columns: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def grain_columns(self) -> list[str]:
        return split_list(self.grain)

    @property
    def schema(self) -> str:
        return LAYER_SCHEMAS[self.layer]

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


HEADER_KEYS = {
    "description": "what one row is and what the table is for",
    "materialized": "table (default) or view",
    "grain": "the columns that identify a row, comma-separated",
    "tags": "comma-separated labels, for `--select tag:<tag>`",
    "columns": "followed by indented `--   column: description` lines",
}
MATERIALIZATIONS = ("table", "view")
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def parse_header(sql: str, path: Path | str = "<sql>") -> dict[str, object]:
    """The configuration block: leading `-- key: value` lines, with `columns:` followed by indented pairs.

    A leading comment line shaped like `-- word: text` is a config line and its key must be one of HEADER_KEYS
    (an unknown key is an error naming the file and line: a typo such as `grian:` must not pass silently); other
    comment lines (free text) are allowed. The result also carries `_lines`: the line number of each key and of
    each described column, for messages.
    """
    config: dict[str, object] = {}
    columns: dict[str, str] = {}
    lines: dict[str, int] = {}
    in_columns = False
    for number, line in enumerate(sql.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        body = stripped[2:]
        if in_columns and body.startswith("   ") and ":" in body:
            name, _, text = body.strip().partition(":")
            columns[name.strip().lower()] = text.strip()
            lines[f"columns.{name.strip().lower()}"] = number
            continue
        in_columns = False
        key, sep, value = body.strip().partition(":")
        key = key.strip().lower()
        if not sep or not _KEY_PATTERN.match(key):
            continue
        if key not in HEADER_KEYS:
            known = ", ".join(HEADER_KEYS)
            raise ModelError(f"{path}:{number}: unknown header key '{key}' (known keys: {known})")
        if key in lines:
            raise ModelError(f"{path}:{number}: header key '{key}' repeated (first on line {lines[key]})")
        lines[key] = number
        if key == "columns":
            in_columns = True
        else:
            config[key] = value.strip()
    materialized = str(config.get("materialized", "table")).lower()
    if materialized not in MATERIALIZATIONS:
        raise ModelError(
            f"{path}:{lines['materialized']}: materialized must be table or view, not '{config['materialized']}'"
        )
    config["columns"] = columns
    config["_lines"] = lines
    return config


def split_list(text: object) -> list[str]:
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


_AST_CACHE: dict[str, exp.Expr] = {}
_TABLE_SOURCES: dict[str, tuple[exp.Query, list[exp.Table]]] = {}  # by SQL text: (tree, its table sources)
_CACHE_LIMIT = 256  # models' texts; a long-lived process (tests, `warehouse serve`) does not grow without bound


def parse_model_sql(sql: str, path: Path, copy: bool = True) -> exp.Query:
    """The model's SELECT as a sqlglot tree (DuckDB dialect), cached by text; callers get their own copy.

    `copy=False` returns the cached tree itself, for a caller that only reads it."""
    ast = _AST_CACHE.get(sql)
    if ast is None:
        try:
            ast = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as err:
            detail = err.errors[0] if err.errors else {}
            where = f":{detail.get('line')}:{detail.get('col')}" if detail.get("line") else ""
            message = detail.get("description") or str(err).splitlines()[0]
            raise ModelError(f"{path}{where}: cannot parse the SQL: {message}") from err
        if not isinstance(ast, exp.Query):
            raise ModelError(f"{path}: a model is one SELECT statement, found {ast.key.upper()}")
        while len(_AST_CACHE) >= _CACHE_LIMIT:
            oldest = next(iter(_AST_CACHE))
            _AST_CACHE.pop(oldest)
            _TABLE_SOURCES.pop(oldest, None)
        _AST_CACHE[sql] = ast
    return ast.copy() if copy else ast


def take_model_ast(sql: str, path: Path) -> tuple[exp.Query, list[exp.Table] | None]:
    """The parsed tree for a caller that changes it (the compile qualifies it in place): the cached tree itself,
    removed from the cache so that nobody else sees it changed (parsed again when it is not cached). Saves the
    deep copy (about a third of the parse's cost) in the build, which parses each model once and compiles it
    once. Also the tables it reads (scope sources, CTE names excluded) when load_model found them in this
    very tree, else None."""
    ast = _AST_CACHE.pop(sql, None)
    if ast is None:
        ast = parse_model_sql(sql, path, copy=False)
        _AST_CACHE.pop(sql, None)
    found = _TABLE_SOURCES.pop(sql, None)
    return ast, (found[1] if found is not None and found[0] is ast else None)


def position(node: exp.Expr) -> tuple[int, int]:
    """(line, column) where a node starts in the model's file, 1-based; (0, 0) when sqlglot kept no position."""
    ident = node.this if isinstance(node, (exp.Column, exp.Table)) and isinstance(node.this, exp.Identifier) else node
    meta = ident.meta if isinstance(ident, exp.Expr) else {}
    line, end_col = meta.get("line") or 0, meta.get("col") or 0
    start, end = meta.get("start"), meta.get("end")
    if line and start is not None and end is not None:
        return line, max(1, end_col - (end - start))
    return line, end_col


def table_references(ast: exp.Query) -> dict[str, exp.Table]:
    """The tables a query reads, CTE names excluded, by reference (`name` or `schema.name`), first occurrence."""
    return references_of(table_sources(ast))


def references_of(sources: list[exp.Table]) -> dict[str, exp.Table]:
    tables: dict[str, exp.Table] = {}
    for source in sources:
        if source.name:
            name = source.name.lower()
            tables.setdefault(f"{source.db.lower()}.{name}" if source.db else name, source)
    return tables


def table_sources(ast: exp.Query) -> list[exp.Table]:
    """Every table node the query reads from (scope sources: CTE references excluded)."""
    return [source for scope in traverse_scope(ast) for source in scope.sources.values()
            if isinstance(source, exp.Table)]


def referenced_tables(sql: str, path: Path) -> set[str]:
    """The tables a query reads, CTE names excluded: `name`, or `schema.name` where the SQL qualifies it.

    A qualifier is kept because a mart may share its name with a staged form (`main.x` vs `src.x`).
    """
    return set(table_references(parse_model_sql(sql, path, copy=False)))


def load_model(path: Path, layer: str, known: dict | None = None) -> Model:
    """One model file: its header, and the tables it reads (parsed by sqlglot, unless `known` already holds
    them: `{"depends_on": [...], "positions": {reference: [line, col]}}`, from the parse cache)."""
    sql = path.read_text(encoding="utf-8").rstrip().rstrip(";").rstrip()
    header = parse_header(sql, path)
    if known is None:
        ast = parse_model_sql(sql, path, copy=False)
        sources = table_sources(ast)
        _TABLE_SOURCES[sql] = (ast, sources)  # for the compile: it need not traverse the scopes again
        references = references_of(sources)
        depends_on = set(references)
        positions = {ref: position(table) for ref, table in references.items()}
    else:
        depends_on = set(known["depends_on"])
        positions = {ref: (int(at[0]), int(at[1])) for ref, at in known["positions"].items()}
    return Model(
        name=path.stem.lower(),
        path=path,
        layer=layer,
        sql=sql,
        description=str(header.get("description", "")),
        materialized=str(header.get("materialized", "table")).lower(),
        grain=str(header.get("grain", "")),
        tags=split_list(header.get("tags")),
        columns=dict(header["columns"]),  # type: ignore[arg-type]
        depends_on=depends_on,
        header_lines=dict(header["_lines"]),  # type: ignore[arg-type]
        reference_positions=positions,
    )


PARSE_CACHE_VERSION = "models-v1"


def _model_files(sql_root: Path) -> list[tuple[str, Path]]:
    return [(layer, path) for layer in LAYER_ORDER for path in sorted((sql_root / layer).glob("*.sql"))]


def parse_cache_path(cache_dir: Path, files: list[tuple[str, Path, bytes]]) -> Path:
    """DIR/cache/models-<key>.json: key over the sqlglot version and every model file's layer, name and bytes."""
    import hashlib

    digest = hashlib.sha256(f"{PARSE_CACHE_VERSION} sqlglot {sqlglot.__version__}\n".encode())
    digest.update(Path(__file__).read_bytes())  # this module's code: how the tables are read
    for layer, path, data in files:
        digest.update(f"{layer}/{path.name}\n{len(data)}\n".encode())
        digest.update(data)
    return Path(cache_dir) / f"{PARSE_CACHE_VERSION}-{digest.hexdigest()[:32]}.json"


def read_json_cache(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):  # a damaged entry is recomputed
        path.unlink(missing_ok=True)
        return None


def write_json_cache(path: Path, value: dict) -> None:
    """Write atomically (temporary file, then rename): a crashed or concurrent build never leaves half a file."""
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(value)}.tmp")
    tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def discover_models(sql_root: Path, cache_dir: Path | None = None) -> dict[str, Model]:
    """Every model under `sql_root/<layer>/*.sql`; two files naming one table is an error.

    `cache_dir`: keep what sqlglot read from the files (the tables each model reads, and where) in
    `cache_dir/models-<key>.json`, keyed by every file's bytes and the sqlglot version, so that a build whose
    models did not change does not parse them (the compile cache then spares the compile too)."""
    files = _model_files(sql_root)
    known: dict | None = None
    cache_path = None
    if cache_dir is not None:
        contents = [(layer, path, path.read_bytes()) for layer, path in files]
        cache_path = parse_cache_path(cache_dir, contents)
        known = read_json_cache(cache_path)
    models: dict[str, Model] = {}
    for layer, path in files:
        entry = known.get(f"{layer}/{path.name}") if known is not None else None
        model = load_model(path, layer, entry)
        if model.name in models:
            raise ModelError(f"{path}: model '{model.name}' is also defined in {models[model.name].path}")
        models[model.name] = model
    if cache_path is not None and known is None:
        write_json_cache(cache_path, {
            f"{m.layer}/{m.path.name}": {"depends_on": sorted(m.depends_on),
                                          "positions": {r: list(at) for r, at in m.reference_positions.items()}}
            for m in models.values()
        })
    return models


def resolve_dependency(reference: str, models: dict[str, Model], sources: set[str]) -> str | None:
    """The model a reference names, "" for a staged source, None when nothing has that name.

    `src.x` is always a source; `staging.x` (or another layer's schema) is always a model; a bare name is a
    model first, as DuckDB's search path resolves it.
    """
    schema, _, name = reference.rpartition(".")
    if schema == "src":
        return "" if name in sources else None
    if schema:
        model = models.get(name)
        return name if model is not None and model.schema == schema else None
    if name in models:
        return name
    return "" if name in sources else None


def model_dependencies(model: Model, models: dict[str, Model], sources: set[str]) -> set[str]:
    """The models `model` reads; an unknown table is an error naming the model's file."""
    resolved = {ref: resolve_dependency(ref, models, sources) for ref in model.depends_on}
    unknown = sorted(ref for ref, target in resolved.items() if target is None)
    if unknown:
        where = [model.reference_positions.get(ref, (0, 0)) for ref in unknown]
        line = f":{where[0][0]}:{where[0][1]}" if where[0][0] else ""
        raise ModelError(f"{model.path}{line}: reads unknown table(s) {', '.join(unknown)}")
    return {target for target in resolved.values() if target}


def model_graph(models: dict[str, Model], sources: set[str]) -> dict[str, set[str]]:
    """Each model's upstream models (also stored on `Model.upstream`); an unknown table is an error."""
    graph = {}
    for model in models.values():
        model.upstream = model_dependencies(model, models, sources)
        graph[model.name] = model.upstream
    return graph


def execution_order(models: dict[str, Model], sources: set[str]) -> list[str]:
    """Models in dependency order; an unknown table or a cycle is an error naming the files involved."""
    graph = model_graph(models, sources)
    try:
        # sorted predecessors: the same order in every process (a set's order depends on the string hash seed)
        return list(graphlib.TopologicalSorter({n: sorted(up) for n, up in graph.items()}).static_order())
    except graphlib.CycleError as err:
        cycle = err.args[1]
        files = " -> ".join(str(models[name].path) for name in cycle)
        raise ModelError(f"dependency cycle: {files}") from err


@dataclass
class ModelRun:
    name: str
    relation: str
    rows: int
    seconds: float


def prepare_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """The layers' schemas (created when missing) and the search path. One look-up rather than a CREATE SCHEMA
    IF NOT EXISTS per schema: each of those is a transaction of its own, and the build calls this per model."""
    present = {r[0] for r in con.execute(
        "select schema_name from duckdb_schemas() where database_name = current_database()").fetchall()}
    for schema in ("src", "staging", "intermediate"):
        if schema not in present:
            con.execute(f"create schema if not exists {schema}")
    con.execute(f"set search_path = '{SEARCH_PATH}'")


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Descriptions of the key columns every layer carries, for a model whose header does not describe them.
KEY_DESCRIPTIONS = {
    "subject_id": "Subject: the eCRF record id (REDCap record / ODM SubjectKey)",
    "site_id": "Site: REDCap data access group / ODM site (LocationOID)",
    "event": "eCRF event: REDCap unique event name / ODM StudyEventOID",
    "repeat_instance": "Repeat instance of a repeating form (null when the form does not repeat)",
}


class Descriptions:
    """The column descriptions (DuckDB comments) of a database's tables, as the runner needs them to document a
    model: (schema, table) -> {column: text}, empty texts left out.

    Read from the catalog once (`read`) and then kept up to date by the runner itself (`record`, after each model
    it documented), so that a run of many models on one connection does not scan duckdb_columns() per model (~3 ms
    each, the catalog holding every staged form's columns). The runner is the only writer during a run (one build
    per data directory at a time), so what is kept equals what the catalog would say."""

    def __init__(self, tables: dict[tuple[str, str], dict[str, str]] | None = None):
        self.tables: dict[tuple[str, str], dict[str, str]] = tables if tables is not None else {}

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, names: list[str] | None = None) -> Descriptions:
        """Every described column of the current database, or only those of tables with one of `names`."""
        where = ""
        if names is not None:
            if not names:
                return cls()
            where = f" and table_name in ({', '.join('?' for _ in names)})"
        rows = con.execute(
            "select schema_name, table_name, column_name, comment from duckdb_columns() "
            f"where database_name = current_database() and comment is not null and comment <> ''{where}",
            names or []).fetchall()
        tables: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, comment in rows:
            tables.setdefault((schema, table), {})[column] = comment
        return cls(tables)

    def record(self, model: Model, comments: dict[str, str]) -> None:
        """The model's table now holds exactly these column comments (`create or replace` dropped any older)."""
        described = {column: text for column, text in comments.items() if text}
        if described:
            self.tables[(model.schema, model.name)] = described
        else:
            self.tables.pop((model.schema, model.name), None)

    def inherited(self, model: Model) -> dict[str, str]:
        """Descriptions for columns the header leaves out (see inherited_descriptions): the key columns' own, then
        the first description of the column in a table named like one the model reads (by bare name, in any
        schema): tables outside `src` first (a model's description before the eCRF item's label), then by name."""
        names = {ref.rpartition(".")[2] for ref in model.depends_on}
        found: dict[str, str] = dict(KEY_DESCRIPTIONS)
        own = (model.schema, model.name)
        candidates = sorted((key for key in self.tables if key[1] in names and key != own),
                            key=lambda key: (key[0] == "src", key[1], key[0]))
        for key in candidates:
            for column, text in self.tables[key].items():
                found.setdefault(column.lower(), text)
        return found


def inherited_descriptions(con: duckdb.DuckDBPyConnection, model: Model,
                           known: Descriptions | None = None) -> dict[str, str]:
    """Descriptions for columns the header leaves out: a column passed through under its own name keeps the
    description it has in a table the model reads (a staged eCRF item keeps its item label), keys get theirs.
    `known`: the descriptions a run keeps (see Descriptions); without it, the catalog is read for this model."""
    if known is None:
        known = Descriptions.read(con, sorted({ref.rpartition(".")[2] for ref in model.depends_on}))
    return known.inherited(model)


def output_columns(con: duckdb.DuckDBPyConnection, model: Model) -> list[str]:
    """The model's columns as DuckDB names them: what the compile inferred (the same SELECT over inputs of the same
    types), else DuckDB's DESCRIBE of the relation just created."""
    if model.output_columns:
        return list(model.output_columns)
    return [row[0] for row in con.execute(f"describe {model.relation}").fetchall()]


def comment_statements(con: duckdb.DuckDBPyConnection, model: Model,
                       known: Descriptions | None = None) -> tuple[list[str], dict[str, str]]:
    """The COMMENT ON statements that document the model, and the column comments they write: the header's
    description and columns (those the model outputs), else the description the same column has upstream."""
    kind = "view" if model.materialized == "view" else "table"
    statements = []
    if model.description:
        statements.append(f"comment on {kind} {model.relation} is {quote_literal(model.description)}")
    existing = output_columns(con, model)
    by_lower = {column.lower(): column for column in existing}
    written: dict[str, str] = {}
    for column, text in model.columns.items():
        if column.lower() in by_lower:
            statements.append(f"comment on column {model.relation}.{column} is {quote_literal(text)}")
            written[by_lower[column.lower()]] = text
    described = {c.lower() for c in model.columns}
    missing = [c for c in existing if c.lower() not in described]
    if missing and any(c.lower() not in KEY_DESCRIPTIONS for c in missing):
        upstream = inherited_descriptions(con, model, known)
    else:
        upstream = KEY_DESCRIPTIONS  # keys only: no table needs to be read
    for column in missing:
        text = upstream.get(column.lower())
        if text:
            statements.append(f'comment on column {model.relation}."{column}" is {quote_literal(text)}')
            written[column] = text
    return statements, written


def document_model(con: duckdb.DuckDBPyConnection, model: Model, known: Descriptions | None = None) -> dict[str, str]:
    """Store the model's descriptions as DuckDB comments, so any client shows them beside the table: the header's,
    else the description the same column has upstream (see inherited_descriptions). Every COMMENT ON of the model
    goes to DuckDB in one call. Returns the column comments written (`known`, if given, is only read)."""
    statements, written = comment_statements(con, model, known)
    if statements:
        con.execute(";\n".join(statements))
    return written


def run_model(con: duckdb.DuckDBPyConnection, model: Model, known: Descriptions | None = None) -> ModelRun:
    """Build one model's table (or view) in its layer's schema, with its comments, in one transaction.

    One transaction, not one per statement: each COMMENT ON would otherwise be a commit of its own (most of the
    runner's overhead before). A table's row count is what CREATE TABLE AS returns. `known`: the descriptions a
    run of several models keeps (see Descriptions), updated only when the model's transaction committed. Anything
    that interrupts the model rolls its transaction back, so the connection can run the next one."""
    started = time.perf_counter()
    kind = "view" if model.materialized == "view" else "table"
    written: dict[str, str] = {}
    con.execute("begin transaction")
    try:
        created = con.execute(f"create or replace {kind} {model.relation} as\n{model.sql}").fetchall()
        written = document_model(con, model, known)
        con.execute("commit")
    except duckdb.Error as err:
        rollback(con)
        raise ModelError(f"{model.path}: {str(err).splitlines()[0]}") from err
    except BaseException:
        rollback(con)
        raise
    if known is not None:
        known.record(model, written)
    if kind == "table" and created and isinstance(created[0][0], int):
        rows = created[0][0]
    else:
        rows = con.execute(f"select count(*) from {model.relation}").fetchall()[0][0]
    return ModelRun(model.name, model.relation, rows, time.perf_counter() - started)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction; a failed COMMIT has already ended it (nothing left to roll back)."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


@dataclass
class ModelSession:
    """One connection that runs models one after the other: the schemas and search path prepared once, and the
    descriptions of its tables kept from one catalog read (see Descriptions) instead of one read per model."""

    con: duckdb.DuckDBPyConnection
    descriptions: Descriptions

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection) -> ModelSession:
        prepare_schemas(con)
        return cls(con, Descriptions.read(con))

    def run(self, model: Model) -> ModelRun:
        return run_model(self.con, model, self.descriptions)


_HELD: dict[str, ModelSession] = {}  # database file -> the session holding it open (see hold_session)


def _database_key(database: Path | str) -> str:
    return str(Path(database).resolve())


@contextmanager
def hold_session(database: Path | str, con: duckdb.DuckDBPyConnection) -> Iterator[ModelSession]:
    """Make `con` (open on `database`) the session that `held_session(database)` returns while the block runs: a
    caller that is only given the file (the build's per-model Prefect task) then runs on this connection instead
    of connecting, preparing the schemas and reading the catalog again for every model."""
    key = _database_key(database)
    session = ModelSession.open(con)
    previous = _HELD.get(key)
    _HELD[key] = session
    try:
        yield session
    finally:
        if previous is None:
            _HELD.pop(key, None)
        else:
            _HELD[key] = previous


def held_session(database: Path | str) -> ModelSession | None:
    """The session holding `database` open in this process (see hold_session), or None."""
    return _HELD.get(_database_key(database)) if _HELD else None


def source_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from information_schema.tables where table_schema = 'src'").fetchall()
    return {r[0].lower() for r in rows}


def run_models(con: duckdb.DuckDBPyConnection, sql_root: Path, select: str | list[str] | None = None) -> list[ModelRun]:
    """Run every model (or the selected ones) in dependency order: the direct, Prefect-free path.

    Every model that can run does; then a failure (and the descendants it stopped) is raised as one ModelError.
    """
    prepare_schemas(con)
    models = discover_models(sql_root)
    order = execution_order(models, source_tables(con))
    result = run_project(con, models, order, select)
    result.raise_for_failures()
    return result.runs


# -- selection ----------------------------------------------------------------------------------------------


def descendants(models: dict[str, Model], name: str) -> set[str]:
    """Every model that reads `name`, directly or through others (needs `Model.upstream`, see model_graph)."""
    children: dict[str, set[str]] = {n: set() for n in models}
    for model in models.values():
        for parent in model.upstream:
            children[parent].add(model.name)
    found: set[str] = set()
    stack = [name]
    while stack:
        for child in children[stack.pop()] - found:
            found.add(child)
            stack.append(child)
    return found


def ancestors(models: dict[str, Model], name: str) -> set[str]:
    """Every model `name` reads, directly or through others."""
    found: set[str] = set()
    stack = [name]
    while stack:
        for parent in models[stack.pop()].upstream - found:
            found.add(parent)
            stack.append(parent)
    return found


def select_models(models: dict[str, Model], selector: str | list[str] | None) -> set[str]:
    """The models a selector names (dbt's syntax): `name`, `name+` (and its descendants), `+name` (and its
    ancestors), `+name+`, `tag:<tag>`, `layer:<staging|intermediate|marts>`; several selectors, separated by
    spaces or commas or given as a list, are a union. None or empty selects everything.

    Needs the graph (`execution_order` or `model_graph` fills `Model.upstream`). An unknown name is a ModelError.
    """
    if selector is None:
        return set(models)
    parts = selector if isinstance(selector, list) else [selector]
    terms = [term for part in parts for term in re.split(r"[\s,]+", part.strip()) if term]
    if not terms:
        return set(models)
    chosen: set[str] = set()
    for term in terms:
        up, down = term.startswith("+"), term.endswith("+")
        body = term.strip("+").lower()
        if body.startswith("tag:"):
            base = {m.name for m in models.values() if body[4:] in {t.lower() for t in m.tags}}
        elif body.startswith("layer:"):
            base = {m.name for m in models.values() if m.layer == body[6:] or m.schema == body[6:]}
        else:
            name = body.rpartition(".")[2]
            if name not in models:
                close = difflib.get_close_matches(name, list(models), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ModelError(f"--select {term}: no model named '{name}'{hint}")
            base = {name}
        if not base:
            raise ModelError(f"--select {term}: selects no model")
        chosen |= base
        for name in base:
            if up:
                chosen |= ancestors(models, name)
            if down:
                chosen |= descendants(models, name)
    return chosen


# -- running, with failures contained to their descendants ---------------------------------------------------


@dataclass
class RunResult:
    """What a run did: the models built (with timings), the failed ones (with their error), the skipped ones
    (with the failed model that stopped them) and the ones left out by the selector."""

    runs: list[ModelRun] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_selected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """The run summary: one line per model with rows and seconds, then failures and what they stopped."""
        lines = [f"{'model':<32} {'relation':<40} {'rows':>8} {'seconds':>8}"]
        for run in self.runs:
            lines.append(f"{run.name:<32} {run.relation:<40} {run.rows:>8} {run.seconds:>8.3f}")
        for name, error in self.failed.items():
            lines.append(f"{name:<32} FAILED: {error}")
        for name, cause in self.skipped.items():
            lines.append(f"{name:<32} SKIPPED: upstream model {cause} failed")
        total = sum(r.seconds for r in self.runs)
        lines.append(
            f"{len(self.runs)} built in {total:.2f} s, {len(self.failed)} failed, {len(self.skipped)} skipped"
            + (f", {len(self.not_selected)} not selected" if self.not_selected else "")
        )
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        if self.failed:
            raise ModelError(self.failure_message())

    def failure_message(self) -> str:
        parts = [f"{name}: {error}" for name, error in self.failed.items()]
        message = f"{len(self.failed)} model(s) failed: " + "; ".join(parts)
        if self.skipped:
            message += f"; not run because of them: {', '.join(self.skipped)}"
        return message


class RunTracker:
    """Decides, model by model in dependency order, whether a model may run, and collects the RunResult.

    The same bookkeeping serves the direct runner (`run_project`) and the Prefect flow:

        tracker = RunTracker(models)            # the ordered list from plan_models / compile_models
        for model in models:
            if tracker.should_run(model):       # False (and recorded as skipped) when an upstream failed
                try:
                    tracker.record(run_model_task(build_file, model))
                except Exception as err:
                    tracker.fail(model, err)
        result = tracker.result()               # result.summary(); result.raise_for_failures()
    """

    def __init__(self, models: list[Model] | dict[str, Model], not_selected: list[str] | None = None):
        self.models = {m.name: m for m in (models.values() if isinstance(models, dict) else models)}
        self.state = RunResult(not_selected=list(not_selected or []))
        self._stopped: dict[str, str] = {}  # model -> the failed model that stops it

    def blocked_by(self, model: Model) -> str | None:
        """The failed model that stops this one, or None."""
        for parent in sorted(model.upstream):
            if parent in self.state.failed:
                return parent
            if parent in self._stopped:
                return self._stopped[parent]
        return None

    def should_run(self, model: Model) -> bool:
        cause = self.blocked_by(model)
        if cause is not None:
            self._stopped[model.name] = cause
            self.state.skipped[model.name] = cause
            return False
        return True

    def record(self, run: ModelRun) -> None:
        self.state.runs.append(run)

    def fail(self, model: Model, error: BaseException | str) -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.state.failed[model.name] = text

    def result(self) -> RunResult:
        return self.state


def run_project(
    con: duckdb.DuckDBPyConnection,
    models: dict[str, Model],
    order: list[str],
    select: str | list[str] | None = None,
) -> RunResult:
    """Run the selected models in `order`; a failed model stops its descendants, independent models still run."""
    chosen = select_models(models, select)
    session = ModelSession.open(con)
    tracker = RunTracker([models[n] for n in order if n in chosen], [n for n in order if n not in chosen])
    for name in order:
        if name not in chosen:
            continue
        model = models[name]
        if not tracker.should_run(model):
            continue
        try:
            tracker.record(session.run(model))
        except ModelError as err:
            tracker.fail(model, err)
    return tracker.result()
