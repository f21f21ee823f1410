"""`warehouse init` (warehouse.project.init_project) on the real exports: the project it writes is one the engine
can run. Every staging model and the subjects mart run in DuckDB over the `src` tables the engine's own staging
step writes for that export; headers, comments, grain, identifiers and the subject count are checked."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import duckdb
import polars as pl
import pytest
import sqlglot
from sqlglot import exp

from warehouse.project import init_project

pytestmark = pytest.mark.fixtures

REDCAP = ["clinical-trial-1", "longitudinal", "repeating-instruments", "arm-single-longitudinal",
          "vignette-repeating", "checkboxes-1"]
ODM = ["openclinica_juno_demo_fullextract.xml", "redcap_pycap_test_simple_project.xml",
       "redcap_pycap_test_long_project.xml"]
EXPORTS = [f"redcap/{name}" for name in REDCAP] + [f"odm/{name}" for name in ODM]
HEADER_KEYS = {"description", "materialized", "grain", "tags", "columns"}


def staging_step():
    """The engine's staging step (BuildRequest, stage), wherever the package reorganisation has put it."""
    import importlib
    import inspect

    tried = ("warehouse.stage", "warehouse.stage.load", "warehouse.stage.steps", "warehouse.pipeline")
    for name in tried:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        stage = getattr(module, "stage", None)
        request = getattr(module, "BuildRequest", None)
        if request is None:
            try:
                request = importlib.import_module("warehouse.request").BuildRequest
            except (ImportError, AttributeError):
                continue
        if inspect.isfunction(stage):
            return request, stage
    pytest.skip(f"the engine's staging step (BuildRequest, stage) was found in none of {', '.join(tried)}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_fixtures):
    return {"root": tmp_path_factory.mktemp("init"), "fixtures": shared_fixtures, "done": {}}


def built(workspace, export_name: str) -> dict:
    """The export landed and staged into a build file (src schema), and the project init wrote for it."""
    if export_name in workspace["done"]:
        return workspace["done"][export_name]
    root, export = workspace["root"], workspace["fixtures"] / export_name
    data_dir = root / "data"
    slug = re.sub(r"\W+", "_", export_name)
    result = init_project(export, root / "projects" / slug, data_dir=data_dir)
    BuildRequest, stage = staging_step()
    build_file = root / f"{slug}.duckdb"
    stage(BuildRequest(data_dir=data_dir, export=export), result.export_id, build_file, None)
    raw_dir = data_dir / "raw" / result.export_id
    subjects = set()
    for form in result.forms:
        subjects |= set(pl.read_parquet(raw_dir / f"{form}.parquet", columns=["subject_id"])["subject_id"]
                        .drop_nulls().to_list())
    items = pl.read_parquet(raw_dir / "_meta" / "items.parquet")
    identifiers = set(items.filter(pl.col("identifier").fill_null(False))["item"].to_list())
    workspace["done"][export_name] = done = {"result": result, "build_file": build_file, "subjects": subjects,
                                             "identifiers": identifiers}
    return done


def header(sql: str) -> tuple[dict[str, str], dict[str, str]]:
    """The runner's header (warehouse/models.py): leading `-- key: value` lines, `columns:` then
    `--   column: text` lines; an unknown key is an error."""
    config, columns, in_columns = {}, {}, False
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        body = stripped[2:]
        if in_columns and body.startswith("   ") and ":" in body:
            name, _, text = body.strip().partition(":")
            columns[name.strip().lower()] = text.strip()
            continue
        in_columns = False
        key, sep, value = body.strip().partition(":")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key.strip()):
            assert key.strip().lower() in HEADER_KEYS, f"unknown header key {key!r}"
            config[key.strip().lower()] = value.strip()
            in_columns = key.strip().lower() == "columns"
    return config, columns


def engine_header_check(sql: str, path: Path) -> None:
    """The runner's own header parser too, while it is importable where it is today."""
    try:
        from warehouse.transform.models import parse_header
    except ImportError:
        return
    parse_header(sql, path)


