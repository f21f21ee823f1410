"""Column-level lineage: where every column of every model comes from, back to the raw eCRF form and item.

Per model, sqlglot's `lineage.lineage` walks the compiled (qualified, stars expanded) SELECT through its CTEs and
sub-queries to the tables it reads, giving each output column's direct inputs: columns of upstream models or of
staged forms (`src.<form>.<column>`). Chaining these per-model steps gives a column's whole lineage.

A staged form is the raw form of the same name (see docs/contracts.md, staging contract), and a staged column
is the raw item of the same name, except the columns staging derives: `<item>_hrs` (study time), `<item>_decod`
(decoded label) and `<item>_base` (NE as base) come from `<item>`. `build_info`, `randomisation_list`,
`study_parameters` and `typing_failures` are written by the build, not read from the eCRF: they keep raw_form
and raw_item null.

The lineage of every mart column (schema `main`) is stored in the warehouse as `main.lineage`, one row per step:

| column | meaning |
|---|---|
| table_name, column_name | the mart column this row explains (`adeff`, `AVAL`) |
| depth | 1 for the mart's own step, 2 for the step of the model it reads, ... |
| model, model_column | the model (table) whose SQL makes this step and the column it makes |
| expression | that model's derivations on the way (non-trivial SELECT expressions), for reading |
| upstream_table, upstream_column | what the step reads (`intermediate.int_pe_response`, `pe_response`); null when the column is a constant |
| raw_form, raw_item | set where upstream_table is an eCRF form in `src`: the raw form and item |

The analysis result tables (`ar_*`, written by `warehouse.analyse` in Python after validation, not SQL models)
are explained by what they read: every column of an `ar_*` table has a depth-1 step per mart column its
computation reads (`ANALYSIS_READS`), then that mart column's own lineage one level deeper. The build adds
these rows to `main.lineage` once the analysis tables exist (`extend_lineage_with_analysis`, called by
`catalog.refresh_catalog`). The build's other tables (findings, validation results, the change report, the
catalog and the lineage itself) are not derived from the marts: asking for their lineage says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from sqlglot import exp
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.scope import build_scope
from sqlglot.schema import MappingSchema

from warehouse.transform.compile import DIALECT, Compiled, compile_model_set, read_source_schema
from warehouse.transform.models import Model, ModelError
from warehouse.transform.runner import quote_literal, write_commented_table

NON_FORM_SOURCES = {
    "build_info": "build metadata",
    "randomisation_list": "restricted randomisation list",
    "study_parameters": "study configuration",
    "typing_failures": "staging typing failures",
}
DERIVED_SUFFIXES = ("_hrs", "_decod", "_base", "_dtc")  # staging columns made from one raw item
# What each analysis result table's computation reads (warehouse/analysis/results.py): mart -> its columns.
ANALYSIS_READS: dict[str, dict[str, tuple[str, ...]]] = {
    "ar_baseline": {"adsl": ("ITTFL", "TRT01P", "SAFFL", "DTHFL", "SEX", "AGE", "WEIGHTBL", "SAPS2BL", "SOFABL",
                             "LACTBL", "NEBL")},
    "ar_primary": {"adeff": ("PARAMCD", "AVISIT", "TRT01P", "AVAL", "BASE")},
    "ar_mortality": {"adtte": ("TRT01P", "DTHD3FL", "DTHD28FL", "DTHD90FL")},
    "ar_secondary": {"adeff": ("PARAMCD", "PARAM", "AVISIT", "TRT01P", "AVAL")},
    "ar_teae": {"adae": ("USUBJID", "TRT01A", "SAFFL", "TRTEMFL", "AESER", "AESIFL", "AESDTH", "AEBODSYS",
                         "AEDECOD"),
                "adsl": ("SAFFL", "TRT01A")},
    "ar_km": {"adtte": ("TRT01P", "AVAL", "CNSR")},
}
ANALYSIS_STEP = "computed in Python by the build's analysis step (warehouse.analyse) from {reads}"
# Tables the build writes that are not derived from the marts: what they are, for a lineage question about them.
BUILD_TABLE_ORIGINS = {
    "findings": "the validation step (one row per failing row and field)",
    "findings_history": "the validation step (every finding ever seen, across builds)",
    "validation_results": "the validation step (one row per expectation run)",
    "export_changes": "the change report of the raw export against the previous snapshot",
    "catalog": "the catalog step (DuckDB's own table and column list and comments)",
    "lineage": "the lineage step (sqlglot over the models' SQL)",
}
LINEAGE_SCHEMA = {
    "table_name": pl.Utf8,
    "column_name": pl.Utf8,
    "depth": pl.Int32,
    "model": pl.Utf8,
    "model_column": pl.Utf8,
    "expression": pl.Utf8,
    "upstream_table": pl.Utf8,
    "upstream_column": pl.Utf8,
    "raw_form": pl.Utf8,
    "raw_item": pl.Utf8,
}
LINEAGE_COLUMNS = {
    "table_name": "The mart (or analysis result table, ar_*) this row explains",
    "column_name": "The column this row explains",
    "depth": "Step number back from the mart: 1 is the mart's own SQL",
    "model": "The model (table) whose SQL makes this step; an ar_* table: the build's analysis step (Python)",
    "model_column": "The column that model makes",
    "expression": "The model's derivations on the way (non-trivial SELECT expressions)",
    "upstream_table": "What the step reads, schema.table (null: the column is a constant)",
    "upstream_column": "The column the step reads",
    "raw_form": "The raw eCRF form, where the step reads a staged form",
    "raw_item": "The raw eCRF item (derived staged columns _hrs, _decod, _base map to their item)",
}
LINEAGE_COMMENT = (
    "Column lineage of every mart and analysis result (ar_*) column, one row per step back to the raw eCRF form "
    "and item: table_name."
    "column_name is explained; model.model_column is made by that model's SQL from upstream_table.upstream_column "
    "(null: a constant); raw_form/raw_item where the step reads a staged eCRF form."
)


@dataclass(frozen=True)
class Step:
    """One model column's direct input: `upstream_table` is `schema.table` (None for a constant)."""

    model: str
    relation: str
    column: str
    upstream_table: str | None
    upstream_column: str | None
    expression: str


