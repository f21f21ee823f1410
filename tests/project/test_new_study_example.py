"""docs/new-study.md's worked example, end to end on the clinical-trial-1 export: a project from `warehouse init`,
a mart reading a `[parameters]` key from src.study_parameters, and a staging check whose bounds are `[parameters]`
keys; a direct build publishes the mart and the check's findings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from warehouse.build import BuildRequest, run_build
from warehouse.project import init_project
from warehouse.resources import PROJECT_ENV, use_project

pytestmark = pytest.mark.slow

PARAMETERS = """
[parameters]
bmi_obese = 30.0
weight_min_kg = 40
weight_max_kg = 180
"""
MART = """-- description: One row per subject: BMI and obesity (BMI >= the study's bmi_obese).
-- materialized: table
-- grain: subject_id
-- columns:
--   subject_id: Subject
--   bmi: Body-mass index (kg/m2)
--   obese: Y when the BMI is at or above bmi_obese
select
    d.subject_id,
    round(d.weight / ((d.height / 100) ^ 2), 1) as bmi,
    case when d.weight / ((d.height / 100) ^ 2) >= p.bmi_obese then 'Y' else 'N' end as obese
from stg_demographics as d
cross join src.study_parameters as p
"""
SUITE = {
    "name": "staging_weight_range",
    "meta": {"table": "demographics", "description": "weight within the study's plausible range"},
    "expectations": [{
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "weight", "min_value": {"study": "weight_min_kg"},
                   "max_value": {"study": "weight_max_kg"}},
        "meta": {"severity": "warning", "rule": "weight within the plausible adult range"},
    }],
}


@pytest.fixture
def restore_project():
    before = os.environ.get(PROJECT_ENV)
    yield
    if before is None:
        os.environ.pop(PROJECT_ENV, None)
    else:
        os.environ[PROJECT_ENV] = before


def test_a_mart_and_a_check_read_the_projects_own_parameters(shared_fixtures, tmp_path, restore_project):
    export = shared_fixtures / "redcap" / "clinical-trial-1"
    project = tmp_path / "ct1"
    init_project(export, project)
    with (project / "study.toml").open("a", encoding="utf-8") as fh:
        fh.write(PARAMETERS)
    (project / "sql" / "marts" / "bmi.sql").write_text(MART, encoding="utf-8")
    (project / "expectations" / "staging" / "weight_range.json").write_text(json.dumps(SUITE), encoding="utf-8")
    use_project(project)
    result = run_build(BuildRequest(data_dir=project / "data", export=export))
    assert result.published and result.errors == 0
    with duckdb.connect(str(result.published), read_only=True) as con:
        assert con.sql("select bmi_obese, weight_min_kg from src.study_parameters").fetchall() == [(30.0, 40)]
        n, obese, wrong = con.sql("select count(*), count(*) filter (where obese = 'Y'), "
                                  "count(*) filter (where (bmi >= 30) <> (obese = 'Y')) from bmi").fetchall()[0]
        assert n == 500 and 0 < obese < 500 and wrong == 0
        findings = con.sql("select subject_id, value from findings where field = 'weight' order by 1").fetchall()
    assert findings == [("344", "36"), ("429", "189")]
