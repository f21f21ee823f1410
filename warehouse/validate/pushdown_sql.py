"""Expectations compiled to SQL for the pushdown path (``pushdown.py``): the SQL text of names, literals and GX
row conditions, and per supported expectation type (``SQL_EXPECTATIONS``) a ``Compiled`` description of the rows it
looks at, judges and fails, which ``pushdown_engine.DuckDBEngine`` evaluates in a few scans per table."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

POS = "__pos"  # the row's position in its table (DuckDB rowid / Parquet file_row_number), as GX's index

SQL_EXPECTATIONS = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
    "expect_table_row_count_to_equal",
    "expect_table_row_count_to_be_between",
)


class NotCompiled(Exception):
    """An expectation (or row condition) this module does not compile to SQL."""


# --------------------------------------------------------------------------------------------- SQL text


def ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def qualified(ref: str) -> str:
    """'src.labs' -> "src"."labs" (a name already quoted is kept)."""
    if '"' in ref:
        return ref
    return ".".join(ident(p) for p in ref.split("."))


def literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "'NaN'::DOUBLE"
        if math.isinf(v):
            return "'Infinity'::DOUBLE" if v > 0 else "'-Infinity'::DOUBLE"
        return repr(v)
    if isinstance(v, datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"


def literal_list(values: list[int]) -> str:
    """Integers (row positions) as a SQL list literal."""
    return "[" + ", ".join(str(int(v)) for v in values) + "]::BIGINT[]"


def condition_sql(node: Any) -> str:
    """A GX 1.x row_condition (dict form: comparison, nullity, and, or) as a SQL predicate.

    Null semantics follow GX's pandas engine: ``!=`` and NOT IN keep rows whose value is null."""
    if node is None:
        return "TRUE"
    if hasattr(node, "dict"):  # a gx Condition object
        node = node.dict()
    if isinstance(node, str):
        raise NotCompiled(f"string row_condition {node!r} (pandas syntax)")
    kind = node.get("type")
    if kind in ("and", "or"):
        parts = [condition_sql(c) for c in node.get("conditions") or []]
        return "(" + f" {kind.upper()} ".join(parts or ["TRUE"]) + ")"
    col = ident((node.get("column") or {}).get("name"))
    if kind == "nullity":
        return f"({col} IS {'' if node.get('is_null') else 'NOT '}NULL)"
    if kind == "comparison":
        op = getattr(node.get("operator"), "value", node.get("operator"))
        p = node.get("parameter")
        if op in ("IN", "NOT_IN"):
            values = ", ".join(literal(v) for v in p) or "NULL"
            return f"({col} IN ({values}))" if op == "IN" else f"({col} IS NULL OR {col} NOT IN ({values}))"
        if op == "!=":
            return f"({col} IS DISTINCT FROM {literal(p)})"
        if op in ("==", "<", "<=", ">", ">="):
            return f"({col} {'=' if op == '==' else op} {literal(p)})"
        raise NotCompiled(f"row_condition operator {op!r}")
    raise NotCompiled(f"row_condition type {kind!r}")