def raw_item(form: str, column: str, form_columns: dict[str, str]) -> str:
    """The raw eCRF item a staged column comes from: itself, or for a derived `<item>_hrs|_decod|_base`, <item>."""
    lowered = {c.lower(): c for c in form_columns}
    name = column
    changed = True
    while changed:
        changed = False
        for suffix in DERIVED_SUFFIXES:
            if name.lower().endswith(suffix) and name.lower()[: -len(suffix)] in lowered:
                name = lowered[name.lower()[: -len(suffix)]]
                changed = True
    return name


def node_prefix(node: Node) -> tuple[str, str]:
    """The column's name and what it reads from: the first two parts of the sibling order (``in_key_order``)."""
    source = node.source.sql(dialect=DIALECT, comments=False) if isinstance(node.source, exp.Table) else ""
    return node.name, source


def in_key_order(nodes: list[Node]) -> list[Node]:
    """A total order on sibling lineage nodes that is the same in every process: the column's name, what it reads
    from, and its expression's text. The text is written only for siblings that tie on name and source: printing
    every node's expression was most of the lineage's time (7,700 ``sql()`` calls, each copying its expression, in
    a demo build)."""
    prefixes = [node_prefix(n) for n in nodes]
    ties = {p for p in prefixes if prefixes.count(p) > 1}
    keyed = [(p, n.expression.sql(dialect=DIALECT, comments=False) if p in ties else "", n)
             for p, n in zip(prefixes, nodes)]
    return [n for _, _, n in sorted(keyed, key=lambda k: (k[0], k[1]))]


def ordered_walk(root: Node) -> Iterator[Node]:
    """`Node.walk` (pre-order, each node once) with every node's inputs in `in_key_order`.

    sqlglot builds a node's `downstream` by iterating a set of column expressions, whose order follows Python's
    string hash seed: walking it as built joined `expression` texts (and listed inputs) in a different order in
    every process, so `main.lineage`, and the lock manifests of two builds of one export, differed."""
    visited: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        yield node
        stack.extend(reversed(in_key_order(node.downstream)))


def derivations(root: Node) -> str:
    """The non-trivial SELECT expressions a column passes through inside one model (renames left out), in the
    order of `ordered_walk`: the same text in every build."""
    seen: list[str] = []
    for node in ordered_walk(root):
        expression = node.expression
        if isinstance(expression, exp.Alias) and not isinstance(expression.this, exp.Column):
            text = expression.this.sql(dialect=DIALECT, comments=False)
            if text not in seen:
                seen.append(text)
    joined = " ; ".join(seen)
    return joined if len(joined) <= 400 else joined[:397] + "..."


