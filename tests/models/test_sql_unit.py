"""Unit tests for models: given small input tables, expect an output table. The YAML cases live beside the models
(`sql/<layer>/<model>.yml` of the demo project); every one of them is collected here."""


import pytest

from warehouse.resources import demo_project
from warehouse.transform.cases import (
    case_files,
    check_case,
    load_cases,
    project_src_schema,
)
from warehouse.transform.models import ModelError
from warehouse.transform.testing import UnitContext, assert_rows, run_model_on

CASE_FILES = case_files(demo_project() / "sql")
CASES = [case for path in CASE_FILES for case in load_cases(path)]


def test_every_case_file_is_collected():
    assert len(CASE_FILES) >= 10 and all(p.with_suffix(".sql").is_file() for p in CASE_FILES), CASE_FILES


@pytest.fixture(scope="module")
def context() -> UnitContext:
    schema, _, _ = project_src_schema(demo_project(), None)  # as `warehouse test` types the cases
    return UnitContext.of(schema, sql_root=demo_project() / "sql")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.path.stem}: {c.name}" for c in CASES])
def test_yaml_case(case, context):
    check_case(case, context)


def test_python_style_int_subject_times_from_three_staging_tables():
    rows = run_model_on("int_subject_times", {
        "stg_randomisation": [{"subject_id": "S1", "randdtm": "2024-03-01 10:00:00"}],
        "stg_end_of_study": [{"subject_id": "S1", "dthdtm_hrs": None, "last_contact_dt": "2024-03-29"}],
        "stg_study_drug": [
            {"subject_id": "S1", "exstdtm_hrs": 0.5, "exendtm_hrs": 20.0},
            {"subject_id": "S1", "exstdtm_hrs": 30.0, "exendtm_hrs": None},
        ],
    })
    assert_rows(rows, [{"subject_id": "S1", "death_hrs": None, "trtstart_hrs": 0.5, "trtend_hrs": 30.0,
                        "lastcontact_days": 28, "randdtm": "2024-03-01T10:00:00"}])


def test_inputs_not_given_are_empty_tables():
    assert run_model_on("int_pe_response", {}) == []


def test_helpful_errors():
    with pytest.raises(ModelError, match="no column 'map_befor' \\(did you mean map_before"):
        run_model_on("int_pe_response", {"stg_pe_challenge": [{"subject_id": "S1", "map_befor": 1}]})
    with pytest.raises(ModelError, match="no model and no staged form"):
        run_model_on("int_pe_response", {"stg_nothing": [{}]})


def test_assert_rows_reports_the_difference():
    with pytest.raises(AssertionError) as err:
        assert_rows([{"a": 1, "b": 2.0}], [{"a": 1, "b": 2.5}])
    assert "missing:    {a: 1, b: 2.5}" in str(err.value) and "unexpected: {a: 1, b: 2.0}" in str(err.value)
    assert_rows([{"a": 1, "b": 2.0 + 1e-12}], [{"b": 2.0}])
    with pytest.raises(AssertionError, match="row 1"):
        assert_rows([{"a": 2}, {"a": 1}], [{"a": 1}, {"a": 2}], ordered=True)


def test_load_cases_checks_keys(tmp_path):
    (tmp_path / "x.yml").write_text("model: m\ngiven: {}\nexpct: {}\n")
    with pytest.raises(ModelError, match="x.yml:1: case 1 lacks 'expect'"):
        load_cases(tmp_path / "x.yml")
