"""Unit tests for SQL models, in the style of dbt unit tests: given small input tables, expect an output table.

In Python (any pytest file):

    from warehouse.transform.testing import run_model_on, assert_rows

    rows = run_model_on("int_vasopressor_segments", {
        "stg_vasopressors": [
            {"subject_id": "S1", "repeat_instance": 1, "drug": "Norepinephrine", "is_ne": True,
             "chgdtm_hrs": 0.0, "ne_rate_base": 0.2},
        ],
    })
    assert_rows(rows, [{"subject_id": "S1", "segment": 1, "start_hrs": 0.0, "end_hrs": None, "rate": 0.2}])

or as YAML beside the model, `sql/<layer>/<model>.yml` (run by `warehouse test`; the demo's also by
tests/models/test_sql_unit.py):

    model: int_vasopressor_segments
    name: the last change is open-ended
    given:
      stg_vasopressors:
        - {subject_id: S1, repeat_instance: 1, drug: Norepinephrine, is_ne: true, chgdtm_hrs: 0, ne_rate_base: 0.2}
    expect:
      rows:
        - {subject_id: S1, segment: 1, end_hrs: null, rate: 0.2}

How it runs: a throwaway in-memory DuckDB gets every `src` table and every model the target reads (directly or
not) as an empty table with its real column types (the `src` types from the project's schema snapshot,
`sql/src_schema.json`, see warehouse.transform.cases; the models' types from compiling them). The given tables are
filled with the given rows: give only the columns the test is about, the others are null. A given key is a model
(`stg_x`, `int_y`) or a staged form (`src.x`, or `x` when no model has that name). Models between the given tables
and the target are run too, so a test may start from `src` forms or from the target's direct inputs. The target
is then run exactly as the build runs it, and its rows come back as dicts.

Comparing (`assert_rows`): each expected row is compared on the columns it names; rows as a multiset unless
`ordered`; floats within `tolerance`; an expected ISO date/time string matches a date/datetime value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import duckdb

from warehouse.transform.compile import Compiled, SourceSchema, compile_model_set
from warehouse.transform.models import Model, ModelError, discover_models
from warehouse.transform.order import ancestors, resolve_dependency
from warehouse.transform.runner import prepare_schemas, run_model

SRC_SCHEMA_FILE = "src_schema.json"  # in the project's sql/ folder: the `src` types unit cases are typed with
Rows = list[dict[str, Any]]


class CaseError(ModelError):
    """A unit case that cannot run as written (an unknown model, table or column, a value of the wrong type, a
    malformed YAML file): bad input to fix in the case, not a model that computes the wrong rows."""


def snapshot_path(project: Path | None = None) -> Path:
    """The project's `src` schema snapshot, `<project>/sql/src_schema.json` (default: the active project)."""
    from warehouse.resources import find_project

    return (project or find_project()) / "sql" / SRC_SCHEMA_FILE


def load_src_schema(path: Path | None = None) -> SourceSchema:
    """The `src` schema snapshot (table -> column -> DuckDB type) that unit tests type their inputs with; default
    the active project's `sql/src_schema.json`."""
    path = path or snapshot_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no src schema snapshot; write one from the project's last build with "
            f"`warehouse test --update-schema`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def dump_src_schema(database: Path) -> str:
    """A build's `src` schema as the snapshot file's text (sorted, one column per line)."""
    from warehouse.transform.compile import source_schema_of

    return json.dumps(source_schema_of(database), indent=1, sort_keys=True) + "\n"


@dataclass
class UnitContext:
    """What every case of one run shares: the project's models (parsed once) and the `src` schema, and each
    target's models compiled once. A target is compiled with its ancestors only, so a model that does not compile
    fails the cases that need it and no others."""

    models: dict[str, Model]
    sources: SourceSchema
    _compiled: dict[str, Compiled] = field(default_factory=dict)
    _whole: Compiled | None | bool = None  # the whole project compiled once; False when it does not compile

    @classmethod
    def of(cls, src_schema: SourceSchema | Path | None = None, sql_root: Path | None = None) -> UnitContext:
        from warehouse.resources import sql_dir

        sources = src_schema if isinstance(src_schema, dict) else load_src_schema(src_schema)
        models = discover_models(sql_root or sql_dir())
        for model in models.values():  # what each reads; an unknown table is left to the compile of its cases
            model.upstream = {t for ref in model.depends_on if (t := resolve_dependency(ref, models, set(sources)))}
        return cls(models, sources)

    def compiled_for(self, name: str) -> Compiled:
        """`name` and every model it reads, compiled (CompileError names file, line and column). The whole project
        is compiled once when it compiles (one compile for every case); else each target with its ancestors."""
        if self._whole is None:
            try:
                self._whole = compile_model_set(self.models, self.sources)
            except ModelError:
                self._whole = False
        if self._whole:
            return self._whole
        if name not in self._compiled:
            needed = ancestors(self.models, name) | {name}
            self._compiled[name] = compile_model_set({n: self.models[n] for n in needed}, self.sources)
        return self._compiled[name]