def model_steps(compiled: Compiled, name: str, schema: MappingSchema) -> list[Step]:
    """Every output column of one model with its direct inputs, by sqlglot lineage over the compiled SELECT."""
    unit = compiled.compiled[name]
    expression = unit.expression.copy()
    # trim_selects=False: sqlglot would otherwise copy the whole SELECT at every node (8x the time here), for a
    # node label this module never reads
    nodes = lineage(None, expression, schema, dialect=DIALECT, scope=build_scope(expression), copy=False,
                    trim_selects=False)
    steps: list[Step] = []
    for lowered, root in nodes.items():
        column = unit.column_name(lowered) or lowered
        text = derivations(root)
        inputs: list[tuple[str, str]] = []
        for node in ordered_walk(root):
            if node.downstream or not isinstance(node.source, exp.Table) or not node.source.db:
                continue
            table = node.source
            relation = f"{table.db}.{table.name}".lower()
            upstream = node.name.rpartition(".")[2].strip('"')
            real = {c.lower(): c for c in compiled.columns_of(table.db.lower(), table.name.lower())}
            pair = (relation, real.get(upstream.lower(), upstream))
            if pair not in inputs:
                inputs.append(pair)
        if not inputs:
            steps.append(Step(name, unit.model.relation, column, None, None, text))
        steps += [Step(name, unit.model.relation, column, rel, col, text) for rel, col in inputs]
    return steps


def lineage_schema(compiled: Compiled) -> MappingSchema:
    mapping: dict[str, dict[str, dict[str, str]]] = {"src": compiled.sources}
    for name, unit in compiled.compiled.items():
        mapping.setdefault(unit.model.schema, {})[name] = unit.columns
    return MappingSchema(mapping, dialect=DIALECT)


class Lineage:
    """The per-model steps of a compiled project, chained on demand."""

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self._schema = lineage_schema(compiled)
        self._steps: dict[str, dict[str, list[Step]]] = {}

    def steps_of(self, model: str) -> dict[str, list[Step]]:
        if model not in self._steps:
            by_column: dict[str, list[Step]] = {}
            for step in model_steps(self.compiled, model, self._schema):
                by_column.setdefault(step.column.lower(), []).append(step)
            self._steps[model] = by_column
        return self._steps[model]

    def resolve(self, reference: str) -> tuple[str, str]:
        """`table.column` (or `schema.table.column`) -> (model, column as the model spells it)."""
        parts = reference.split(".")
        if len(parts) < 2:
            raise ModelError(f"lineage needs <table>.<column>, not '{reference}'")
        table, column = parts[-2].lower(), parts[-1]
        if table in BUILD_TABLE_ORIGINS:
            raise ModelError(f"{table} is written by {BUILD_TABLE_ORIGINS[table]}, not derived from the marts: it has "
                             "no column lineage (the catalog describes it: `warehouse docs`)")
        if table not in self.compiled.compiled:
            raise ModelError(
                f"no table named '{table}' has a lineage: not a model ({', '.join(self.compiled.order)}) nor an "
                f"analysis result table ({', '.join(ANALYSIS_READS)})")
        real = self.compiled.compiled[table].column_name(column)
        if real is None:
            columns = ", ".join(self.compiled.compiled[table].columns)
            raise ModelError(f"{table} has no column '{column}' (columns: {columns})")
        return table, real

    def chain(self, table: str, column: str) -> list[dict]:
        """The lineage rows (see the module docstring) of one model column, breadth first, each step once; for an
        analysis result table's column, the marts' columns it is computed from, then theirs."""
        if table.lower() in ANALYSIS_READS:
            real = analysis_column(table.lower(), column)
            return analysis_lineage(table.lower(), real, lambda mart, col: self.chain(mart, col))
        table, column = self.resolve(f"{table}.{column}")
        rows: list[dict] = []
        seen: set[tuple[str, str]] = set()
        frontier = [(table, column)]
        depth = 0
        while frontier:
            depth += 1
            following: list[tuple[str, str]] = []
            for model, model_column in frontier:
                if (model, model_column.lower()) in seen:
                    continue
                seen.add((model, model_column.lower()))
                for step in self.steps_of(model).get(model_column.lower(), []):
                    form = item = None
                    if step.upstream_table and step.upstream_table.startswith("src."):
                        source = step.upstream_table[4:]
                        if source not in NON_FORM_SOURCES:
                            form = source
                            item = raw_item(source, step.upstream_column or "", self.compiled.sources.get(source, {}))
                    elif step.upstream_table:
                        following.append((step.upstream_table.split(".")[1], step.upstream_column or ""))
                    rows.append(
                        {
                            "table_name": table,
                            "column_name": column,
                            "depth": depth,
                            "model": model,
                            "model_column": step.column,
                            "expression": step.expression,
                            "upstream_table": step.upstream_table,
                            "upstream_column": step.upstream_column,
                            "raw_form": form,
                            "raw_item": item,
                        }
                    )
            frontier = following
        return rows

    def mart_lineage(self) -> pl.DataFrame:
        """The lineage of every column of every mart (models in `main`)."""
        rows = [
            row
            for name in self.compiled.order
            if name in self.compiled.compiled and self.compiled.models[name].schema == "main"
            for column in self.compiled.compiled[name].columns
            for row in self.chain(name, column)
        ]
        return pl.DataFrame(rows, schema=LINEAGE_SCHEMA)


