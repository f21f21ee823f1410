"""Item 2: compile before run: unknown columns and tables fail with file, line and column; types inferred."""

from pathlib import Path

import duckdb
import pytest

from model_fixtures import SRC, small_project, write
from warehouse.transform.compile import CompileError, compile_models, compile_sql, find_source_database
from warehouse.transform.testing import load_src_schema
from warehouse.transform.models import ModelError


def test_types_are_inferred_through_the_graph(tmp_path: Path):
    compiled = compile_sql(SRC, small_project(tmp_path))
    assert compiled.compiled["stg_vitals"].columns == {
        "subject_id": "VARCHAR", "vsdtm": "TIMESTAMP", "vsdtm_hrs": "DOUBLE", "map_mmhg": "DOUBLE", "hr": "BIGINT",
        "position": "VARCHAR"}
    assert compiled.compiled["vitals_mart"].columns == {"USUBJID": "VARCHAR", "MAPMEAN": "DOUBLE", "HRMAX": "BIGINT"}
    assert compiled.order.index("stg_vitals") < compiled.order.index("vitals_mart")


def test_unknown_column_names_file_line_and_column(tmp_path: Path):
    small_project(tmp_path)
    path = write(tmp_path, "intermediate", "int_map_mean",
                 "-- description: x\nselect subject_id,\n       avg(mapp) as map_mean\nfrom stg_vitals group by 1")
    with pytest.raises(CompileError) as err:
        compile_sql(SRC, tmp_path)
    problems = err.value.problems
    assert [(p.path, p.line, p.col) for p in problems[:1]] == [(path, 3, 12)]
    assert "unknown column 'mapp'" in problems[0].message and "did you mean map_mmhg" in problems[0].message
    # the mart reading the failed model is reported as not compiled, not as a second error of its own
    assert "vitals_mart (after int_map_mean)" in str(err.value)


def test_unknown_column_of_a_named_source_or_cte(tmp_path: Path):
    small_project(tmp_path)
    path = write(tmp_path, "marts", "vitals_mart",
                 "with m as (select subject_id, map_mean from int_map_mean)\n"
                 "select m.subject_id, m.map_max, h.hr_min\nfrom m join int_hr_max as h using (subject_id)")
    with pytest.raises(CompileError) as err:
        compile_sql(SRC, tmp_path)
    found = {(p.line, p.col, p.message.split(" (")[0]) for p in err.value.problems}
    assert (2, 24, "unknown column 'map_max' in m") in found
    assert (2, 35, "unknown column 'hr_min' in intermediate.int_hr_max") in found
    assert all(p.path == path for p in err.value.problems)


def test_unknown_staged_column_and_table(tmp_path: Path):
    write(tmp_path, "staging", "stg_vitals", "select subject_id, vs_dtm from src.vitals")
    with pytest.raises(CompileError, match=r"stg_vitals.sql:1:20: unknown column 'vs_dtm'"):
        compile_sql(SRC, tmp_path)
    write(tmp_path, "staging", "stg_vitals", "select subject_id\nfrom src.vitalz")
    with pytest.raises(ModelError, match=r"stg_vitals.sql:2:\d+: reads unknown table\(s\) src.vitalz"):
        compile_sql(SRC, tmp_path)


def test_ambiguous_column(tmp_path: Path):
    small_project(tmp_path)
    write(tmp_path, "marts", "vitals_mart",
          "select m.subject_id, map_mean, hr_max, subject_id as s2 from int_map_mean as m "
          "join int_hr_max as h on m.subject_id = h.subject_id")
    with pytest.raises(CompileError, match="ambiguous column 'subject_id'"):
        compile_sql(SRC, tmp_path)


def test_grain_must_be_output_columns(tmp_path: Path):
    small_project(tmp_path)
    write(tmp_path, "marts", "vitals_mart", "-- description: x\n-- grain: USUBJID\nselect subject_id from int_hr_max")
    with pytest.raises(CompileError, match=r"vitals_mart.sql:2: grain column 'USUBJID' is not an output column"):
        compile_sql(SRC, tmp_path)


def test_stale_column_description_is_a_warning(tmp_path: Path):
    small_project(tmp_path)
    write(tmp_path, "intermediate", "int_hr_max",
          "-- columns:\n--   hr_peak: gone\nselect subject_id, max(hr) as hr_max from stg_vitals group by 1")
    compiled = compile_sql(SRC, tmp_path)
    assert any("hr_peak" in w for w in compiled.warnings)


def test_duckdb_binder_errors_are_reported_with_the_line(tmp_path: Path):
    small_project(tmp_path)
    write(tmp_path, "intermediate", "int_hr_max",
          "select subject_id,\n  max(hr) + [1, 2] as hr_max\nfrom stg_vitals group by 1")
    with pytest.raises(CompileError) as err:
        compile_sql(SRC, tmp_path)
    assert err.value.problems[0].path.name == "int_hr_max.sql" and err.value.problems[0].line == 2


def test_the_project_compiles_against_the_src_snapshot():
    compiled = compile_sql(load_src_schema())
    assert len(compiled.compiled) == len(compiled.order) >= 28
    assert compiled.compiled["adeff"].columns["AVAL"] == "DOUBLE"
    assert compiled.warnings == []


def test_snapshot_matches_the_demo_build(demo_build):
    from warehouse.transform.compile import source_schema_of

    assert source_schema_of(demo_build.published) == load_src_schema(), (
        "sql/src_schema.json is stale: `warehouse test --update-schema` after a demo build"
    )