def _relation_of(key: str, models: dict[str, Model], sources: SourceSchema) -> tuple[str, str]:
    """A given table's key -> ("model" | "src", name)."""
    schema, _, name = key.lower().rpartition(".")
    if schema == "src" or (not schema and name not in models):
        if name not in sources:
            raise CaseError(f"given table '{key}': no model and no staged form of that name")
        return "src", name
    if name not in models:
        raise CaseError(f"given table '{key}': no model of that name")
    return "model", name


def _given_columns(relation: str, columns: dict[str, str], rows: Rows) -> list[str]:
    """The columns the given rows name, in first-seen order; an unknown one is a CaseError with a suggestion."""
    import difflib

    known = {c.lower(): c for c in columns}
    names: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            raise CaseError(f"given {relation}: a row must be a mapping of column: value, not {row!r}")
        for key in row:
            if str(key).lower() not in known:
                close = difflib.get_close_matches(str(key).lower(), list(known), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise CaseError(f"given {relation}: no column '{key}'{hint}; columns: {', '.join(columns)}")
            if known[str(key).lower()] not in names:
                names.append(known[str(key).lower()])
    return names


def _create_typed(con: duckdb.DuckDBPyConnection, relation: str, columns: dict[str, str], rows: Rows | None) -> None:
    body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
    con.execute(f"create or replace table {relation} ({body})")
    if not rows:
        return
    names = _given_columns(relation, columns, rows)
    lowered = [{str(k).lower(): v for k, v in row.items()} for row in rows]
    values = [[row.get(n.lower()) for n in names] for row in lowered]
    quoted = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    try:
        con.executemany(f"insert into {relation} ({quoted}) values ({marks})", values)
    except duckdb.Error as err:
        raise CaseError(f"given {relation}: {str(err).splitlines()[0]}") from None


def run_model_on(
    model_name: str,
    inputs: dict[str, Rows],
    *,
    src_schema: SourceSchema | Path | None = None,
    sql_root: Path | None = None,
    order_by: Iterable[str] | None = None,
    context: UnitContext | None = None,
) -> Rows:
    """Run one model over the given input tables in a throwaway DuckDB and return its rows (see the module
    docstring). `order_by`: sort the returned rows by these columns (default: as the model returns them).
    `context`: the models compiled once for many cases (else from `src_schema` and `sql_root`)."""
    context = context or UnitContext.of(src_schema, sql_root)
    models, sources = context.models, context.sources
    name = model_name.lower()
    if name not in models:
        raise CaseError(f"no model named '{model_name}'")
    compiled = context.compiled_for(name)
    if not isinstance(inputs, dict):
        raise CaseError(f"given: a mapping of table: rows, not {inputs!r}")
    given: dict[tuple[str, str], Rows] = {_relation_of(k, models, sources): v for k, v in inputs.items()}
    needed = ancestors(models, name)
    con = duckdb.connect()
    try:
        prepare_schemas(con)
        for table, columns in sources.items():
            _create_typed(con, f"src.{table}", columns, given.get(("src", table)))
        provided = {f"src.{t}" for (kind, t) in given if kind == "src"}
        for upstream in compiled.order:
            if upstream not in needed:
                continue
            model = models[upstream]
            if ("model", upstream) in given:
                _create_typed(con, model.relation, compiled.compiled[upstream].columns, given[("model", upstream)])
                provided.add(upstream)
            elif provided & ({models[u].name for u in model.upstream} | {
                f"src.{r.rpartition('.')[2]}" for r in model.depends_on if r.rpartition('.')[2] not in models
            }):
                run_model(con, model)  # fed by given tables: run it as the build does
                provided.add(upstream)
            else:
                _create_typed(con, model.relation, compiled.compiled[upstream].columns, None)
        run_model(con, models[name])
        order = f" order by {', '.join(order_by)}" if order_by else ""
        result = con.execute(f"select * from {models[name].relation}{order}")
        columns = [d[0] for d in result.description]
        return [dict(zip(columns, row)) for row in result.fetchall()]
    finally:
        con.close()


# -- comparing -------------------------------------------------------------------------------------------------


def _same(actual: Any, expected: Any, tolerance: float) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) and type(actual) is type(expected)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if isinstance(expected, float) and math.isnan(expected):
            return isinstance(actual, float) and math.isnan(actual)
        return math.isclose(float(actual), float(expected), rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(expected, str) and isinstance(actual, (dt.date, dt.datetime)):
        try:
            parsed = (dt.datetime if isinstance(actual, dt.datetime) else dt.date).fromisoformat(expected)
        except ValueError:
            return False
        return parsed == actual
    if isinstance(expected, dt.datetime) and isinstance(actual, dt.datetime):
        return expected.replace(tzinfo=None) == actual.replace(tzinfo=None)
    return actual == expected


def _text(value: Any) -> str:
    """A value as a diff shows it: Python's repr, but a date or time as ISO text (datetime.datetime(...) is noise)."""
    return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else (
        value.isoformat() if isinstance(value, (dt.date, dt.time)) else repr(value))


def _show(row: dict) -> str:
    return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in row.items()) + "}"