def analysis_column(table: str, column: str) -> str:
    """An analysis result table's column as the analysis spells it; ModelError naming the columns it can have."""
    from warehouse.analyse import RESULT_COLUMNS  # every column an analysis table can have, described

    real = next((c for c in RESULT_COLUMNS if c.lower() == column.lower()), None)
    if real is None:
        raise ModelError(f"{table} has no column '{column}' (analysis result columns: {', '.join(RESULT_COLUMNS)})")
    return real


def analysis_lineage(table: str, column: str, mart_chain) -> list[dict]:
    """The lineage rows of an analysis result column: a depth-1 step per mart column the table's computation
    reads (`ANALYSIS_READS`), then each mart column's rows (`mart_chain(mart, column)`) one level deeper, each
    step once (at its shallowest depth)."""
    reads = ANALYSIS_READS[table]
    expression = ANALYSIS_STEP.format(reads=", ".join(f"main.{m}" for m in reads))
    rows = [
        {"table_name": table, "column_name": column, "depth": 1, "model": table, "model_column": column,
         "expression": expression, "upstream_table": f"main.{mart}", "upstream_column": mart_column,
         "raw_form": None, "raw_item": None}
        for mart, columns in reads.items() for mart_column in columns
    ]
    seen: set[tuple] = set()
    for mart, columns in reads.items():
        for mart_column in columns:
            for row in mart_chain(mart, mart_column):
                key = (row["model"], row["model_column"].lower(), row["upstream_table"], row["upstream_column"])
                if key in seen:
                    continue
                seen.add(key)
                rows.append(row | {"table_name": table, "column_name": column, "depth": row["depth"] + 1})
    return rows


def extend_lineage_with_analysis(con: duckdb.DuckDBPyConnection) -> int:
    """Add the lineage of every column of the analysis result tables present in the open build to its
    `main.lineage` (from the marts' stored rows); returns the rows added. Run again, it replaces its rows."""
    present = {r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'main' and database_name = current_database()"
    ).fetchall()}
    if "lineage" not in present:
        return 0
    tables = [t for t in ANALYSIS_READS if t in present]
    marts = sorted({m for t in tables for m in ANALYSIS_READS[t]})
    if not tables:
        return 0
    stored = con.sql(
        "select * from main.lineage where table_name in ({}) order by depth, model, model_column, upstream_table, "
        "upstream_column".format(", ".join(quote_literal(m) for m in marts))
    ).pl()
    by_column: dict[tuple[str, str], list[dict]] = {}
    for row in stored.iter_rows(named=True):
        by_column.setdefault((row["table_name"].lower(), row["column_name"].lower()), []).append(row)
    rows: list[dict] = []
    for table in tables:
        columns = [r[0] for r in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'main' and table_name = ? "
            "and database_name = current_database() order by column_index", [table]).fetchall()]
        for column in columns:
            rows += analysis_lineage(table, column, lambda mart, col: by_column.get((mart.lower(), col.lower()), []))
    frame = pl.DataFrame(rows, schema=LINEAGE_SCHEMA)
    con.execute("delete from main.lineage where table_name in ({})".format(
        ", ".join(quote_literal(t) for t in ANALYSIS_READS)))
    con.register("_analysis_lineage", frame.to_arrow())
    con.execute("insert into main.lineage by name select * from _analysis_lineage")
    con.unregister("_analysis_lineage")
    return frame.height


