"""Compile: check every SQL model against the schemas it reads before anything is written.

Each model, in dependency order, is

1. resolved: every table it reads gets the schema DuckDB's search path would give it (`stg_x` ->
   `staging.stg_x`, a bare staged form -> `src.x`), so that sqlglot and DuckDB agree on what a name means;
2. qualified by sqlglot (`optimizer.qualify.qualify`) against a `MappingSchema` holding the real column types of
   the `src` tables (read from a build's DuckDB) and the output columns of the upstream models inferred in step 3
   (the qualified SELECT is what the column lineage reads);
3. typed by DuckDB itself: the model's SELECT is run over empty copies of its inputs in an in-memory database
   (`create table ... as select * from (<model>) limit 0`). This gives the exact output types DuckDB will
   produce (sqlglot's type annotation does not know every DuckDB function) in about a millisecond per model,
   and DuckDB's binder is the check of record: an unknown or ambiguous column, an unknown table, a function
   called with wrong types all fail here. The empty table then stands in for the model when its descendants
   are compiled;
4. located, only when DuckDB refused it: the qualified query is walked scope by scope and every column
   reference that does not resolve (an unknown or ambiguous column, an unknown column of a named table or CTE)
   is a problem naming the model file, line and column (all of a model's problems, not only the first); when
   sqlglot finds nothing, DuckDB's message is the problem, with its line (see `problems`).

A model whose upstream failed to compile is not compiled itself (its errors would only echo the first one); the
message lists it. Header checks ride along: every `grain` column must be an output column (error); a described
column the model does not output is a warning.

Caches. In a process, the last compiles are kept in memory (lineage and the catalog, written after the models ran,
reuse the compile that gated the build). A build file under DIR/builds also uses DIR/cache (where the lineage
cache is): `models-v1-<key>.json`, what sqlglot read from the files (the tables each model reads, and where), keyed
by every file's bytes, the sqlglot version and models.py; and `compile-v1-<key>.json`, the outcome of a compile
that passed (every model's output columns and types, the warnings), keyed by every model's file and SQL, the `src`
schema, the sqlglot and DuckDB versions and the code of this module, models.py, order.py and problems.py (see
code_digest). A build whose models and staged schema did not change (a new export of the same study) then neither
parses nor compiles; a compile that fails is never cached, so its errors are reported every time. A model taken
from the cache is qualified again only if its qualified SELECT is asked for (lineage not in its own cache).
Entries are written atomically; a damaged one is recomputed.

Where the `src` schema comes from: in a build, from the build file just staged (`compile_models`); for
`warehouse compile`, from the newest complete build file under DIR/builds or DIR/unblinded/builds, else from the
published DIR/warehouse.duckdb (see `find_source_database`). Without any build there is nothing to compile
against: run `warehouse build` once (the demo build takes seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.schema import MappingSchema

from warehouse.transform.models import (
    Model,
    ModelError,
    discover_models,
    read_json_cache,
    take_model_ast,
    write_json_cache,
)
from warehouse.transform.order import execution_order, resolve_dependency
from warehouse.transform.problems import (
    Problem,
    binding_problems,
    header_problems,
    qualify_problem,
)

DIALECT = "duckdb"
SourceSchema = dict[str, dict[str, str]]  # src table -> column -> DuckDB type, in column order


class CompileError(ModelError):
    """One or more models do not compile; `problems` has each with its file, line and column.

    The message's first line is the first problem itself (`file:line:column: message`, "(and N more)" when
    there are others), because a caller that shows one line (the CLI's error line, a build record's reason) must
    still show something a person can act on; the lines after it list every problem, the first included."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = str(problems[0]) if problems else "the SQL models do not compile"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        listed = "".join(f"\n  {p}" for p in problems)
        super().__init__(f"{first}{more}{listed}")


class CompiledModel:
    """One compiled model: its output columns (as DuckDB names them) with their DuckDB types, and its qualified
    SELECT (`expression`: tables as schema.table, columns as table.column, stars expanded). A model taken from
    the compile cache is qualified again only when `expression` is first read (lineage not in its cache)."""

    def __init__(self, model: Model, columns: dict[str, str], expression: exp.Query | None = None,
                 qualify_later: Callable[[], exp.Query] | None = None):
        self.model = model
        self.columns = columns
        self._expression = expression
        self._qualify_later = qualify_later

    @property
    def expression(self) -> exp.Query:
        if self._expression is None:
            if self._qualify_later is None:
                raise ModelError(f"{self.model.path}: no qualified SELECT kept for this model")
            self._expression = self._qualify_later()
            self._qualify_later = None
        return self._expression

    def column_name(self, name: str) -> str | None:
        """The output column's own spelling for a case-insensitive name."""
        return next((c for c in self.columns if c.lower() == name.lower()), None)


