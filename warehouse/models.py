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

import graphlib
import time
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

    @property
    def schema(self) -> str:
        return LAYER_SCHEMAS[self.layer]

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


def parse_header(sql: str) -> dict[str, object]:
    """The configuration block: leading `-- key: value` lines, with `columns:` followed by indented pairs."""
    config: dict[str, object] = {}
    columns: dict[str, str] = {}
    in_columns = False
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        body = stripped[2:]
        if in_columns and body.startswith("   ") and ":" in body:
            name, _, text = body.strip().partition(":")
            columns[name.strip().lower()] = text.strip()
            continue
        in_columns = False
        key, sep, value = body.strip().partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "columns":
            in_columns = True
        elif key:
            config[key] = value.strip()
    config["columns"] = columns
    return config


def referenced_tables(sql: str, path: Path) -> set[str]:
    """The tables a query reads, CTE names excluded: `name`, or `schema.name` where the SQL qualifies it.

    A qualifier is kept because a mart may share its name with a staged form (`main.x` vs `src.x`).
    """
    try:
        ast = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as err:
        raise ModelError(f"{path}: cannot parse the SQL: {str(err).splitlines()[0]}") from err
    if not isinstance(ast, exp.Query):
        raise ModelError(f"{path}: a model is one SELECT statement, found {ast.key.upper()}")
    tables: set[str] = set()
    for scope in traverse_scope(ast):
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and source.name:
                name = source.name.lower()
                tables.add(f"{source.db.lower()}.{name}" if source.db else name)
    return tables


def load_model(path: Path, layer: str) -> Model:
    sql = path.read_text(encoding="utf-8").strip().rstrip(";")
    header = parse_header(sql)
    tags = [t.strip() for t in str(header.get("tags", "")).split(",") if t.strip()]
    return Model(
        name=path.stem.lower(),
        path=path,
        layer=layer,
        sql=sql,
        description=str(header.get("description", "")),
        materialized=str(header.get("materialized", "table")).lower(),
        grain=str(header.get("grain", "")),
        tags=tags,
        columns=dict(header["columns"]),  # type: ignore[arg-type]
        depends_on=referenced_tables(sql, path),
    )


def discover_models(sql_root: Path) -> dict[str, Model]:
    """Every model under `sql_root/<layer>/*.sql`; two files naming one table is an error."""
    models: dict[str, Model] = {}
    for layer in LAYER_ORDER:
        for path in sorted((sql_root / layer).glob("*.sql")):
            model = load_model(path, layer)
            if model.name in models:
                raise ModelError(f"{path}: model '{model.name}' is also defined in {models[model.name].path}")
            models[model.name] = model
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
        raise ModelError(f"{model.path}: reads unknown table(s) {', '.join(unknown)}")
    return {target for target in resolved.values() if target}


def execution_order(models: dict[str, Model], sources: set[str]) -> list[str]:
    """Models in dependency order; an unknown table or a cycle is an error naming the files involved."""
    graph = {model.name: model_dependencies(model, models, sources) for model in models.values()}
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
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
    for schema in ("src", "staging", "intermediate"):
        con.execute(f"create schema if not exists {schema}")
    con.execute(f"set search_path = '{SEARCH_PATH}'")


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def document_model(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """Store the model's descriptions as DuckDB comments, so any client shows them beside the table."""
    kind = "view" if model.materialized == "view" else "table"
    if model.description:
        con.execute(f"comment on {kind} {model.relation} is {quote_literal(model.description)}")
    existing = {r[0].lower() for r in con.execute(f"describe {model.relation}").fetchall()}
    for column, text in model.columns.items():
        if column in existing:
            con.execute(f"comment on column {model.relation}.{column} is {quote_literal(text)}")


def run_model(con: duckdb.DuckDBPyConnection, model: Model) -> ModelRun:
    """Build one model's table (or view) in its layer's schema."""
    started = time.perf_counter()
    kind = "view" if model.materialized == "view" else "table"
    try:
        con.execute(f"create or replace {kind} {model.relation} as\n{model.sql}")
    except duckdb.Error as err:
        raise ModelError(f"{model.path}: {str(err).splitlines()[0]}") from err
    document_model(con, model)
    rows = con.execute(f"select count(*) from {model.relation}").fetchone()[0]
    return ModelRun(model.name, model.relation, rows, time.perf_counter() - started)


def source_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from information_schema.tables where table_schema = 'src'").fetchall()
    return {r[0].lower() for r in rows}


def run_models(con: duckdb.DuckDBPyConnection, sql_root: Path) -> list[ModelRun]:
    """Run every model in dependency order (the direct, Prefect-free path)."""
    prepare_schemas(con)
    models = discover_models(sql_root)
    order = execution_order(models, source_tables(con))
    return [run_model(con, models[name]) for name in order]
