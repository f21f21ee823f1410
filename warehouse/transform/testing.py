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
not) as an empty table with its real column types (the `src` types from a schema snapshot of the demo study,
`tests/models/src_schema.json`; the models' types from compiling them). The given tables are filled with the
given rows: give only the columns the test is about, the others are null. A given key is a model (`stg_x`,
`int_y`) or a staged form (`src.x`, or `x` when no model has that name). Models between the given tables and
the target are run too, so a test may start from `src` forms or from the target's direct inputs. The target is
then run exactly as the build runs it, and its rows come back as dicts.

Comparing (`assert_rows`): each expected row is compared on the columns it names; rows as a multiset unless
`ordered`; floats within `tolerance`; an expected ISO date/time string matches a date/datetime value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, Iterable

import duckdb

from warehouse.transform.compile import SourceSchema, compile_model_set
from warehouse.transform.models import Model, ModelError, discover_models
from warehouse.transform.order import ancestors
from warehouse.transform.runner import prepare_schemas, run_model

_PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_SRC_SCHEMA = _PROJECT / "tests" / "models" / "src_schema.json"
Rows = list[dict[str, Any]]


def load_src_schema(path: Path | None = None) -> SourceSchema:
    """The `src` schema snapshot (table -> column -> DuckDB type) that unit tests type their inputs with."""
    path = path or DEFAULT_SRC_SCHEMA
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no src schema snapshot; write one from any build with "
            f"`python -m warehouse.transform.testing --dump-src-schema <build.duckdb> > {path}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def dump_src_schema(database: Path) -> str:
    from warehouse.transform.compile import source_schema_of

    return json.dumps(source_schema_of(database), indent=1, sort_keys=True) + "\n"


def _relation_of(key: str, models: dict[str, Model], sources: SourceSchema) -> tuple[str, str]:
    """A given table's key -> ("model" | "src", name)."""
    schema, _, name = key.lower().rpartition(".")
    if schema == "src" or (not schema and name not in models):
        if name not in sources:
            raise ModelError(f"given table '{key}': no model and no staged form of that name")
        return "src", name
    if name not in models:
        raise ModelError(f"given table '{key}': no model of that name")
    return "model", name


def _create_typed(con: duckdb.DuckDBPyConnection, relation: str, columns: dict[str, str], rows: Rows | None) -> None:
    body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
    con.execute(f"create or replace table {relation} ({body})")
    if not rows:
        return
    known = {c.lower(): c for c in columns}
    names: list[str] = []
    for row in rows:
        for key in row:
            if key.lower() not in known:
                import difflib

                close = difflib.get_close_matches(key.lower(), list(known), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ModelError(f"given {relation}: no column '{key}'{hint}; columns: {', '.join(columns)}")
            if known[key.lower()] not in names:
                names.append(known[key.lower()])
    lowered = [{k.lower(): v for k, v in row.items()} for row in rows]
    values = [[row.get(n.lower()) for n in names] for row in lowered]
    quoted = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    con.executemany(f"insert into {relation} ({quoted}) values ({marks})", values)


def run_model_on(
    model_name: str,
    inputs: dict[str, Rows],
    *,
    src_schema: SourceSchema | Path | None = None,
    sql_root: Path | None = None,
    order_by: Iterable[str] | None = None,
) -> Rows:
    """Run one model over the given input tables in a throwaway DuckDB and return its rows (see the module
    docstring). `order_by`: sort the returned rows by these columns (default: as the model returns them)."""
    from warehouse.resources import sql_dir

    sources = src_schema if isinstance(src_schema, dict) else load_src_schema(src_schema)
    models = discover_models(sql_root or sql_dir())
    name = model_name.lower()
    if name not in models:
        raise ModelError(f"no model named '{model_name}'")
    compiled = compile_model_set(models, sources)
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


def _show(row: dict) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in row.items()) + "}"


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
        raise AssertionError("\n".join(lines))


# -- YAML cases ------------------------------------------------------------------------------------------------


def load_cases(path: Path) -> list[dict]:
    """The cases of one YAML file: a mapping (one case), a list of cases, or `cases:` with a list."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = data.get("cases", [data]) if isinstance(data, dict) else (data or [])
    for i, case in enumerate(cases):
        for key in ("model", "given", "expect"):
            if key not in case:
                raise ModelError(f"{path}: case {i + 1} lacks '{key}'")
        unknown = set(case) - {"model", "name", "given", "expect", "description"}
        if unknown:
            raise ModelError(f"{path}: case {i + 1}: unknown key(s) {', '.join(sorted(unknown))}")
        case.setdefault("name", f"case {i + 1}")
    return cases


def check_case(case: dict, *, src_schema: SourceSchema | Path | None = None, sql_root: Path | None = None) -> None:
    """Run one YAML case and assert its expectation (`expect: {rows: [...], ordered: bool, tolerance: float}`)."""
    expect = case["expect"]
    rows = run_model_on(case["model"], case["given"] or {}, src_schema=src_schema, sql_root=sql_root,
                        order_by=expect.get("order_by"))
    assert_rows(rows, expect.get("rows") or [], ordered=bool(expect.get("ordered") or expect.get("order_by")),
                tolerance=float(expect.get("tolerance", 1e-9)))


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--dump-src-schema":
        sys.stdout.write(dump_src_schema(Path(sys.argv[2])))
    else:
        sys.exit("usage: python -m warehouse.transform.testing --dump-src-schema <build.duckdb>")