@dataclass
class Compiled:
    models: dict[str, Model]
    order: list[str]
    sources: SourceSchema
    compiled: dict[str, CompiledModel] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False  # True: read from the persistent compile cache (see compile_model_set)

    def ordered_models(self) -> list[Model]:
        return [self.models[name] for name in self.order]

    def columns_of(self, schema: str, table: str) -> dict[str, str]:
        if schema == "src":
            return self.sources.get(table, {})
        compiled = self.compiled.get(table)
        return compiled.columns if compiled and compiled.model.schema == schema else {}


# -- the src schema ---------------------------------------------------------------------------------------


def read_source_schema(con: duckdb.DuckDBPyConnection) -> SourceSchema:
    """Column names and DuckDB types of every `src` table, in column order."""
    rows = con.sql(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'src' order by table_name, ordinal_position"
    ).fetchall()
    schema: SourceSchema = {}
    for table, column, dtype in rows:
        schema.setdefault(table.lower(), {})[column] = dtype
    return schema


def source_schema_of(database: Path) -> SourceSchema:
    with duckdb.connect(str(database), read_only=True) as con:
        schema = read_source_schema(con)
    if not schema:
        raise ModelError(f"{database}: has no `src` tables to compile against")
    return schema


def find_source_database(data_dir: Path, unblinded: bool | None = None) -> Path:
    """The database whose `src` schema `warehouse compile` checks against: the newest complete build file, else
    the published warehouse. Partial files of running builds are never opened. `unblinded`: None looks in both
    roots (a schema holds no data), False only in DIR, True only in DIR/unblinded."""
    roots = {None: [data_dir, data_dir / "unblinded"], False: [data_dir], True: [data_dir / "unblinded"]}[unblinded]
    candidates = [p for root in roots if (root / "builds").is_dir() for p in (root / "builds").glob("*.duckdb")]
    if candidates:
        return max(candidates, key=lambda p: (p.stat().st_mtime, p.name))
    for root in roots:
        if (root / "warehouse.duckdb").is_file():
            return root / "warehouse.duckdb"
    raise FileNotFoundError(
        f"no build under {data_dir} to read the staged (`src`) schema from; run `warehouse build "
        f"--data-dir {data_dir}` once"
    )


# -- one model ------------------------------------------------------------------------------------------------


def resolve_tables(ast: exp.Query, models: dict[str, Model], sources: set[str],
                   tables: list[exp.Table] | None = None) -> None:
    """Give every table the query reads the schema the search path gives it (in place; CTE names untouched).
    `tables`: those tables, when already found (see models.take_model_ast); else found by scope traversal."""
    if tables is None:
        tables = [source for scope in traverse_scope(ast) for source in scope.sources.values()
                  if isinstance(source, exp.Table)]
    for source in tables:
        if source.name:
            name = source.name.lower()
            reference = f"{source.db.lower()}.{name}" if source.db else name
            target = resolve_dependency(reference, models, sources)
            if target is None:
                continue  # reported by execution_order already
            schema = "src" if target == "" else models[target].schema
            source.set("db", exp.to_identifier(schema))
            source.set("catalog", None)


def infer_output(mem: duckdb.DuckDBPyConnection, model: Model) -> dict[str, str]:
    """Run the model over empty inputs (the upstream stand-ins already in `mem`) and read its column types."""
    mem.execute(f"create or replace table {model.relation} as select * from (\n{model.sql}\n) limit 0")
    # the table's relation: the same names and type strings as DESCRIBE and duckdb_columns(), in column order,
    # without running another statement (each costs DuckDB ~0.3 ms whatever it does)
    stand_in = mem.table(model.relation)
    return {name: str(dtype) for name, dtype in zip(stand_in.columns, stand_in.types)}


def qualify_model(ast: exp.Query, schema: MappingSchema) -> exp.Query:
    return qualify(
        ast,
        dialect=DIALECT,
        schema=schema,
        validate_qualify_columns=False,
        allow_partial_qualification=True,  # a known table's unknown column: reported by unresolved_columns
        quote_identifiers=False,
        identify=False,
    )


