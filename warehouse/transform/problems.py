"""Compile problems: where a model that does not compile goes wrong, as file, line and column.

When DuckDB refuses to bind a model, its qualified query is walked scope by scope and every column reference that
does not resolve (an unknown or ambiguous column, an unknown column of a named table or CTE) is a problem (all of a
model's problems, not only the first); when the walk finds nothing, DuckDB's message is the problem, with its line.
A model sqlglot cannot qualify is placed where sqlglot says, else where the name its message ends with first
occurs. The header checks (grain columns output, described columns output) are here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema

from warehouse.transform.models import Model, position


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        where = f":{self.line}:{self.col}" if self.line and self.col else (f":{self.line}" if self.line else "")
        return f"{self.path}{where}: {self.message}"



def source_columns(source: exp.Table | Scope, schema: MappingSchema) -> set[str] | None:
    """The columns a FROM source offers (lower-case), None when unknown (a star we cannot expand)."""
    if isinstance(source, exp.Table):
        if not source.name or not source.db:
            return None  # a table function or an unresolved name
        try:
            return {c.lower() for c in schema.column_names(source)}
        except SqlglotError:
            return None
    expression = source.expression
    if isinstance(expression, exp.Query) and not getattr(expression, "is_star", False):
        return {name.lower() for name in expression.named_selects}
    return None


def unresolved_columns(qualified: exp.Query, schema: MappingSchema) -> list[tuple[exp.Column, str]]:
    """Every column reference that does not resolve, with the reason; checks all scopes, not only the first."""
    problems: list[tuple[exp.Column, str]] = []
    for scope in traverse_scope(qualified):
        if not isinstance(scope.expression, exp.Select):
            continue
        available = {alias: source_columns(source, schema) for alias, source in scope.sources.items()}
        candidates = sorted({c for cols in available.values() if cols for c in cols})
        if not scope.is_correlated_subquery and not scope.pivots:
            for column in scope.external_columns:
                if not column.table:
                    continue  # unqualified: reported below as unknown or ambiguous
                problems.append((column, f"unknown table or alias '{column.table}' in column '{column.sql()}'"))
        for column in scope.unqualified_columns:
            name = column.name.lower()
            holders = [alias for alias, cols in available.items() if cols and name in cols]
            if len(holders) > 1:
                problems.append((column, f"ambiguous column '{column.name}' (in {', '.join(sorted(holders))})"))
            else:
                problems.append((column, f"unknown column '{column.name}'{suggest(name, candidates)}"))
        for column in scope.columns:
            if not column.table or column.table not in available:
                continue
            cols = available[column.table]
            if cols is not None and column.name.lower() not in cols and column.name != "*":
                where = scope.sources[column.table]
                label = f"{where.db}.{where.name}" if isinstance(where, exp.Table) else column.table
                problems.append((column, f"unknown column '{column.name}' in {label}{suggest(column.name, sorted(cols))}"))
    return problems


def locate(ast: exp.Query, message: str) -> tuple[int, int]:
    """Where the name an error message ends with (`Unknown table: x`) first occurs in the model."""
    name = re.split(r"[:\s'\"]+", message.strip().rstrip(".'\""))[-1].lower()
    for node in ast.find_all(exp.Column, exp.Table, exp.Identifier):
        if node.name.lower() == name:
            return position(node)
    return 0, 0


def suggest(name: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


_LOCATED = re.compile(r"Line: (\d+), Col: (\d+)")
_DUCKDB_LINE = re.compile(r"LINE (\d+):")


def duckdb_problem(model: Model, err: duckdb.Error, line_offset: int) -> Problem:
    text = str(err)
    match = _DUCKDB_LINE.search(text)
    line = int(match.group(1)) - line_offset if match else 0
    return Problem(model.path, max(line, 0), 0, text.splitlines()[0])


def header_problems(model: Model, columns: dict[str, str]) -> tuple[list[Problem], list[str]]:
    outputs = {c.lower() for c in columns}
    problems = [
        Problem(model.path, model.header_lines.get("grain", 0), 0, f"grain column '{g}' is not an output column")
        for g in model.grain_columns
        if g.lower() not in outputs
    ]
    warnings = [
        f"{model.path}:{model.header_lines.get(f'columns.{c}', 0)}: describes column '{c}' which the model "
        f"does not output"
        for c in model.columns
        if c not in outputs
    ]
    return problems, warnings


def qualify_problem(model: Model, ast: exp.Query, err: SqlglotError) -> Problem:
    """sqlglot could not qualify the model: its message, at the line and column it names, else where the name it
    ends with first occurs."""
    message = str(err).splitlines()[0]
    located = _LOCATED.search(message)
    line, col = (int(located.group(1)), int(located.group(2))) if located else locate(ast, message)
    return Problem(model.path, line, col, _LOCATED.sub("", message).rstrip(" .("))


def binding_problems(model: Model, qualified: exp.Query, schema: MappingSchema, err: duckdb.Error) -> list[Problem]:
    """DuckDB could not bind the model: every column reference that does not resolve (by line and column), else
    DuckDB's own message."""
    problems = [Problem(model.path, *position(column), reason)
                for column, reason in unresolved_columns(qualified, schema)]
    if problems:
        return sorted(set(problems), key=lambda p: (p.line, p.col))
    return [duckdb_problem(model, err, line_offset=1)]
