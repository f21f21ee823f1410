"""Item 3: selectors, failures that stop only their descendants, per-model timing in the summary."""

from pathlib import Path

import duckdb
import pytest

from model_fixtures import small_project, write
from warehouse.transform.models import ModelError, discover_models
from warehouse.transform.order import execution_order, select_models
from warehouse.transform.runner import RunTracker, run_models, run_project


@pytest.fixture()
def project(tmp_path: Path):
    root = small_project(tmp_path / "sql")
    models = discover_models(root)
    order = execution_order(models, {"vitals", "build_info"})
    return root, models, order


def build_db(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("create schema src")
    con.execute("create table src.vitals as select * from (values ('a', 60.0, 80), ('a', 80.0, 90), ('b', 70.0, 100)) "
                "t(subject_id, mapv, hr)")
    con.execute("alter table src.vitals add column vs_dt timestamp")
    con.execute("alter table src.vitals add column vs_dt_hrs double")
    con.execute("alter table src.vitals add column pos_decod varchar")
    con.execute("create table src.build_info as select 'ST' as study_id")
    return con


def test_selectors(project):
    _, models, _ = project
    assert select_models(models, "int_map_mean") == {"int_map_mean"}
    assert select_models(models, "int_map_mean+") == {"int_map_mean", "vitals_mart"}
    assert select_models(models, "+int_map_mean") == {"int_map_mean", "stg_vitals"}
    assert select_models(models, "+vitals_mart") == set(models)
    assert select_models(models, "stg_vitals+") == set(models)
    assert select_models(models, ["int_hr_max", "int_map_mean"]) == {"int_hr_max", "int_map_mean"}
    assert select_models(models, "int_hr_max,int_map_mean") == {"int_hr_max", "int_map_mean"}
    assert select_models(models, "tag:marts") == {"vitals_mart"}
    assert select_models(models, "layer:intermediate") == {"int_hr_max", "int_map_mean"}
    assert select_models(models, None) == set(models)
    with pytest.raises(ModelError, match="no model named 'int_map_men'; did you mean int_map_mean"):
        select_models(models, "int_map_men+")


def test_selected_run_leaves_the_rest(project, tmp_path):
    _, models, order = project
    con = build_db(tmp_path / "w.duckdb")
    result = run_project(con, models, order, "+int_map_mean")
    assert [r.name for r in result.runs] == ["stg_vitals", "int_map_mean"]
    assert set(result.not_selected) == {"int_hr_max", "vitals_mart"}
    assert con.execute("select * from intermediate.int_map_mean order by 1").fetchall() == [("a", 70.0), ("b", 70.0)]


def test_a_failure_stops_its_descendants_only(project, tmp_path):
    root, _, _ = project
    write(root, "intermediate", "int_hr_max", "select subject_id, max(hr) / 'x' as hr_max from stg_vitals group by 1")
    models = discover_models(root)
    order = execution_order(models, {"vitals", "build_info"})
    con = build_db(tmp_path / "w.duckdb")
    result = run_project(con, models, order)
    assert list(result.failed) == ["int_hr_max"] and "int_hr_max.sql" in result.failed["int_hr_max"]
    assert result.skipped == {"vitals_mart": "int_hr_max"}
    assert {r.name for r in result.runs} == {"stg_vitals", "int_map_mean"}  # the independent model still ran
    summary = result.summary()
    assert "vitals_mart" in summary and "SKIPPED: upstream model int_hr_max failed" in summary
    assert "2 built" in summary and "1 failed, 1 skipped" in summary
    with pytest.raises(ModelError, match="not run because of them: vitals_mart"):
        result.raise_for_failures()
    with pytest.raises(ModelError, match="int_hr_max"):
        run_models(con, root)


def test_summary_has_per_model_timing(project, tmp_path):
    _, models, order = project
    result = run_project(build_db(tmp_path / "w.duckdb"), models, order)
    assert result.ok and len(result.runs) == 4
    lines = result.summary().splitlines()
    assert lines[0].split() == ["model", "relation", "rows", "seconds"]
    row = next(line for line in lines if line.startswith("vitals_mart"))
    assert row.split()[1:3] == ["main.vitals_mart", "2"] and float(row.split()[3]) >= 0


def test_tracker_for_an_orchestrator(project):
    _, models, order = project
    tracker = RunTracker([models[n] for n in order])
    done = []
    for name in order:
        model = models[name]
        if not tracker.should_run(model):
            continue
        if name == "stg_vitals":
            tracker.fail(model, RuntimeError("boom"))
        else:
            done.append(name)
    result = tracker.result()
    assert done == [] and result.failed == {"stg_vitals": "boom"}
    assert result.skipped == {"int_map_mean": "stg_vitals", "int_hr_max": "stg_vitals", "vitals_mart": "stg_vitals"}