def test_compile_models_reads_the_build_and_writes_nothing(demo_build):
    build = demo_build.published
    before = build.stat().st_mtime_ns
    models = compile_models(build)
    assert [m.name for m in models][-1] in {"adeff", "adae", "adsl", "adtte", "hemodynamics"}
    assert build.stat().st_mtime_ns == before


def test_find_source_database(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="warehouse build"):
        find_source_database(tmp_path)
    (tmp_path / "builds").mkdir()
    duckdb.connect(str(tmp_path / "builds" / "a.duckdb")).close()
    (tmp_path / "builds" / "b.duckdb.building").write_text("")
    assert find_source_database(tmp_path).name == "a.duckdb"


def forget_in_memory_caches() -> None:
    """What a new process starts with: nothing parsed or compiled in memory."""
    import warehouse.transform.compile as compile_module
    import warehouse.transform.models as models_module

    models_module._AST_CACHE.clear()
    models_module._TABLE_SOURCES.clear()
    compile_module._LAST.clear()


def test_the_compile_cache_gives_what_the_compile_gives_lineage_included(tmp_path: Path):
    from warehouse.transform.lineage import Lineage

    root, cache = small_project(tmp_path / "sql"), tmp_path / "cache"
    forget_in_memory_caches()
    cold = compile_sql(SRC, root, cache)
    assert not cold.from_cache and len(list(cache.glob("compile-v1-*.json"))) == 1
    cold_lineage = Lineage(cold).mart_lineage()
    forget_in_memory_caches()
    warm = compile_sql(SRC, root, cache)
    assert warm.from_cache
    assert models_module_ast_cache() == {}  # the parse cache answered: nothing was parsed
    assert warm.order == cold.order and warm.warnings == cold.warnings
    assert {n: u.columns for n, u in warm.compiled.items()} == {n: u.columns for n, u in cold.compiled.items()}
    assert list(warm.compiled["vitals_mart"].columns) == ["USUBJID", "MAPMEAN", "HRMAX"]  # column order kept
    assert {m: (warm.models[m].depends_on, warm.models[m].reference_positions) for m in warm.order} == {
        m: (cold.models[m].depends_on, cold.models[m].reference_positions) for m in cold.order}
    # the qualified SELECT is made again on demand, and gives the same lineage
    warm_lineage = Lineage(warm).mart_lineage()
    assert warm_lineage.sort(warm_lineage.columns).equals(cold_lineage.sort(cold_lineage.columns))
    assert ("vitals_mart", "MAPMEAN", "intermediate.int_map_mean", "map_mean") in {
        (r["table_name"], r["column_name"], r["upstream_table"], r["upstream_column"])
        for r in warm_lineage.to_dicts()}


def models_module_ast_cache() -> dict:
    import warehouse.transform.models as models_module

    return dict(models_module._AST_CACHE)


def test_a_failing_compile_is_never_cached_and_a_changed_model_is_compiled_again(tmp_path: Path):
    root, cache = small_project(tmp_path / "sql"), tmp_path / "cache"
    forget_in_memory_caches()
    compile_sql(SRC, root, cache)
    assert len(list(cache.glob("compile-v1-*.json"))) == 1
    # the same files with one column misspelt: a new key, compiled, and the error names file, line and column
    path = write(root, "intermediate", "int_map_mean",
                 "select subject_id,\n  avg(map_mmhgg) as map_mean from stg_vitals group by subject_id")
    for _ in range(2):  # also from a new process with the caches of the good and the failed attempt on disk
        forget_in_memory_caches()
        with pytest.raises(CompileError) as err:
            compile_sql(SRC, root, cache)
        assert [(p.path, p.line, p.col) for p in err.value.problems][:1] == [(path, 2, 7)]
        assert "unknown column 'map_mmhgg'" in str(err.value)
    assert len(list(cache.glob("compile-v1-*.json"))) == 1  # the failed compile wrote nothing
    # an unchanged model but a changed src schema: compiled again, and the missing column is reported
    forget_in_memory_caches()
    small_project(root)
    src = {**SRC, "vitals": {k: v for k, v in SRC["vitals"].items() if k != "mapv"}}
    with pytest.raises(CompileError, match=r"stg_vitals.sql:\d+:\d+: unknown column 'mapv'"):
        compile_sql(src, root, cache)


def test_a_damaged_cache_entry_is_recomputed(tmp_path: Path):
    root, cache = small_project(tmp_path / "sql"), tmp_path / "cache"
    forget_in_memory_caches()
    cold = compile_sql(SRC, root, cache)
    for entry in cache.glob("*.json"):
        entry.write_text("{not json", encoding="utf-8")
    forget_in_memory_caches()
    again = compile_sql(SRC, root, cache)
    assert not again.from_cache
    assert {n: u.columns for n, u in again.compiled.items()} == {n: u.columns for n, u in cold.compiled.items()}
    forget_in_memory_caches()
    assert compile_sql(SRC, root, cache).from_cache  # rewritten by the recompute


def test_a_build_file_uses_the_caches_in_its_data_dir(tmp_path: Path):
    from warehouse.transform.compile import build_cache_dir

    assert build_cache_dir(tmp_path / "builds" / "x.duckdb") == tmp_path / "cache"
    assert build_cache_dir(tmp_path / "unblinded" / "builds" / "x.duckdb") == tmp_path / "unblinded" / "cache"
    assert build_cache_dir(tmp_path / "warehouse.duckdb") is None
