"""Item 2: compile before run: unknown columns and tables fail with file, line and column; types inferred."""

from pathlib import Path

import duckdb
import pytest

from model_fixtures import SRC, small_project, write
from warehouse.compile import CompileError, compile_models, compile_sql, find_source_database
from warehouse.model_testing import load_src_schema
from warehouse.models import ModelError


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
    from warehouse.compile import source_schema_of

    assert source_schema_of(demo_build.published) == load_src_schema(), (
        "tests/models/src_schema.json is stale: python -m warehouse.model_testing --dump-src-schema "
        "<build.duckdb> > tests/models/src_schema.json"
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
