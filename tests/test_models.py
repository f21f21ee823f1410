"""The SQL model runner: dependencies read by sqlglot, topological order, errors naming files, comments."""

from pathlib import Path

import duckdb
import pytest

from warehouse.models import ModelError, discover_models, execution_order, parse_header, run_models
from warehouse.resources import sql_dir


def write(root: Path, layer: str, name: str, sql: str) -> Path:
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    write(tmp_path, "staging", "stg_vitals", "-- description: Vitals.\nselect subject_id, mapv from src.vitals")
    # `stg_vitals` as a CTE name must not be read as a dependency on itself or another table
    write(
        tmp_path,
        "intermediate",
        "int_map_mean",
        "with stg_vitals_cte as (select * from stg_vitals)\n"
        "select subject_id, avg(mapv) as map_mean from stg_vitals_cte group by subject_id",
    )
    write(
        tmp_path,
        "marts",
        "adsl_like",
        "-- description: One row per subject.\n-- grain: subject_id\n-- columns:\n"
        "--   subject_id: Subject\n--   map_mean: Mean MAP (mmHg)\n"
        "select v.subject_id, m.map_mean from (select distinct subject_id from stg_vitals) v "
        "join int_map_mean m using (subject_id)",
    )
    return tmp_path


def test_dependencies_ignore_cte_names(project):
    models = discover_models(project)
    assert models["int_map_mean"].depends_on == {"stg_vitals"}
    assert models["adsl_like"].depends_on == {"stg_vitals", "int_map_mean"}
    assert models["stg_vitals"].depends_on == {"src.vitals"}


def test_order_is_topological(project):
    order = execution_order(discover_models(project), sources={"vitals"})
    assert order.index("stg_vitals") < order.index("int_map_mean") < order.index("adsl_like")


def test_unknown_table_names_the_file(project):
    path = write(project, "marts", "broken", "select * from no_such_table")
    with pytest.raises(ModelError) as err:
        execution_order(discover_models(project), sources={"vitals"})
    assert str(path) in str(err.value) and "no_such_table" in str(err.value)


def test_cycle_names_the_files(tmp_path):
    a = write(tmp_path, "intermediate", "a", "select * from b")
    b = write(tmp_path, "intermediate", "b", "select * from a")
    with pytest.raises(ModelError) as err:
        execution_order(discover_models(tmp_path), sources=set())
    assert "cycle" in str(err.value) and str(a) in str(err.value) and str(b) in str(err.value)


def test_not_a_select_is_refused(tmp_path):
    write(tmp_path, "marts", "bad", "delete from adsl")
    with pytest.raises(ModelError, match="one SELECT"):
        discover_models(tmp_path)


def test_header_block():
    header = parse_header(
        "-- description: One row per subject.\n-- materialized: view\n-- tags: a, b\n-- columns:\n"
        "--   usubjid: Unique subject id\n--   age: Age\nselect 1"
    )
    assert header["description"] == "One row per subject."
    assert header["materialized"] == "view"
    assert header["columns"] == {"usubjid": "Unique subject id", "age": "Age"}


def test_run_builds_tables_with_comments(project, tmp_path):
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    con.execute("create schema src")
    con.execute("create table src.vitals as select * from (values ('a', 60), ('a', 80), ('b', 70)) t(subject_id, mapv)")
    runs = run_models(con, project)
    assert [r.name for r in runs][-1] == "adsl_like"
    assert con.execute("select * from main.adsl_like order by 1").fetchall() == [("a", 70.0), ("b", 70.0)]
    assert con.execute("select comment from duckdb_tables() where table_name = 'adsl_like'").fetchone()[0] == (
        "One row per subject."
    )
    comments = dict(
        con.execute("select column_name, comment from duckdb_columns() where table_name = 'adsl_like'").fetchall()
    )
    assert comments["map_mean"] == "Mean MAP (mmHg)"
    # layers land in their schemas
    assert con.execute("select table_schema from information_schema.tables where table_name = 'int_map_mean'").fetchone()[0] == "intermediate"


def test_project_models_parse_and_order():
    """The project's own SQL: every model parses, and only reads models or the staged `src` forms."""
    models = discover_models(sql_dir())
    assert "adsl" in models and models["adsl"].layer == "marts"
    sources = {"randomisation", "demographics", "study_drug", "end_of_study", "labs", "sofa", "vasopressors",
               "build_info", "randomisation_list", "pe_challenge", "hemodynamics", "ventilation",
               "adverse_events", "fluids", "eligibility", "study_parameters", "typing_failures"}
    order = execution_order(models, sources)
    assert order.index("stg_randomisation") < order.index("adsl")


def test_a_mart_may_share_its_name_with_a_staged_form(tmp_path):
    """`src.vitals` is the staged form; `vitals` the mart built from it: no cycle."""
    write(tmp_path, "staging", "stg_vitals", "select * from src.vitals")
    write(tmp_path, "marts", "vitals", "select * from stg_vitals")
    assert execution_order(discover_models(tmp_path), sources={"vitals"}) == ["stg_vitals", "vitals"]
