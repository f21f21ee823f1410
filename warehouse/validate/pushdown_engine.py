"""The pushdown engine: a stage's tables in DuckDB (tables, views, registered frames), each suite's compiled
expectations (``pushdown_sql.py``) evaluated in a few scans per table, the failing rows shown fetched in one query,
and results in GX's shape (``expectations.Result``) built from the counts, so that ``core.run_stage`` makes the same results and findings as from
GX on pandas. See ``pushdown.py`` for the cost model and the entry points."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import polars as pl

from warehouse.validate.core import PolarsEngine
from warehouse.validate.derived import DERIVED_CHECKS, DERIVED_CHECKS_SQL
from warehouse.validate.expectations import Result, SuiteResult
from warehouse.validate.plan import suite_parameters
from warehouse.validate.pushdown_sql import (
    POS,
    Compiled,
    NotCompiled,
    compile_expectation,
    ident,
    literal_list,
    qualified,
    resolve_parameters,
)
from warehouse.validate.suites import form_order

log = logging.getLogger(__name__)

_DUP = "__dup"
_PARTIAL = 20  # GX's partial_unexpected_list length


def _percent(part: int, whole: int) -> float:
    return (100.0 * part / whole) if whole else 0.0


_NOT_FOR_DERIVED = frozenset({"_export_id", "_source_file", "_source_row", "_source_path", "_file_sha256", "_untyped"})


class _LazyFrames(Mapping):
    """Tables read into Polars only when a derived check asks for them."""

    def __init__(self, engine: DuckDBEngine):
        self.engine = engine
        self.cache: dict[str, pl.DataFrame] = {}

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in self.engine.rel:
            raise KeyError(name)
        if name not in self.cache:
            # provenance and the raw text of untyped values are never what a derived check reads, and they are
            # most of a large table's bytes (14 million monitor readings: ~1.5 GB less in memory)
            columns = [c for c in self.engine.columns(name) if c not in _NOT_FOR_DERIVED]
            select = ", ".join(ident(c) for c in columns)
            self.cache[name] = self.engine.con.sql(f"select {select} from {self.engine.base(name)}").pl()
        return self.cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.engine.rel)

    def __len__(self) -> int:
        return len(self.engine.rel)


def _value_only(comp: Compiled) -> bool:
    """A map expectation that reads one column's value and nothing else (no row condition)."""
    return comp.kind == "map" and bool(comp.column) and comp.domain == "TRUE"


def _by_value(comp: Compiled, columns: set[str]) -> bool:
    return _value_only(comp) and comp.column in columns


class _Relations(Mapping):
    """Table name -> its relation with ``__pos`` (``DuckDBEngine.base``), built only for the tables asked for."""

    def __init__(self, engine: DuckDBEngine):
        self.engine = engine

    def __getitem__(self, name: str) -> str:
        if name not in self.engine.rel:
            raise KeyError(name)
        return self.engine.base(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.engine.rel)

    def __len__(self) -> int:
        return len(self.engine.rel)


