"""Transform models: the SQL model files under `sql/<layer>/`, their headers, and the tables each one reads.

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

The order the models run in and the selection syntax are in `order`; running them is `runner`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

LAYER_SCHEMAS = {"staging": "staging", "intermediate": "intermediate", "marts": "main"}
LAYER_ORDER = ["staging", "intermediate", "marts"]


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
