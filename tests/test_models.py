"""The SQL model runner: dependencies read by sqlglot, topological order, errors naming files, comments."""

from pathlib import Path

import duckdb
import pytest

from warehouse.transform.models import ModelError, discover_models, parse_header
from warehouse.transform.order import execution_order
from warehouse.transform.runner import run_models
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


# -- documenting a model: the same comments whichever way the runner is driven ------------------------------------


@pytest.fixture()
def described(tmp_path: Path) -> tuple[Path, Path]:
    """Models whose undescribed columns inherit from a staged form and from each other, and a staged file."""
    root = tmp_path / "sql"
    write(root, "staging", "stg_vitals",
          "-- description: Vitals.\n-- columns:\n--   hr: HR (bpm)\n--   temp:\n"
          "select subject_id, mapv, hr, temp, site_id from src.vitals")
    # reads the model and the staged form: the model's description of hr wins over the form's label
    write(root, "intermediate", "int_both",
          "select s.subject_id, s.hr, v.mapv, s.temp, v.spo2 as SpO2 from stg_vitals s join src.vitals v using (subject_id)")
    # a mart named like the staged form it is built from (main.vitals vs src.vitals)
    write(root, "marts", "vitals",
          "-- description: One row per reading.\n-- columns:\n--   MAPV: Mean MAP\n"
          "select v.subject_id, v.mapv, i.hr, v.temp, v.spo2, 1 as undescribed from src.vitals v "
          "join int_both i using (subject_id)")
    database = tmp_path / "build.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("create schema src")
        con.execute("create table src.vitals as select * from (values ('a', 60, 80, 37.0, 97, 'S1'), "
                    "('b', 70, 90, 36.5, 99, 'S1')) t(subject_id, mapv, hr, temp, spo2, site_id)")
        for column, text in {"subject_id": "Record id", "mapv": "Mean arterial pressure (mmHg)", "hr": "Heart rate",
                             "temp": "Temperature", "spo2": "SpO2 (%)"}.items():
            con.execute(f"comment on column src.vitals.{column} is '{text}'")
    return root, database


def comments_of(database: Path) -> dict[str, str | None]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute("select schema_name || '.' || table_name || '.' || column_name, comment from duckdb_columns() "
                           "where schema_name in ('staging', 'intermediate', 'main') and not internal").fetchall()
        rows += con.execute("select schema_name || '.' || table_name, comment from duckdb_tables() "
                            "where schema_name in ('staging', 'intermediate', 'main')").fetchall()
    return dict(rows)


def test_column_descriptions_are_inherited_from_what_a_model_reads(described, tmp_path):
    import shutil

    from warehouse.transform.compile import compile_model_set, source_schema_of
    from warehouse.transform.steps import run_models as run_in_build, transform_model

    root, database = described
    copies = {way: tmp_path / f"{way}.duckdb" for way in ("held", "own", "compiled", "direct")}
    for copy in copies.values():
        shutil.copyfile(database, copy)
    models = discover_models(root)
    order = [models[name] for name in execution_order(models, {"vitals"})]
    # as the build runs them: one held connection, the descriptions kept by the session
    run_in_build(copies["held"], order, transform_model).raise_for_failures()
    # each model on a connection of its own: the catalog read for every model
    for model in order:
        transform_model(copies["own"], model)
    # with the compile's output columns instead of a DESCRIBE
    compiled = compile_model_set(discover_models(root), source_schema_of(database)).ordered_models()
    assert compiled[-1].output_columns == ["subject_id", "mapv", "hr", "temp", "spo2", "undescribed"]
    run_in_build(copies["compiled"], compiled, transform_model).raise_for_failures()
    # the direct runner (`warehouse run`)
    with duckdb.connect(str(copies["direct"])) as con:
        run_models(con, root)

    expected = {
        "staging.stg_vitals": "Vitals.",
        "staging.stg_vitals.subject_id": "Subject: the eCRF record id (REDCap record / ODM SubjectKey)",  # key first
        "staging.stg_vitals.mapv": "Mean arterial pressure (mmHg)",  # the staged item's label
        "staging.stg_vitals.hr": "HR (bpm)",  # the header's
        "staging.stg_vitals.temp": "",  # described empty by the header: not inherited
        "staging.stg_vitals.site_id": "Site: REDCap data access group / ODM site (LocationOID)",
        "intermediate.int_both": None,
        "intermediate.int_both.subject_id": "Subject: the eCRF record id (REDCap record / ODM SubjectKey)",
        "intermediate.int_both.hr": "HR (bpm)",  # a model's description before the staged form's label
        "intermediate.int_both.mapv": "Mean arterial pressure (mmHg)",
        "intermediate.int_both.temp": "Temperature",  # an empty description upstream is no description
        "intermediate.int_both.SpO2": "SpO2 (%)",  # matched whatever the case
        "main.vitals": "One row per reading.",
        "main.vitals.subject_id": "Subject: the eCRF record id (REDCap record / ODM SubjectKey)",
        "main.vitals.mapv": "Mean MAP",  # header key matched whatever the case
        "main.vitals.hr": "HR (bpm)",
        "main.vitals.temp": "Temperature",
        "main.vitals.spo2": "SpO2 (%)",
        "main.vitals.undescribed": None,
    }
    for way, copy in copies.items():
        assert comments_of(copy) == expected, way
    # run again on the same files (`warehouse run` on a dev copy): both ways still agree. (Upstream tables are
    # matched by bare name, so on a rerun main.vitals, described by then, lends stg_vitals its `mapv` text.)
    run_in_build(copies["held"], order, transform_model).raise_for_failures()
    for model in order:
        transform_model(copies["own"], model)
    assert comments_of(copies["held"]) == comments_of(copies["own"])


def test_a_failed_model_rolls_back_and_the_held_connection_runs_the_next(described, monkeypatch):
    import warehouse.transform.runner as models_module
    from warehouse.transform.models import ModelError
    from warehouse.transform.steps import run_models as run_in_build, transform_model

    root, database = described
    write(root, "marts", "broken", "-- description: Fails at run time.\nselect cast(hr as varchar) || 'x' as n, "
                                   "cast('not a number' as integer) as bad from stg_vitals")
    models = discover_models(root)
    order = [models[name] for name in execution_order(models, {"vitals"})]
    failing = {"int_both"}
    real = models_module.document_model

    def interrupted(con, model, known=None):  # a failure that is not DuckDB's, after the table was created
        if model.name in failing:
            raise RuntimeError("interrupted while documenting")
        return real(con, model, known)

    monkeypatch.setattr(models_module, "document_model", interrupted)
    result = run_in_build(database, order, transform_model)
    assert result.failed["int_both"] == "interrupted while documenting"
    assert result.failed["broken"].startswith(f"{root / 'marts' / 'broken.sql'}: Conversion Error")
    assert result.skipped == {"vitals": "int_both"}
    assert [run.name for run in result.runs] == ["stg_vitals"]
    with duckdb.connect(str(database), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert "int_both" not in tables and "broken" not in tables and "stg_vitals" in tables
    with pytest.raises(ModelError, match="broken.sql: Conversion Error"):
        transform_model(database, models["broken"])  # on a connection of its own, as well