class DuckDBEngine:
    """Tables of a DuckDB connection (tables, views, registered frames), validated by compiled SQL."""

    def __init__(self, con, tables: list[str] | dict[str, str]):
        self.con = con
        pairs = tables.items() if isinstance(tables, dict) else ((t.split(".")[-1].strip('"'), t) for t in tables)
        self.rel: dict[str, str] = {name: qualified(ref) for name, ref in pairs}
        self._columns: dict[str, list[str]] = {}
        self._base: dict[str, str] = {}
        self._registered: list[str] = []
        self._sets: dict[str, str] = {}
        self._lazy = _LazyFrames(self)

    def close(self) -> None:
        for name in self._registered:
            try:
                self.con.unregister(name)
            except Exception:  # noqa: BLE001 - best effort on a connection the caller owns
                pass
        self._registered.clear()

    # planning
    def names(self) -> list[str]:
        return list(self.rel)

    def schema_frames(self) -> dict[str, pl.DataFrame]:
        """Empty frames with each table's columns and types (what the suite generators read)."""
        return {name: self.con.sql(f"select * exclude ({POS}) from {self.base(name)} limit 0").pl() for name in self.rel}

    def frames(self) -> Mapping[str, pl.DataFrame]:
        return self._lazy

    def derived(self, name: str, params: dict[str, Any]) -> pl.DataFrame | None:
        """A derived check table: in SQL where the check has a SQL version (its input never leaves DuckDB), else
        its Polars builder over the tables it reads."""
        if name in DERIVED_CHECKS_SQL:
            sql = DERIVED_CHECKS_SQL[name](_Relations(self), self.columns, params)
            if sql is None:
                return None
            return self.con.sql(sql).pl()
        return DERIVED_CHECKS[name](self._lazy, params)

    def value_set_relation(self, values: list) -> str:
        """A registered one-column relation (``v``) holding ``values``; one per distinct set, reused."""
        key = repr(values)
        if key not in self._sets:
            import pyarrow as pa

            name = f"__validate_set_{len(self._sets)}_{id(self)}"
            self.con.register(name, pa.table({"v": values}))
            self._registered.append(name)
            self._sets[key] = ident(name)
        return self._sets[key]

    def add_table(self, name: str, frame: pl.DataFrame) -> None:
        view = f"__validate_{name}_{id(self)}"
        self.con.register(view, frame.with_row_index(POS).to_arrow())
        self._registered.append(view)
        self.rel[name] = ident(view)
        self._columns.pop(name, None)
        self._base.pop(name, None)

    def values_of(self, table: str, columns: list[str]) -> pl.DataFrame:
        """The distinct rows of some columns of a table (identifier values: see identifiers.py)."""
        return self.con.sql(f"select distinct {', '.join(ident(c) for c in columns)} from {self.base(table)}").pl()

    def columns(self, table: str) -> list[str]:
        if table not in self._columns:
            cols = [r[0] for r in self.con.sql(f"describe select * from {self.rel[table]}").fetchall()]
            self._columns[table] = cols
        return [c for c in self._columns[table] if c != POS]

    def base(self, table: str) -> str:
        """A subquery of the table's rows with their position ``__pos``: a DuckDB table's rowid, a column
        ``__pos`` the relation already has (Parquet views from ``parquet_views``, registered frames), else the
        row number in scan order."""
        if table not in self._base:
            ref = self.rel[table]
            self.columns(table)
            if POS in self._columns[table]:
                self._base[table] = f"(select * from {ref})"
            else:
                try:
                    self.con.sql(f"select rowid from {ref} limit 0").fetchall()
                    self._base[table] = f"(select *, rowid as {POS} from {ref})"
                except Exception:  # noqa: BLE001 - a view has no rowid
                    self._base[table] = f"(select *, row_number() over () - 1 as {POS} from {ref})"
        return self._base[table]

    def known_subjects(self, metadata) -> list[str] | None:
        for form in form_order(metadata):
            if form in self.rel and "subject_id" in self.columns(form):
                rows = self.con.sql(f"select distinct cast(subject_id as varchar) from {self.rel[form]} "
                                    "where subject_id is not null order by 1").fetchall()
                return [r[0] for r in rows]
        return None

    def _source_values(self, sources, distinct_count: bool):
        for src in [sources] if isinstance(sources, str) else list(sources):
            table, _, column = str(src).rpartition(".")
            if table in self.rel and column in self.columns(table):
                c = f"cast({ident(column)} as varchar)"
                if distinct_count:
                    return int(self.con.sql(f"select count(distinct {c}) from {self.rel[table]}").fetchall()[0][0])
                rows = self.con.sql(f"select distinct {c} from {self.rel[table]} where {ident(column)} is not null "
                                    "order by 1").fetchall()
                return [r[0] for r in rows]
        return None

    def suite_parameters(self, meta: dict, builtin: dict[str, Any]) -> dict[str, Any]:
        return suite_parameters(meta, builtin, self._source_values)

    # the run
    GROUP_SAMPLE_ROWS = 50_000  # rows read to judge a column's cardinality
    GROUP_MAX_DISTINCT = 0.02  # at most this share of distinct values in the sample: count by value

    def _grouped_columns(self, table: str, compiled: list[Compiled]) -> set[str]:
        """Columns to count by value: read by an expectation with no row condition, and of low cardinality in the
        table's first rows (monitor readings: a heart rate has ~150 values in 14 million rows). A regex or a set is
        then tested once per distinct value, not once per row; the counts are the same."""
        wanted = {comp.column for comp in compiled if _value_only(comp)}
        if not wanted:
            return set()
        base = self.base(table)
        sample = self.con.sql(f"select count(*), {', '.join(f'count(distinct {c})' for c in sorted(wanted))} "
                              f"from (select {', '.join(sorted(wanted))} from {base} limit {self.GROUP_SAMPLE_ROWS})"
                              ).fetchall()[0]
        n = int(sample[0])
        if n < self.GROUP_SAMPLE_ROWS:  # a small table: one scan is as cheap
            return set()
        return {c for c, k in zip(sorted(wanted), sample[1:]) if int(k) <= self.GROUP_MAX_DISTINCT * n}

    def _count_by_value(self, base: str, columns: set[str],
                        compiled: list[Compiled]) -> dict[str, list[tuple[int, int, int]]]:
        """Per grouped column, (element, missing, unexpected) of its expectations in plan order."""
        out: dict[str, list[tuple[int, int, int]]] = {}
        for col in sorted(columns):
            exprs = [comp for comp in compiled if comp.column == col and _by_value(comp, columns)]
            aggs = ["coalesce(sum(n), 0)", f"coalesce(sum(n) filter (where {col} IS NULL), 0)"]
            aggs += [f"coalesce(sum(n) filter (where {comp.unexpected}), 0)" for comp in exprs]
            row = self.con.sql(f"select {', '.join(aggs)} from (select {col}, count(*) as n from {base} "
                               f"group by {col})").fetchall()[0]
            element, missing = int(row[0]), int(row[1])
            out[col] = [(element, missing, int(u)) for u in row[2:]]
        return out

    def _duplicates(self, base: str, partition: list[str], considered: str, limit: int) -> tuple[int, list[int]]:
        """Rows whose ``partition`` values occur more than once among the considered rows: their number, and the
        positions of the first ``limit`` of them, in one query.

        The duplicated values are grouped (nulls equal, as GX's pandas ``duplicated`` and a window partition have
        them), and the first rows carrying them found by a semi join on those few groups. Measured on 14 million
        monitor readings with 2% duplicated keys: 2.6 s, against 5.6 s for a sorted-hash probe followed by an exact
        window count, and 2.0 s against 1.7 s when nothing is duplicated (2026-12-01); the hash prefilter below
        (2026-12-03) takes the exact grouping off the rows whose keys are unique."""
        part = ", ".join(partition)
        same = " and ".join(f"b.{c} is not distinct from g.{c}" for c in partition)
        # first the 64-bit hashes of the keys that occur more than once (one cheap aggregate), then the exact groups
        # among the rows carrying those hashes only: a collision adds candidates the exact step removes, so the
        # count and the rows are the same (14 million readings: 8.7 -> 5.6 s at load ~4, bench/profile_validate.py)
        count, shown = self.con.sql(
            f"with h as materialized (select hash({part}) as __h from {base} where {considered} group by 1 "
            f"having count(*) > 1), "
            f"c as materialized (select {part}, {POS} from {base} where {considered} "
            f"and hash({part}) in (select __h from h)), "
            f"g as (select {part}, count(*) as {_DUP} from c group by all having count(*) > 1) "
            f"select coalesce(sum({_DUP}), 0), (select min(b.{POS}, {int(limit)}) from c as b semi join g on {same}) "
            f"from g").fetchall()[0]
        return int(count), sorted(shown or [])

    def _first_failing(self, base: str, failed: list[Compiled], limit: int) -> list[list[int]]:
        """Per failed map expectation, the positions of its first ``limit`` failing rows: one scan for all of
        them, reading only the columns their rules read (a top-``limit`` aggregate per rule)."""
        if not failed:
            return []
        aggs = [f"min({POS}, {int(limit)}) filter (where {comp.unexpected})" for comp in failed]
        row = self.con.sql(f"select {', '.join(aggs)} from {base}").fetchall()[0]
        return [sorted(p or []) for p in row]

    def _rows_at(self, base: str, positions: set[int]) -> dict[int, dict]:
        """The rows at some positions, every column: one query for all failing rows shown of a table (GX hands
        the findings whole rows; a message template may read any column)."""
        if not positions:
            return {}
        frame = self.con.sql(f"select * from {base} where {POS} in (select unnest({literal_list(sorted(positions))})) "
                             f"order by {POS}").pl()
        at = frame.get_column(POS).to_list()
        return dict(zip(at, frame.drop(POS).to_dicts()))

    def run(self, suite_name: str, table: str, runnable: list, params: dict[str, Any], cap: int):
        """[(i, expectations.Result | None, failing rows as dicts)] for the runnable configurations
        (each with meta._i), in their order, and the suite's result; expectations not compiled to SQL run with GX
        on pandas over this one table."""
        return self.run_many(table, [(suite_name, runnable, params)], cap)[0]

    def run_many(self, table: str, requests: list[tuple[str, list, dict[str, Any]]], cap: int) -> list[tuple]:
        """``run`` for several suites on one table in one pass: one aggregate query counts every suite's
        expectations, one scan finds the failing rows of all, one query fetches them (per suite and table it was
        three queries, ~20 ms each however small the table). Answers in the order of ``requests``."""
        base = self.base(table)
        plans = [(name, runnable, *self._compile(name, table, runnable, params), params)
                 for name, runnable, params in requests]
        every = [comp for _, _, compiled, _, _ in plans for _, _, comp in compiled]
        limit = int(max(cap, _PARTIAL))
        n_rows, tallies, positions = self._tally(base, table, every, limit)
        # the failing rows shown, in one query
        rows_at = self._rows_at(base, {p for found in positions.values() for p in found})
        answers, k = [], 0
        for name, runnable, compiled, fallback, params in plans:
            outcomes: dict[int, tuple] = {}
            for c, kw, comp in compiled:
                shown = positions.get(k, []) if tallies[k][2] else []
                outcomes[int(c.meta["_i"])] = _expectation_result(c, kw, comp, n_rows, tallies[k], shown, rows_at,
                                                                  cap)
                k += 1
            if fallback:
                fb, _ = PolarsEngine({table: self._lazy[table]}).run(name, table, fallback, params, cap)
                for i, r, rows in fb:
                    outcomes[i] = (r, rows)
            ordered = [(int(c.meta["_i"]), *outcomes[int(c.meta["_i"])]) for c in runnable
                       if int(c.meta["_i"]) in outcomes]
            answers.append((ordered, _suite_result(name, table, [r for _, r, _ in ordered if r is not None], n_rows)))
        return answers

    def _compile(self, suite_name: str, table: str, runnable: list, params: dict[str, Any]) -> tuple[list, list]:
        """[(configuration, kwargs with parameters resolved, Compiled)], and the configurations not compiled."""
        compiled: list[tuple[Any, dict, Compiled]] = []
        fallback: list = []
        for c in runnable:
            try:
                kw = resolve_parameters(c.kwargs or {}, params)  # a new structure: the suite's kwargs stay as they are
                compiled.append((c, kw, compile_expectation(c.type, kw, self.value_set_relation)))
            except NotCompiled as e:
                log.info("%s on %s: %s not compiled to SQL (%s); running it with GX on pandas", suite_name, table,
                         c.type, e)
                fallback.append(c)
        return compiled, fallback

    def _tally(self, base: str, table: str, compiled: list[Compiled],
               limit: int) -> tuple[int, list[tuple[int, int, int]], dict[int, list[int]]]:
        """The table's row count; per compiled expectation (element, missing, unexpected) ((0, 0, 0) for a table
        one); per failed map or unique expectation (index into ``compiled``) the positions of its first ``limit``
        failing rows.

        One scan counts every map expectation, the domains of the uniqueness ones and the rows; expectations that
        read only one low-cardinality column are counted over its distinct values instead."""
        by_value = self._grouped_columns(table, compiled)
        aggs = ["count(*)"]
        for comp in compiled:
            missing = f"{comp.domain} AND {comp.column} IS NULL" if comp.column else "FALSE"
            if comp.kind == "map" and not _by_value(comp, by_value):
                aggs += [f"count(*) filter (where {comp.domain})", f"count(*) filter (where {missing})",
                         f"count(*) filter (where {comp.unexpected})"]
            elif comp.kind == "unique":
                aggs += [f"count(*) filter (where {comp.domain})", f"count(*) filter (where {missing})"]
        counts = list(self.con.sql(f"select {', '.join(aggs)} from {base}").fetchall()[0])
        n_rows = int(counts.pop(0))
        grouped = self._count_by_value(base, by_value, compiled)
        tallies: list[tuple[int, int, int]] = []
        positions: dict[int, list[int]] = {}
        failed_map: list[int] = []
        for k, comp in enumerate(compiled):
            if comp.kind == "map":
                tally = (grouped[comp.column].pop(0) if _by_value(comp, by_value)
                         else tuple(int(counts.pop(0)) for _ in range(3)))
                if tally[2]:
                    failed_map.append(k)
            elif comp.kind == "unique":
                element, missing = int(counts.pop(0)), int(counts.pop(0))
                unexpected, positions[k] = self._duplicates(base, comp.partition, comp.considered, limit)
                tally = (element, missing, unexpected)
            else:
                tally = (0, 0, 0)
            tallies.append(tally)
        # the failing rows' positions of every failed map expectation, in one scan
        for k, found in zip(failed_map, self._first_failing(base, [compiled[k] for k in failed_map], limit)):
            positions[k] = found
        return n_rows, tallies, positions