def compile_one(
    model: Model,
    models: dict[str, Model],
    source_names: set[str],
    schema: MappingSchema,
    mem: duckdb.DuckDBPyConnection,
) -> tuple[CompiledModel | None, list[Problem], list[str]]:
    ast, tables = take_model_ast(model.sql, model.path)  # the compile owns the tree: qualified in place
    resolve_tables(ast, models, source_names, tables)
    try:
        qualified = qualify_model(ast, schema)
    except SqlglotError as err:
        return None, [qualify_problem(model, ast, err)], []
    # DuckDB binding the model over empty stand-ins is the check of record; only when it fails is the query
    # walked scope by scope, to name the column (file, line, column) rather than quote DuckDB's message. A model
    # that binds costs one statement, not a second scope traversal (~5 ms a model, cold)
    try:
        columns = infer_output(mem, model)
    except duckdb.Error as err:
        return None, binding_problems(model, qualified, schema, err), []
    head_problems, warnings = header_problems(model, columns)
    return CompiledModel(model, columns, qualified), head_problems, warnings


# -- the project ---------------------------------------------------------------------------------------------


def empty_sources(mem: duckdb.DuckDBPyConnection, sources: SourceSchema) -> None:
    for schema in ("src", "staging", "intermediate"):
        mem.execute(f"create schema if not exists {schema}")
    mem.execute("set search_path = 'main,intermediate,staging,src'")
    statements = []
    for table, columns in sources.items():
        body = ", ".join(f'"{name}" {dtype}' for name, dtype in columns.items())
        statements.append(f"create table src.{table} ({body})")
    if statements:
        mem.execute(";\n".join(statements))  # one call for every table


def compile_project(models: dict[str, Model], order: list[str], sources: SourceSchema) -> Compiled:
    """Compile every model in `order` (see the module docstring); raises CompileError listing every problem."""
    started = time.perf_counter()
    result = Compiled(models, order, sources)
    schema = MappingSchema({"src": sources}, dialect=DIALECT)
    problems: list[Problem] = []
    failed: dict[str, str] = {}
    source_names = set(sources)
    with duckdb.connect() as mem:
        empty_sources(mem, sources)
        for name in order:
            model = models[name]
            stopped = sorted(p for p in model.upstream if p in failed)
            if stopped:
                failed[name] = failed[stopped[0]]
                continue
            compiled, found, warnings = compile_one(model, models, source_names, schema, mem)
            problems += found
            result.warnings += warnings
            if compiled is None or found:
                failed[name] = name
                continue
            result.compiled[name] = compiled
            schema.add_table(f"{model.schema}.{model.name}", compiled.columns, dialect=DIALECT)
    not_compiled = [f"{n} (after {cause})" for n, cause in failed.items() if cause != n]
    if not_compiled:
        problems.append(Problem(Path("not compiled"), 0, 0, f"upstream model failed: {', '.join(not_compiled)}"))
    result.seconds["compile"] = time.perf_counter() - started
    if problems:
        raise CompileError(problems)
    return result


_LAST: dict[str, Compiled] = {}
COMPILE_CACHE_VERSION = "compile-v1"


_CODE_DIGEST: list[bytes] = []


def code_digest() -> bytes:
    """A hash of the source of this module and of the modules the compile's outcome depends on (models: the
    headers and the tables read; order: resolving and ordering; problems: the checks and their messages): a change
    of the checks themselves must not be answered from a cache written by the old code."""
    if not _CODE_DIGEST:
        import hashlib

        from warehouse.transform import models, order, problems

        digest = hashlib.sha256()
        for module_file in (__file__, models.__file__, order.__file__, problems.__file__):
            digest.update(Path(module_file).read_bytes())
        _CODE_DIGEST.append(digest.digest())
    return _CODE_DIGEST[0]


def compile_cache_key(models: dict[str, Model], sources: SourceSchema) -> str:
    """What a compile's outcome depends on: every model's file, layer and SQL (the header included), the `src`
    schema, and the versions of sqlglot (qualification) and DuckDB (the output types)."""
    import hashlib
    import json

    import sqlglot

    digest = hashlib.sha256(
        f"{COMPILE_CACHE_VERSION} sqlglot {sqlglot.__version__} duckdb {duckdb.__version__}\n".encode())
    digest.update(code_digest())
    for name in sorted(models):
        model = models[name]
        digest.update(f"{name}\n{model.path}\n{model.layer}\n{len(model.sql)}\n{model.sql}\n".encode())
    digest.update(json.dumps(sorted((t, list(c.items())) for t, c in sources.items())).encode())
    return digest.hexdigest()[:32]