def project_lineage(con: duckdb.DuckDBPyConnection, models: list[Model] | dict[str, Model]) -> Lineage:
    return Lineage(compile_model_set(models, read_source_schema(con)))


def lineage_cache_key(compiled: Compiled) -> str:
    """What the mart lineage depends on: every model's SQL, the `src` schema and the sqlglot version."""
    import hashlib
    import json

    import sqlglot

    digest = hashlib.sha256(f"lineage-v2 sqlglot {sqlglot.__version__}\n".encode())
    for name in sorted(compiled.order):  # not the run order: keys must not depend on how ties were broken
        digest.update(f"{name}\n{compiled.models[name].sql}\n".encode())
    digest.update(json.dumps(compiled.sources, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def cached_mart_lineage(lineage_of: Lineage, cache_dir: Path | None) -> pl.DataFrame:
    """`mart_lineage`, read from `cache_dir` when the models and the src schema are those of an earlier build:
    the result never changes while they do not (~0.4 s for this project's 32 models, ~0.1 s to read)."""
    if cache_dir is None:
        return lineage_of.mart_lineage()
    path = Path(cache_dir) / f"lineage-{lineage_cache_key(lineage_of.compiled)}.parquet"
    if path.is_file():
        try:
            return pl.read_parquet(path)
        except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
            path.unlink(missing_ok=True)
    frame = lineage_of.mart_lineage()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(frame)}.tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)
    return frame


def write_lineage(con: duckdb.DuckDBPyConnection, models: list[Model] | dict[str, Model],
                  cache_dir: Path | None = None) -> pl.DataFrame:
    """Store the lineage of every mart column as `main.lineage` in the open build database; returns it.

    Call after the models ran (the compile is the same as the one that gated the build, taken from cache).
    `cache_dir`: keep the computed lineage there, keyed by the models' SQL and the src schema."""
    frame = cached_mart_lineage(project_lineage(con, models), cache_dir)
    write_commented_table(con, "lineage", frame, LINEAGE_COMMENT, LINEAGE_COLUMNS)
    return frame


def format_chain(rows: list[dict]) -> str:
    """A column's lineage as an indented tree, each model column expanded once."""
    if not rows:
        return ""
    table, column = rows[0]["table_name"], rows[0]["column_name"]
    children: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        children.setdefault((row["model"], row["model_column"].lower()), []).append(row)
    lines = [f"{table}.{column}"]
    expanded: set[tuple[str, str]] = set()

    def walk(model: str, model_column: str, indent: int) -> None:
        key = (model, model_column.lower())
        if key in expanded:
            return
        expanded.add(key)
        steps = children.get(key, [])
        if steps and steps[0]["expression"]:
            lines.append(f"{'  ' * indent}= {steps[0]['expression']}   [{model}]")
        for row in steps:
            pad = "  " * indent
            if row["upstream_table"] is None:
                lines.append(f"{pad}<- (constant)")
                continue
            label = f"{row['upstream_table']}.{row['upstream_column']}"
            if row["raw_form"]:
                lines.append(f"{pad}<- {label}   raw eCRF: form {row['raw_form']}, item {row['raw_item']}")
            elif row["upstream_table"].startswith("src."):
                lines.append(f"{pad}<- {label}   ({NON_FORM_SOURCES.get(row['upstream_table'][4:], 'staged')})")
            else:
                upstream = row["upstream_table"].split(".")[1]
                again = (upstream, row["upstream_column"].lower()) in expanded
                lines.append(f"{pad}<- {label}{'   (see above)' if again else ''}")
                walk(upstream, row["upstream_column"], indent + 1)

    walk(table, column, 1)
    return "\n".join(lines)


def stored_lineage(database: Path, table: str, column: str) -> list[dict] | None:
    """The lineage stored in a warehouse for a mart column, None when the warehouse has no such rows."""
    with duckdb.connect(str(database), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'main' and table_name = 'lineage'"
        ).fetchall()[0][0]
        if not exists:
            return None
        frame = con.sql(
            "select * from main.lineage where lower(table_name) = lower(?) and lower(column_name) = lower(?) "
            "order by depth, model, model_column, upstream_table, upstream_column",
            params=[table, column],
        ).pl()
    return frame.to_dicts() or None
