"""Validation pushed down into DuckDB gives what GX on pandas gives (results, counts, findings), on edge cases and
on the whole demo build; a rule failing on a million rows is counted in full with its finding rows capped."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest
from marts_inputs import marts_relations

from warehouse.extract.steps import META_TABLES, read_raw
from warehouse.validate.steps import tables_of_schema
from warehouse.validate import validate_stage, validate_stage_auto, validate_stage_duckdb
from warehouse.validate.pushdown import SQL_EXPECTATIONS, compile_expectation, parquet_views, use_pushdown

RESULT_KEY = ["suite", "table", "expectation_type", "column", "rule"]


def assert_same(gx, db) -> None:
    a = gx.results.sort(RESULT_KEY, nulls_last=True)
    b = db.results.sort(RESULT_KEY, nulls_last=True)
    assert a.to_dicts() == b.to_dicts()
    assert gx.findings.sort("finding_id").to_dicts() == db.findings.sort("finding_id").to_dicts()
    assert (gx.errors, gx.warnings, gx.skipped) == (db.errors, db.warnings, db.skipped)


def expectation(etype: str, rule: str, **kwargs) -> dict:
    return {"type": etype, "kwargs": kwargs, "meta": {"severity": "error", "rule": rule}}


NOT_NULL = {"type": "nullity", "column": {"name": "b"}, "is_null": False}
NOT_NULL_D_E = {"type": "and", "conditions": [{"type": "nullity", "column": {"name": c}, "is_null": False}
                                              for c in ("d", "e")]}

EDGE_SUITE = {
    "name": "edge", "meta": {"table": "t"},
    "expectations": [
        expectation("expect_column_values_to_not_be_null", "a given", column="a"),
        expectation("expect_column_values_to_not_be_null", "a given where b", column="a", row_condition=NOT_NULL),
        expectation("expect_column_values_to_be_null", "c empty", column="c"),
        # more nulls than values: the base of the percentage and of `mostly` is every row (5 nulls of 8)
        expectation("expect_column_values_to_not_be_null", "c given", column="c"),
        expectation("expect_column_values_to_not_be_null", "c given mostly 0.3", column="c", mostly=0.3),
        expectation("expect_column_values_to_not_be_null", "c given mostly 0.5", column="c", mostly=0.5),
        expectation("expect_column_values_to_be_between", "a in [0, 10]", column="a", min_value=0, max_value=10),
        expectation("expect_column_values_to_be_between", "a in (0, 10)", column="a", min_value=0, max_value=10,
                    strict_min=True, strict_max=True),
        expectation("expect_column_values_to_be_between", "a >= 1 mostly", column="a", min_value=1, mostly=0.5),
        expectation("expect_column_values_to_be_between", "a <= 5 where b != x", column="a", max_value=5,
                    row_condition={"type": "comparison", "column": {"name": "b"}, "operator": "!=", "parameter": "x"}),
        expectation("expect_column_values_to_be_between", "a <= 5 where b in/or", column="a", max_value=5,
                    row_condition={"type": "or", "conditions": [
                        {"type": "comparison", "column": {"name": "b"}, "operator": "IN", "parameter": ["x", "y"]},
                        {"type": "and", "conditions": [
                            {"type": "comparison", "column": {"name": "a"}, "operator": ">", "parameter": 50},
                            {"type": "nullity", "column": {"name": "c"}, "is_null": True}]}]}),
        expectation("expect_column_values_to_be_in_set", "b in x, y", column="b", value_set=["x", "y"]),
        expectation("expect_column_values_to_not_be_in_set", "b not z", column="b", value_set=["z"]),
        expectation("expect_column_values_to_be_in_set", "flag true", column="flag", value_set=[True]),
        expectation("expect_column_values_to_match_regex", "b one letter", column="b", regex=r"^[a-y]$"),
        expectation("expect_column_values_to_not_match_regex", "b not z", column="b", regex="z"),
        expectation("expect_column_values_to_be_unique", "b unique", column="b"),
        expectation("expect_compound_columns_to_be_unique", "b, c unique (never)", column_list=["b", "c"],
                    ignore_row_if="never"),
        expectation("expect_compound_columns_to_be_unique", "b, c unique (all missing)", column_list=["b", "c"]),
        expectation("expect_compound_columns_to_be_unique", "b, c unique (any missing)", column_list=["b", "c"],
                    ignore_row_if="any_value_is_missing"),
        expectation("expect_column_pair_values_a_to_be_greater_than_b", "e > d (either)", column_A="e",
                    column_B="d", ignore_row_if="either_value_is_missing"),
        expectation("expect_column_pair_values_a_to_be_greater_than_b", "e >= d (both)", column_A="e",
                    column_B="d", or_equal=True, row_condition=NOT_NULL_D_E),
        expectation("expect_column_pair_values_to_be_equal", "d = e", column_A="d", column_B="e",
                    ignore_row_if="either_value_is_missing"),
        expectation("expect_table_row_count_to_equal", "8 rows", value=8),
        expectation("expect_table_row_count_to_be_between", "7..9 rows", min_value=7, max_value=9),
        expectation("expect_table_row_count_to_equal", "9 rows", value=9),
        expectation("expect_column_values_to_not_be_null", "no such column", column="zz"),
    ],
}


def edge_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "subject_id": [f"01-00{i}" for i in range(8)], "site_id": ["site_01"] * 4 + ["site_02"] * 4,
        "event": ["e1"] * 8, "repeat_instance": [None, 1, 2, 3, None, None, 1, 1],
        "a": [1.0, None, 11.0, 0.0, 10.0, 60.0, None, 5.5],
        "b": ["x", "y", "y", None, "z", None, "x", "abc"],
        "c": [None, None, "k", None, "k", None, None, "m"],
        "flag": [True, False, None, True, True, True, False, True],
        "d": [1, 2, None, 4, 5, None, 7, 8], "e": [2, 2, 3, None, 4, None, 8, 8],
    }, schema_overrides={"repeat_instance": pl.Int32})


def test_sql_semantics_equal_gx_on_edge_cases(gx_loaded, tmp_path):
    frame = edge_frame()
    gx = validate_stage("marts", {"t": frame}, suites_dir=tmp_path, extra_suites=[EDGE_SUITE])
    con = duckdb.connect()
    con.register("t_frame", frame.to_arrow())
    con.execute("create table t as select * from t_frame")
    db = validate_stage_duckdb("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[EDGE_SUITE])
    assert_same(gx, db)
    st = dict(zip(db.results["rule"].to_list(), db.results["status"].to_list()))
    assert st["8 rows"] == "passed" and st["9 rows"] == "failed" and st["no such column"] == "skipped"
    assert st["a >= 1 mostly"] == "passed" and st["a in [0, 10]"] == "failed"
    assert (st["c given"], st["c given mostly 0.3"], st["c given mostly 0.5"]) == ("failed", "passed", "failed")
    # the row count finding is a table-level finding
    assert db.findings.filter(pl.col("rule") == "9 rows")["value"].to_list() == ["8"]
    # GX's own result objects are kept for Data Docs, in GX's result format
    name, res = next((n, r) for n, r in db.gx_results if n == "marts.edge.t")
    between = next(r for r in res.results if r.expectation_config.meta["rule"] == "a in [0, 10]")
    assert between.result["unexpected_count"] == 2 and between.result["partial_unexpected_list"] == [11.0, 60.0]
    given = next(r for r in res.results if r.expectation_config.meta["rule"] == "c given")
    assert given.result["element_count"] == 8 and given.result["unexpected_count"] == 5
    assert given.result["unexpected_percent"] == 62.5  # 5 of 8 rows, not 5 of the 3 values


def test_counting_by_value_equals_gx_on_edge_cases(gx_loaded, tmp_path, monkeypatch):
    """Every expectation that reads one column with no row condition counted over the column's distinct values (what
    a low-cardinality column of a large table gets) gives what GX gives."""
    from warehouse.validate.pushdown import DuckDBEngine

    monkeypatch.setattr(DuckDBEngine, "GROUP_SAMPLE_ROWS", 8)
    monkeypatch.setattr(DuckDBEngine, "GROUP_MAX_DISTINCT", 1.0)
    frame = edge_frame()
    gx = validate_stage("marts", {"t": frame}, suites_dir=tmp_path, extra_suites=[EDGE_SUITE])
    con = duckdb.connect()
    con.register("t_frame", frame.to_arrow())
    con.execute("create table t as select * from t_frame")
    engine = DuckDBEngine(con, ["t"])
    compiled = [compile_expectation(e["type"], e["kwargs"]) for e in EDGE_SUITE["expectations"]
                if e["kwargs"].get("column") != "zz"]
    assert engine._grouped_columns("t", compiled) == {'"a"', '"b"', '"c"', '"flag"'}
    assert_same(gx, validate_stage_duckdb("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[EDGE_SUITE]))


def test_duplicates_counted_in_full_and_the_first_shown(gx_loaded, tmp_path):
    """Uniqueness: every row of a duplicated value is counted (nulls left out where GX leaves them out), and the
    failing rows shown are the first ones in table order, capped."""
    # 30 rows: b repeats on rows 3, 7, 20 (value "d") and 11, 12 (value "e"); null b never counts
    b = [f"v{i}" for i in range(30)]
    for i in (7, 20):
        b[i] = b[3]
    b[12] = b[11]
    b[25] = b[26] = None
    frame = pl.DataFrame({"subject_id": [f"01-{i:03d}" for i in range(30)], "b": b, "c": [i % 2 for i in range(30)]})
    suite = {"name": "dups", "meta": {"table": "t"}, "expectations": [
        expectation("expect_column_values_to_be_unique", "b unique", column="b"),
        expectation("expect_compound_columns_to_be_unique", "b, c unique", column_list=["b", "c"]),
        expectation("expect_column_values_to_be_between", "c <= 0", column="c", max_value=0),
    ]}
    gx = validate_stage("marts", {"t": frame}, suites_dir=tmp_path, extra_suites=[suite], max_findings_per_expectation=2)
    con = duckdb.connect()
    con.register("t_frame", frame.to_arrow())
    con.execute("create table t as select * from t_frame")
    db = validate_stage_duckdb("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[suite],
                               max_findings_per_expectation=2)
    assert_same(gx, db)
    counts = dict(zip(db.results["rule"].to_list(), db.results["unexpected_count"].to_list()))
    # b: rows 3, 7, 20, 11, 12; (b, c): 3 (c=1), 7 (1) duplicate, 20 (c=0) not; 11 (1) and 12 (0) not
    assert counts == {"b unique": 5, "b, c unique": 2, "c <= 0": 15}
    shown = db.findings.filter(pl.col("rule") == "b unique")["subject_id"].to_list()
    assert sorted(shown) == ["01-003", "01-007"]
    assert sorted(db.findings.filter(pl.col("rule") == "c <= 0")["subject_id"].to_list()) == ["01-001", "01-003"]


def test_pair_with_one_value_missing_crashes_gx_on_arrow_pandas(gx_loaded, tmp_path):
    """GX 1.24 on Arrow-backed pandas cannot compare a pair where one value is missing unless ignore_row_if is
    either_value_is_missing ("boolean value of NA is ambiguous"): the pandas path reports the check as an error
    it could not run (counted as failed, so it still gates); SQL counts the rows (missing one side = failing), as
    GX documents. Our suites use either_value_is_missing."""
    suite = {"name": "pair", "meta": {"table": "t"}, "expectations": [
        expectation("expect_column_pair_values_a_to_be_greater_than_b", "e > d (neither)", column_A="e",
                    column_B="d", ignore_row_if="neither")]}
    frame = edge_frame()
    gx = validate_stage("marts", {"t": frame}, suites_dir=tmp_path, extra_suites=[suite])
    assert gx.results["status"].to_list() == ["error"] and "NA is ambiguous" in gx.results["note"][0]
    assert gx.errors == 1
    con = duckdb.connect()
    con.register("t", frame.to_arrow())
    db = validate_stage_duckdb("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[suite])
    assert db.results.select("status", "element_count", "unexpected_count").rows() == [("failed", 8, 6)]


def test_every_expectation_type_of_the_suites_is_compiled():
    from warehouse.validate import load_suites

    used = {e.configuration.type for stage in ("raw", "staging", "marts") for s in load_suites(stage)
            for e in s.expectations}
    used |= {"expect_column_values_to_match_regex"}  # generated raw suites
    assert used <= set(SQL_EXPECTATIONS)
    with pytest.raises(Exception, match="not compiled|expectation type"):
        compile_expectation("expect_column_kl_divergence_to_be_less_than", {"column": "a"})


def test_an_expectation_not_compiled_still_runs_with_gx(gx_loaded, tmp_path):
    suite = {"name": "other", "meta": {"table": "t"}, "expectations": [
        expectation("expect_column_value_lengths_to_be_between", "b is short", column="b", max_value=2)]}
    con = duckdb.connect()
    con.register("t", edge_frame().to_arrow())
    db = validate_stage_duckdb("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[suite])
    assert db.results["status"].to_list() == ["failed"] and db.findings["subject_id"].to_list() == ["01-007"]


# --------------------------------------------------------------------------------------------- the demo build


def test_same_findings_from_both_paths_on_the_demo_build(injected_build):
    b = injected_build
    raw, meta = read_raw(b.data_dir, b.export_id)
    con = duckdb.connect()
    views = parquet_views(con, {f: b.data_dir / "raw" / b.export_id / f"{f}.parquet" for f in raw})
    raw_gx, raw_db = validate_stage("raw", raw, meta), validate_stage_duckdb("raw", con, views, meta)
    assert_same(raw_gx, raw_db)
    assert raw_db.findings.height > 100
    meta = {k: v for k, v in meta.items() if k in META_TABLES}
    with duckdb.connect(str(b.build_file), read_only=True) as con:
        src = tables_of_schema(b.build_file, "src")
        stg_gx = validate_stage("staging", src, meta)
        stg_db = validate_stage_duckdb("staging", con, [f"src.{t}" for t in src], meta)
        assert_same(stg_gx, stg_db)
        assert stg_db.findings.filter(pl.col("suite") == "staging_chk_pe_ne_rate_constant").height > 0  # derived
        # the marts stage on the relations the build gives it (main plus what its suites reconcile with)
        relations = marts_relations(b.build_file)
        marts = {t.split(".")[-1]: con.sql(f"select * from {t}").pl() for t in relations}
        mart_gx = validate_stage("marts", marts)
        mart_db = validate_stage_duckdb("marts", con, relations)
        assert_same(mart_gx, mart_db)
        assert {r for r in mart_db.results["suite"].to_list() if r.startswith("marts_chk_")}  # derived ran
        # the findings the build stored are the findings of either path (besides those of the checks the build adds
        # to the suites' own: vanished records at raw, the ADaM conformance suite at marts)
        both = pl.concat([raw_db.findings, stg_db.findings, mart_db.findings])
        stored = b.findings.filter(~pl.col("suite").is_in(["raw_vanished", "adam_conformance"]))
        assert sorted(both["finding_id"].to_list()) == sorted(stored["finding_id"].to_list())
        # the read-only build file is left as it was: derived tables were registered frames, now gone
        assert not con.sql("select * from duckdb_views() where view_name like '__validate%'").fetchall()


# --------------------------------------------------------------------------------------------- a million rows


def test_a_rule_failing_on_a_million_rows_is_counted_in_full_and_capped(gx_loaded, tmp_path):
    suite = {"name": "big", "meta": {"table": "big"}, "expectations": [
        expectation("expect_column_values_to_be_between", "hr in [20, 220]", column="hr", min_value=20, max_value=220),
        expectation("expect_column_values_to_be_unique", "subject unique", column="subject_id"),
        expectation("expect_column_values_to_not_be_null", "site given", column="site_id"),
    ]}
    con = duckdb.connect()
    con.execute("create table big as select 'S' || (i % 500000) as subject_id, 'site_0' || (i % 5) as site_id, "
                "'e1' as event, i::integer as repeat_instance, 1000 + i % 7 as hr from range(1000000) t(i)")
    assert use_pushdown(con, ["big"]) and not use_pushdown(con, ["big"], threshold=2_000_000)
    from warehouse.validate.pushdown import DuckDBEngine

    # hr and site_id have few values: counted by value; the counts below come from that path
    compiled = [compile_expectation(e["type"], e["kwargs"]) for e in suite["expectations"]]
    assert DuckDBEngine(con, ["big"])._grouped_columns("big", compiled) == {'"hr"', '"site_id"'}
    v = validate_stage_duckdb("staging", con, ["big"], suites_dir=tmp_path, extra_suites=[suite],
                              max_findings_per_expectation=100)
    counts = dict(zip(v.results["rule"].to_list(), v.results["unexpected_count"].to_list()))
    assert counts == {"hr in [20, 220]": 1_000_000, "subject unique": 1_000_000, "site given": 0}
    hr = v.findings.filter(pl.col("rule") == "hr in [20, 220]")
    assert hr.height == 100 and hr["repeat_instance"].to_list() == [str(i) for i in range(100)]  # table order
    assert v.findings.filter(pl.col("rule") == "subject unique").height == 100
    assert v.errors == 2 and not v.success


def test_the_threshold_rule_picks_the_engine(gx_loaded, tmp_path):
    con = duckdb.connect()
    con.register("t_frame", edge_frame().to_arrow())
    con.execute("create table t as select * from t_frame")
    small = validate_stage_auto("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[EDGE_SUITE], threshold=1_000)
    big = validate_stage_auto("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[EDGE_SUITE], threshold=5)
    default = validate_stage_auto("marts", con, ["t"], suites_dir=tmp_path, extra_suites=[EDGE_SUITE])
    assert_same(small, big)
    engines = {json.dumps(r.meta.get("engine")) for _, r in big.gx_results}
    assert engines == {json.dumps("duckdb (warehouse.validate.pushdown)")}
    assert all("engine" not in (r.meta or {}) for _, r in small.gx_results)
    # the default threshold (0): any table with a row is validated in DuckDB, a small one too
    assert {json.dumps(r.meta.get("engine")) for _, r in default.gx_results} == engines
    assert_same(small, default)


def test_hourly_hemodynamics_in_sql_equal_polars_ties_included():
    """chk_hemo_hourly computed in DuckDB (the pushdown path: the readings stay in DuckDB) equals the Polars builder,
    on hand-made readings with both kinds of tie."""
    from warehouse.validate.derived import chk_hemo_hourly
    from warehouse.validate.pushdown import DuckDBEngine

    keys = {"subject_id": pl.Utf8, "site_id": pl.Utf8, "event": pl.Utf8, "repeat_instance": pl.Int32,
            "hd_dt_hrs": pl.Float64}
    readings = pl.DataFrame(
        [  # 01-001: H0 at -0.2 (before H0), H1 midway between 0.5 and 1.5 (the later wins), H2 two readings at 2.0
           # (the last in table order wins), H3 nearest is 3.4 (not 2.0), and no H4: the last reading is at 3.4
            ("01-001", "site_01", "e1", 1, -0.2), ("01-001", "site_01", "e2", 2, 0.5), ("01-001", "site_01", "e3", 3, 1.5),
            ("01-001", "site_01", "e4", 4, 2.0), ("01-001", "site_01", "e5", 5, 2.0), ("01-001", "site_01", "e6", 6, 3.4),
            ("01-002", "site_01", "e1", 1, None), ("01-002", "site_01", "e2", 2, 0.9),  # no study time: not placed
            (None, "site_01", "e1", 9, 1.0)],  # no subject: not placed
        schema=keys, orient="row")
    with duckdb.connect() as con:
        engine = DuckDBEngine(con, {})
        engine.add_table("hemodynamics", readings)
        in_sql = engine.derived("chk_hemo_hourly", {"last_hour": 24})
        engine.close()
    expected = [("01-001", "e1", "1", 0, -0.2, -0.2), ("01-001", "e3", "3", 1, 1.5, 0.5),
                ("01-001", "e5", "5", 2, 2.0, 0.0), ("01-001", "e6", "6", 3, 3.4, 0.4),
                ("01-002", "e2", "2", 0, 0.9, 0.9)]
    got = [(s, e, r, h, t, round(o, 6)) for s, _, e, r, h, t, o in in_sql.rows()]
    assert got == expected
    assert in_sql.equals(chk_hemo_hourly({"hemodynamics": readings}, {"last_hour": 24}))