def assert_rows(actual: Rows, expected: Rows, *, ordered: bool = False, tolerance: float = 1e-9) -> None:
    """Assert the model's rows match the expected rows. Each expected row is compared on the columns it names
    (a column it leaves out may hold anything); a model row matches one expected row at most. The message
    lists the missing and the unexpected rows."""
    columns: list[str] = []
    for row in expected:
        columns += [c for c in row if c not in columns]
    lookup = [{k.lower(): v for k, v in row.items()} for row in actual]
    missing_cols = [c for c in columns if actual and c.lower() not in lookup[0]]
    if missing_cols:
        raise AssertionError(f"the model has no column(s) {', '.join(missing_cols)}; it has {', '.join(actual[0])}")
    projected = [{c: row.get(c.lower()) for c in columns} for row in lookup]

    def matches(i: int, e: dict) -> bool:
        return all(_same(projected[i][c], v, tolerance) for c, v in e.items())

    if ordered:
        problems = [
            f"  row {i + 1}: expected {_show(e)}\n         got      {_show(projected[i])}"
            for i, e in enumerate(expected[: len(projected)])
            if not matches(i, e)
        ]
        if len(projected) != len(expected):
            problems.append(f"  {len(projected)} row(s), expected {len(expected)}")
        if problems:
            raise AssertionError("rows differ:\n" + "\n".join(problems))
        return
    unmatched = list(range(len(projected)))
    missing = []
    for e in expected:
        hit = next((i for i in unmatched if matches(i, e)), None)
        if hit is None:
            missing.append(e)
        else:
            unmatched.remove(hit)
    if missing or unmatched:
        lines = [f"rows differ ({len(projected)} row(s), {len(expected)} expected):"]
        lines += [f"  missing:    {_show(e)}" for e in missing]
        lines += [f"  unexpected: {_show(projected[i])}" for i in unmatched]
        lines += _closest(missing, [projected[i] for i in unmatched], tolerance)
        raise AssertionError("\n".join(lines))


def _closest(missing: Rows, unexpected: Rows, tolerance: float) -> list[str]:
    """For each missing row, the unexpected row that agrees with it on most columns (at least one), as
    `  ~ {the agreeing columns}: col expected X, got Y`: which value of which row differs, at a glance."""
    lines = []
    free = list(unexpected)
    for e in missing:
        agreeing = [[c for c, v in e.items() if _same(row.get(c), v, tolerance)] for row in free]
        if not agreeing:
            break
        i = max(range(len(free)), key=lambda k: len(agreeing[k]))
        if not agreeing[i] or len(agreeing[i]) == len(e):
            continue
        best = free.pop(i)
        same = {c: e[c] for c in agreeing[i][:2]}
        differ = ", ".join(f"{c} expected {_text(v)}, got {_text(best.get(c))}" for c, v in e.items()
                           if not _same(best.get(c), v, tolerance))
        lines.append(f"  ~ {_show(same)}: {differ}")
    return lines


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--dump-src-schema":
        sys.stdout.write(dump_src_schema(Path(sys.argv[2])))
    else:
        sys.exit("usage: python -m warehouse.transform.testing --dump-src-schema <build.duckdb>")