NULLITY_EXPECTATIONS = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")


def _expectation_result(c, kw: dict, comp: Compiled, n_rows: int, tally: tuple[int, int, int], shown: list[int],
                        rows_at: dict[int, dict], cap: int) -> tuple:
    """(expectations.Result, failing rows shown) of one compiled expectation, from its counts (GX's keys)."""
    if comp.kind == "table":
        ok = bool(comp.check(n_rows))
        return Result(success=ok, expectation_config=c, result={"observed_value": n_rows}), []
    element, missing, unexpected = tally
    nonmissing = element - missing
    # the nullity expectations judge every row (their unexpected rows are the nulls, or the values): GX's base is
    # the element count, not the non-null count (which would make 4 nulls of 5 rows 400 %)
    nullity = c.type in NULLITY_EXPECTATIONS
    base = element if nullity or not comp.column else nonmissing
    mostly = kw.get("mostly")
    if mostly is None or mostly >= 1:
        ok = unexpected == 0
    else:
        ok = base == 0 or (base - unexpected) / base >= mostly
    rows = [rows_at[p] for p in shown]
    values = [(r.get(kw["column"]) if isinstance(kw.get("column"), str) else None) for r in rows]
    result = {
        "element_count": element,
        "unexpected_count": unexpected,
        "unexpected_percent": _percent(unexpected, base),
        "partial_unexpected_list": values[:_PARTIAL],
        "unexpected_index_list": shown[:cap],
        "partial_unexpected_index_list": shown[:_PARTIAL],
    }
    if comp.column and not nullity:
        result.update(missing_count=missing, missing_percent=_percent(missing, element),
                      unexpected_percent_total=_percent(unexpected, element),
                      unexpected_percent_nonmissing=_percent(unexpected, nonmissing))
    return Result(success=ok, expectation_config=c, result=result), rows[:cap]


def _suite_result(suite_name: str, table: str, results: list, n_rows: int):
    """The suite's results on one table, as GX's ExpectationSuiteValidationResult has them (what Data Docs
    render)."""
    passed = sum(1 for r in results if r.success)
    return SuiteResult(
        success=passed == len(results), results=results, suite_name=f"{suite_name}:{table}",
        statistics={"evaluated_expectations": len(results), "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": 100.0 * passed / len(results) if results else None},
        meta={"engine": "duckdb (warehouse.validate.pushdown)", "table": table, "row_count": n_rows},
    )