def resolve_parameters(node: Any, params: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$PARAMETER"}:
            return params[node["$PARAMETER"]]
        return {k: resolve_parameters(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_parameters(v, params) for v in node]
    return node


class Compiled:
    """One expectation as SQL over a table's rows.

    kind 'map': ``domain`` (rows the expectation looks at), ``considered`` (of those, rows judged: GX leaves nulls
    out of most column map expectations), ``unexpected`` (failing rows); kind 'unique': failing rows are the
    ``considered`` rows whose ``partition`` occurs more than once; kind 'table': a row count compared."""

    def __init__(self, kind: str, domain: str = "TRUE", considered: str = "TRUE", unexpected: str = "FALSE",
                 column: str | None = None, partition: list[str] | None = None, check=None, value_sql: str | None = None):
        self.kind, self.domain, self.considered, self.unexpected = kind, domain, considered, unexpected
        self.column, self.partition, self.check, self.value_sql = column, partition, check, value_sql


LITERAL_SET_MAX = 32  # a value set larger than this is matched against a registered relation, not an IN list


def compile_expectation(etype: str, kw: dict, value_set_relation=None) -> Compiled:
    """An expectation type and its kwargs (parameters resolved) -> Compiled; NotCompiled when not supported.

    ``value_set_relation(values) -> relation name`` (a one-column ``v`` relation): used for value sets larger than
    LITERAL_SET_MAX (DuckDB evaluates a long IN list row by row: 2,000 subject ids cost ~0.15 s per 50k rows)."""
    if etype not in SQL_EXPECTATIONS:
        raise NotCompiled(f"expectation type {etype}")
    dom = condition_sql(kw.get("row_condition"))
    if etype.startswith("expect_table_row_count"):
        return _row_count(etype, kw)
    if etype.startswith("expect_column_pair"):
        return _column_pair(etype, kw, dom)
    if etype == "expect_compound_columns_to_be_unique":
        return _compound_unique(kw, dom)
    return _column_values(etype, kw, dom, value_set_relation)


def _row_count(etype: str, kw: dict) -> Compiled:
    if etype == "expect_table_row_count_to_equal":
        value = kw.get("value")
        return Compiled("table", check=lambda n: n == value)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    return Compiled("table", check=lambda n: (lo is None or n >= lo) and (hi is None or n <= hi))


def _column_pair(etype: str, kw: dict, dom: str) -> Compiled:
    a, b = ident(kw["column_A"]), ident(kw["column_B"])
    ignore = kw.get("ignore_row_if") or "both_values_are_missing"
    if ignore == "both_values_are_missing":
        domain = f"{dom} AND NOT ({a} IS NULL AND {b} IS NULL)"
    elif ignore == "either_value_is_missing":
        domain = f"{dom} AND {a} IS NOT NULL AND {b} IS NOT NULL"
    elif ignore == "neither":
        domain = dom
    else:
        raise NotCompiled(f"ignore_row_if {ignore!r}")
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        ok = f"{a} {'>=' if kw.get('or_equal') else '>'} {b}"
    else:
        ok = f"{a} = {b}"
    # GX counts every row of the domain as an element, also those ignore_row_if leaves out
    return Compiled("map", domain=dom, considered=domain, unexpected=f"{domain} AND NOT coalesce({ok}, FALSE)")


def _compound_unique(kw: dict, dom: str) -> Compiled:
    cols = [ident(c) for c in kw["column_list"]]
    ignore = kw.get("ignore_row_if") or "all_values_are_missing"
    if ignore == "all_values_are_missing":
        considered = f"{dom} AND NOT (" + " AND ".join(f"{c} IS NULL" for c in cols) + ")"
    elif ignore == "any_value_is_missing":
        considered = f"{dom} AND " + " AND ".join(f"{c} IS NOT NULL" for c in cols)
    elif ignore == "never":
        considered = dom
    else:
        raise NotCompiled(f"ignore_row_if {ignore!r}")
    return Compiled("unique", domain=dom, considered=considered, partition=cols)


def _column_values(etype: str, kw: dict, dom: str, value_set_relation) -> Compiled:
    """The expectations on one column's values: nullity, uniqueness, a set, a range, a regex."""
    col = ident(kw["column"])
    nonnull = f"{dom} AND {col} IS NOT NULL"
    if etype == "expect_column_values_to_not_be_null":
        return Compiled("map", domain=dom, considered=dom, unexpected=f"{dom} AND {col} IS NULL", column=col)
    if etype == "expect_column_values_to_be_null":
        return Compiled("map", domain=dom, considered=dom, unexpected=f"{dom} AND {col} IS NOT NULL", column=col)
    if etype == "expect_column_values_to_be_unique":
        return Compiled("unique", domain=dom, considered=nonnull, partition=[col], column=col)
    if etype in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        ok = _in_set(col, kw.get("value_set"), value_set_relation)
        ok = ok if etype == "expect_column_values_to_be_in_set" else f"NOT {ok}"
    elif etype == "expect_column_values_to_be_between":
        ok = _between(col, kw)
    elif etype in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        m = f"regexp_matches(CAST({col} AS VARCHAR), {literal(kw['regex'])})"
        ok = m if etype == "expect_column_values_to_match_regex" else f"NOT {m}"
    else:
        raise NotCompiled(f"expectation type {etype}")
    return Compiled("map", domain=dom, considered=nonnull, unexpected=f"{nonnull} AND NOT coalesce({ok}, FALSE)",
                    column=col)


def _in_set(col: str, values, value_set_relation) -> str:
    if values is None:
        raise NotCompiled("value_set is not given")
    if not values:
        return "FALSE"
    if len(values) > LITERAL_SET_MAX and value_set_relation is not None:
        return f"coalesce({col} IN (select v from {value_set_relation(list(values))}), FALSE)"
    return f"coalesce({col} IN ({', '.join(literal(v) for v in values)}), FALSE)"


def _between(col: str, kw: dict) -> str:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is None and hi is None:
        raise NotCompiled("between without min_value and max_value")
    parts = []
    if lo is not None:
        parts.append(f"{col} {'>' if kw.get('strict_min') else '>='} {literal(lo)}")
    if hi is not None:
        parts.append(f"{col} {'<' if kw.get('strict_max') else '<='} {literal(hi)}")
    return " AND ".join(parts)