def compiled_from_cache(entry: dict, models: dict[str, Model], order: list[str], sources: SourceSchema) -> Compiled:
    """A Compiled rebuilt from a cache entry; each model's qualified SELECT is made again only when asked for."""
    result = Compiled(models, order, sources, warnings=list(entry["warnings"]), from_cache=True)
    holder: dict[str, MappingSchema] = {}

    def full_schema() -> MappingSchema:  # src + every model's output columns, built once, on first need
        if "schema" not in holder:
            mapping: dict[str, dict[str, dict[str, str]]] = {"src": sources}
            for name, unit in result.compiled.items():
                mapping.setdefault(unit.model.schema, {})[name] = unit.columns
            holder["schema"] = MappingSchema(mapping, dialect=DIALECT)
        return holder["schema"]

    def later(model: Model) -> Callable[[], exp.Query]:
        def qualify_now() -> exp.Query:
            ast, tables = take_model_ast(model.sql, model.path)
            resolve_tables(ast, models, set(sources), tables)
            return qualify_model(ast, full_schema())
        return qualify_now

    for name in order:
        result.compiled[name] = CompiledModel(models[name], dict(entry["columns"][name]),
                                              qualify_later=later(models[name]))
    return result


def compile_model_set(models: dict[str, Model] | list[Model], sources: SourceSchema,
                      cache_dir: Path | None = None) -> Compiled:
    """Order and compile the given models against a `src` schema.

    The last results are kept in memory by the models' SQL and the schema, so that lineage and the catalog
    written after a build reuse the compile that gated it. `cache_dir`: also keep the outcome of a compile that
    passed (every model's output columns and types, the warnings) in `cache_dir/compile-<key>.json`, keyed by
    compile_cache_key, so that a later build with the same models and `src` schema does not compile again (the
    same inputs give the same result; a compile that fails is never cached, so its errors are always reported)."""
    started = time.perf_counter()
    models = {m.name: m for m in models} if isinstance(models, list) else dict(models)
    order = execution_order(models, set(sources))
    ordered = time.perf_counter()
    key = compile_cache_key(models, sources)
    path = Path(cache_dir) / f"{COMPILE_CACHE_VERSION}-{key}.json" if cache_dir is not None else None
    cached = _LAST.get(key)
    if cached is None:
        entry = read_json_cache(path) if path is not None else None
        if entry is not None and set(entry.get("columns", {})) == set(order):
            cached = compiled_from_cache(entry, models, order, sources)
        else:
            cached = compile_project(models, order, sources)
        while len(_LAST) >= 8:
            _LAST.pop(next(iter(_LAST)))
        _LAST[key] = cached
    else:
        cached.models, cached.order = models, order
        for name, compiled in cached.compiled.items():
            compiled.model = models[name]
    if path is not None and not cached.from_cache and not path.is_file():
        write_json_cache(path, {
            "columns": {name: list(unit.columns.items()) for name, unit in cached.compiled.items()},
            "warnings": cached.warnings,
        })
    for name, unit in cached.compiled.items():  # the runner documents each table from these (no DESCRIBE)
        models[name].output_columns = list(unit.columns)
    cached.seconds["graph"] = ordered - started
    return cached


def build_cache_dir(build_file: Path) -> Path | None:
    """DIR/cache for a build file DIR/builds/<id>.duckdb (DIR/unblinded/cache for an unblinded one), where the
    lineage cache is too; None for a database elsewhere (a published or copied file: nothing is cached)."""
    return build_file.parent.parent / "cache" if build_file.parent.name == "builds" else None


def compile_sql(sources: SourceSchema, sql_root: Path | None = None, cache_dir: Path | None = None) -> Compiled:
    """Discover the models under `sql_root` (default: the project's sql/), order and compile them. `cache_dir`:
    the parse and compile caches (see discover_models and compile_model_set)."""
    from warehouse.resources import sql_dir

    started = time.perf_counter()
    models = discover_models(sql_root or sql_dir(), cache_dir)
    parsed = time.perf_counter() - started
    compiled = compile_model_set(models, sources, cache_dir)
    compiled.seconds["parse"] = parsed
    return compiled


def compile_models(build_file: Path, sql_root: Path | None = None) -> list[Model]:
    """The models in run order, every one compiled against the staged `src` schema of `build_file`.

    Raises CompileError (a ModelError) naming file, line and column before any model is written. The build file
    is opened read-only and closed again. A build file under DIR/builds uses the parse and compile caches in
    DIR/cache (see build_cache_dir): a build whose models and `src` schema are those of an earlier one neither
    parses nor compiles them again.
    """
    return compile_sql(source_schema_of(build_file), sql_root, build_cache_dir(build_file)).ordered_models()


def compile_database(database: Path, sql_root: Path | None = None) -> Compiled:
    """Compile the project against the `src` schema of any warehouse or build file."""
    return compile_sql(source_schema_of(database), sql_root)