@pytest.mark.parametrize("export_name", EXPORTS)
def test_generated_project_runs_on_the_staged_export(workspace, export_name):
    done = built(workspace, export_name)
    project: Path = done["result"].project
    con = duckdb.connect(str(done["build_file"]))
    try:
        con.execute("create schema if not exists staging")
        con.execute("set search_path = 'main,intermediate,staging,src'")
        models = sorted((project / "sql" / "staging").glob("stg_*.sql"))
        assert [m.stem for m in models] == sorted(f"stg_{f}" for f in done["result"].forms)
        for path in models + [project / "sql" / "marts" / "subjects.sql"]:
            sql = path.read_text("utf-8")
            parsed = sqlglot.parse_one(sql, dialect="duckdb")
            engine_header_check(sql, path)
            config, described = header(sql)
            assert config.get("description") and config.get("grain"), path
            referenced = {c.name for c in parsed.find_all(exp.Column)}
            assert not referenced & done["identifiers"], f"{path.name} reads identifier items"
            schema = "staging" if path.parent.name == "staging" else "main"
            con.execute(f"create or replace table {schema}.{path.stem} as {sql}")
            output = [r[0] for r in con.execute(f"describe {schema}.{path.stem}").fetchall()]
            assert set(output) == set(described), f"{path.name}: columns without a comment or comments without " \
                                                  f"a column: {set(output) ^ set(described)}"
            assert all(described.values()), f"{path.name}: an empty column comment"
            assert not set(output) & (done["identifiers"] - {"subject_id"}), path.name
            grain = [g.strip() for g in config["grain"].split(",")]
            duplicates = con.execute(f"select count(*) from (select {', '.join(grain)} from {schema}.{path.stem} "
                                     f"group by all having count(*) > 1)").fetchone()[0]
            assert duplicates == 0, f"{path.name}: grain {grain} is not unique"
        subjects = {r[0] for r in con.execute("select subject_id from main.subjects").fetchall()}
        count = con.execute("select count(*) from main.subjects").fetchone()[0]
        assert count == len(subjects) == len(done["subjects"]) and subjects == done["subjects"]
    finally:
        con.close()


@pytest.mark.parametrize("export_name", EXPORTS)
def test_study_toml_and_suites(workspace, export_name):
    done = built(workspace, export_name)
    project: Path = done["result"].project
    study = tomllib.loads((project / "study.toml").read_text("utf-8"))
    assert study["study"]["id"] and study["study"]["title"]
    assert study["export"]["format"] == done["result"].format
    assert list(study["forms"]) == done["result"].forms
    flagged = {item for items in study.get("identifiers", {}).values() for item in items}
    assert flagged <= done["identifiers"]
    text = (project / "study.toml").read_text("utf-8")
    assert "# [time]" in text and "# [randomisation]" in text
    suites = sorted((project / "expectations" / "staging").glob("*.json"))
    covered = set()
    for path in suites:
        suite = json.loads(path.read_text("utf-8"))
        assert suite["name"] and suite["expectations"]
        assert all(e["meta"]["severity"] in ("error", "warning") and e["meta"]["rule"] for e in suite["expectations"])
        covered |= set(suite["meta"]["table"])
    # a form whose ODM repeat keys nest ("2.1") is left to raw/structure.json: src types repeat_instance as an
    # integer, so its staging model reads the key from the record's XML place
    nested = {f for f in done["result"].forms
              if "_source_path" in (project / "sql" / "staging" / f"stg_{f}.sql").read_text("utf-8")}
    assert covered == set(done["result"].forms) - nested
    assert json.loads((project / "expectations" / "raw" / "structure.json").read_text("utf-8"))["meta"]["table"] == "*"
    assert (project / "README.md").is_file() and (project / "expectations" / "README.md").is_file()


@pytest.mark.parametrize("export_name", ["redcap/longitudinal", "odm/openclinica_juno_demo_fullextract.xml"])
def test_same_export_same_bytes(shared_fixtures, tmp_path, export_name):
    export = shared_fixtures / export_name
    first = init_project(export, tmp_path / "a")  # lands in a temporary directory of its own
    second = init_project(export, tmp_path / "b", data_dir=tmp_path / "data")
    assert first.files == second.files
    for relative in first.files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_withdrawal_item_becomes_a_column(workspace):
    """REDCap's longitudinal project has `withdraw_date`: the subjects mart says who withdrew."""
    done = built(workspace, "redcap/longitudinal")
    sql = (done["result"].project / "sql" / "marts" / "subjects.sql").read_text("utf-8")
    assert "withdrawn" in header(sql)[1]
    assert "withdraw_date is not null" in sql
