"""Issue 16 item 4: study parameters are one typed row, read by column: a misspelt one fails compile."""

from pathlib import Path

import pytest

from warehouse.transform.compile import CompileError, compile_sql
from warehouse.transform.testing import load_src_schema, run_model_on
from warehouse.study import load_study


def write(root: Path, layer: str, name: str, sql: str) -> Path:
    (root / layer).mkdir(parents=True, exist_ok=True)
    path = root / layer / f"{name}.sql"
    path.write_text(sql, encoding="utf-8")
    return path


def test_a_misspelt_parameter_is_an_unknown_column_with_file_line_and_column(tmp_path: Path):
    path = write(tmp_path, "intermediate", "int_low_hr",
                 "-- description: x\nselect h.subject_id\nfrom src.hemodynamics as h, src.study_parameters\n"
                 "where h.hd_hr < study_parameters.bradycardia_hr_treshold")
    with pytest.raises(CompileError) as err:
        compile_sql(load_src_schema(), tmp_path)
    problem = err.value.problems[0]
    assert (problem.path, problem.line, problem.col) == (path, 4, 34)
    assert "unknown column 'bradycardia_hr_treshold'" in problem.message
    assert "bradycardia_hr_threshold" in problem.message  # did you mean
    assert f"{path.name}:4:34" in str(err.value)


def test_the_parameter_row_is_typed_and_says_what_the_study_file_says():
    study = load_study()
    columns = study.parameter_columns()
    assert columns["bradycardia_hr_threshold"] == (50.0, "DOUBLE")
    assert columns["bradycardia_min_readings"] == (1, "INTEGER")
    assert columns["teae_window_hours"] == (24.0, "DOUBLE")
    assert columns["ne_drug_code"] == ("1", "VARCHAR")
    assert columns["bradycardia_period"] == ("H0-H24", "VARCHAR")
    assert columns["hemo_hourly_last_hour"] == (24, "INTEGER")
    assert columns["map_ne_hours"] == ([0, 6, 12, 24], "INTEGER[]")
    for name, (lo, hi) in study.windows.items():
        assert columns[f"window_{name}_lo"] == (lo, "DOUBLE") and columns[f"window_{name}_hi"] == (hi, "DOUBLE")
    # the unit tests' src snapshot has the same columns and types
    assert load_src_schema()["study_parameters"] == {name: kind for name, (_, kind) in columns.items()}


def test_the_build_writes_one_row(tmp_path: Path):
    import duckdb
    from warehouse.build import BuildRequest
    from warehouse.stage.load import build_facts

    request = BuildRequest(data_dir=tmp_path, blinded=True)
    params = build_facts(request, "b", "e", None)["study_parameters"]
    assert params.height == 1
    with duckdb.connect() as con:
        con.register("p", params.to_arrow())
        types = dict(con.execute("select column_name, column_type from (describe p)").fetchall())
    assert load_src_schema()["study_parameters"] == types
    assert params.row(0, named=True)["teae_window_hours"] == 24.0


def test_the_ne_drug_code_comes_from_the_parameters():
    rows = run_model_on("stg_vasopressors", {
        "src.study_parameters": [{"ne_drug_code": "2"}],
        "src.vasopressors": [{"subject_id": "S1", "repeat_instance": 1, "vp_drug": "2", "vp_dt": "2024-03-01 10:00"},
                             {"subject_id": "S1", "repeat_instance": 2, "vp_drug": "1", "vp_dt": "2024-03-01 11:00"}],
    }, order_by=["repeat_instance"])
    assert [r["is_ne"] for r in rows] == [True, False]
