"""`warehouse test`: the project's unit cases (sql/<layer>/<model>.yml), run in-process through the CLI."""

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from warehouse.cli import activate_project, app
from warehouse.commands import DATA_DIR_ENV
from warehouse.resources import PROJECT_ENV, demo_project
from warehouse.transform.cases import case_files, load_cases

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the demo project's study.toml and sql/ (models, unit cases, src schema snapshot)."""
    root = tmp_path / "study"
    root.mkdir()
    shutil.copyfile(demo_project() / "study.toml", root / "study.toml")
    shutil.copytree(demo_project() / "sql", root / "sql")
    return root


def warehouse_test(monkeypatch: pytest.MonkeyPatch, project: Path, *args: str):
    """`warehouse test --project PROJECT ARGS` in this process (the environment restored afterwards)."""
    monkeypatch.setenv(PROJECT_ENV, str(project))
    monkeypatch.setenv(DATA_DIR_ENV, str(project / "data"))
    activate_project(str(project))
    return runner.invoke(app, ["test", *args])


def test_the_demo_projects_cases_all_pass(monkeypatch, project):
    expected = sum(len(load_cases(p)) for p in case_files(demo_project() / "sql"))
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if re.match(r"(PASS|FAIL|ERROR) ", line)]
    assert len(lines) == expected and all(line.startswith("PASS ") for line in lines)
    assert f"{expected} case(s): {expected} passed, 0 failed" in result.output
    assert f"src schema: {project / 'sql' / 'src_schema.json'}" in result.output


def test_a_wrong_expected_value_fails_with_the_case_the_model_and_the_difference(monkeypatch, project):
    path = project / "sql" / "intermediate" / "int_vfd.yml"
    text = path.read_text(encoding="utf-8")
    right = "{subject_id: D3, vent_days: 3.0, dead_by_d28: false, vfd28: 25.0}"
    assert right in text
    path.write_text(text.replace(right, right.replace("25.0", "24.0")), encoding="utf-8")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "name: death by day 28" in t) - 1

    result = warehouse_test(monkeypatch, project, "--select", "int_vfd")
    assert result.exit_code == 1, result.output
    out = result.output
    assert "PASS  int_vfd  overlapping, touching and disjoint periods are counted once" in out
    assert "FAIL  int_vfd  death by day 28 gives 0 ventilator-free days" in out
    assert f"at {path}:{line}" in out
    assert "missing:    {subject_id: 'D3', vent_days: 3.0, dead_by_d28: False, vfd28: 24.0}" in out
    assert "unexpected: {subject_id: 'D3', vent_days: 3.0, dead_by_d28: False, vfd28: 25.0}" in out
    assert "~ {subject_id: 'D3', vent_days: 3.0}: vfd28 expected 24.0, got 25.0" in out
    assert "2 case(s): 1 passed, 1 failed" in out
    assert "int_death" not in out  # --select runs that model's cases only


def test_malformed_yaml_names_file_line_and_reason(monkeypatch, project):
    path = project / "sql" / "intermediate" / "int_death.yml"
    path.write_text("cases:\n  - model: int_death\n    given: {stg_end_of_study: [{subject_id: S1}]\n"
                    "    expect: {rows: []}\n", encoding="utf-8")
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {path}:4: malformed YAML: expected ',' or '}}', but got '<scalar>' "
                                     f"(while parsing a flow mapping at line 3)")


@pytest.mark.parametrize(("case", "message"), [
    ("  - model: int_death\n    name: x\n    given: {}\n", "case 1 lacks 'expect'"),
    ("  - model: int_death\n    given: {}\n    expect: {rows: []}\n    expected: {}\n",
     "case 1: unknown key(s) expected; a case has description, expect, given, model, name"),
    ("  - model: int_death\n    given: {stg_end_of_study: {subject_id: S1}}\n    expect: {rows: []}\n",
     "case 1: given 'stg_end_of_study' must be a list of rows"),
])
def test_a_case_of_the_wrong_shape_is_bad_input(monkeypatch, project, case, message):
    path = project / "sql" / "intermediate" / "int_death.yml"
    path.write_text("# a comment\ncases:\n" + case, encoding="utf-8")
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 2 and result.output.strip() == f"error: {path}:3: {message}"


def test_an_unknown_column_is_an_error_naming_the_case_and_a_close_column(monkeypatch, project):
    path = project / "sql" / "intermediate" / "int_death.yml"
    path.write_text("cases:\n  - model: int_death\n    name: typo\n"
                    "    given: {stg_end_of_study: [{subject_id: S1, dthfll: true}]}\n    expect: {rows: []}\n")
    result = warehouse_test(monkeypatch, project, "--select", "int_death")
    assert result.exit_code == 2
    assert "ERROR int_death  typo" in result.output
    assert (f"error: {path}:2: given staging.stg_end_of_study: no column 'dthfll' (did you mean dthfl?)"
            in result.output)


def test_select_an_unknown_model_or_one_without_cases(monkeypatch, project):
    result = warehouse_test(monkeypatch, project, "--select", "int_nothing")
    assert result.exit_code == 2 and "--select int_nothing: no model of that name" in result.output
    result = warehouse_test(monkeypatch, project, "--select", "stg_labs")
    assert result.exit_code == 0 and "no unit cases for stg_labs" in result.output


def test_without_snapshot_or_build_the_message_says_what_to_run(monkeypatch, project):
    (project / "sql" / "src_schema.json").unlink()
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 2
    assert f"no src schema for the unit cases: {project / 'sql' / 'src_schema.json'} does not exist" in result.output
    assert "warehouse test --update-schema" in result.output
    result = warehouse_test(monkeypatch, project, "--update-schema")
    assert result.exit_code == 2 and "data directory not found" in result.output


def test_the_parameter_types_come_from_the_projects_study_toml(monkeypatch, project):
    """A [parameters] key added to study.toml is a typed column of src.study_parameters in the cases at once,
    without a new snapshot (as the next build would stage it)."""
    toml = project / "study.toml"
    text = toml.read_text(encoding="utf-8")
    text = (text.replace("[parameters]\n", "[parameters]\nmy_threshold = 7.5\n", 1) if "[parameters]\n" in text
            else text + "\n[parameters]\nmy_threshold = 7.5\n")
    toml.write_text(text, encoding="utf-8")
    (project / "sql" / "intermediate" / "int_uses_param.sql").write_text(
        "-- description: x\nselect p.my_threshold * 2 as doubled\nfrom src.study_parameters as p\n")
    (project / "sql" / "intermediate" / "int_uses_param.yml").write_text(
        "model: int_uses_param\nname: doubled\ngiven: {src.study_parameters: [{my_threshold: 7.5}]}\n"
        "expect: {rows: [{doubled: 15.0}]}\n")
    result = warehouse_test(monkeypatch, project, "--select", "int_uses_param")
    assert result.exit_code == 0, result.output
    assert "PASS  int_uses_param  doubled" in result.output


def test_a_model_that_does_not_compile_fails_its_cases_only(monkeypatch, project):
    for cases in (project / "sql" / "marts").glob("*.yml"):
        cases.unlink()  # the marts' cases are the slowest to run and add nothing here
    path = project / "sql" / "intermediate" / "int_lactate.sql"
    assert "from stg_labs" in path.read_text(encoding="utf-8")
    path.write_text(path.read_text(encoding="utf-8").replace("from stg_labs", "from stg_labz", 1), encoding="utf-8")
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 1, result.output
    assert "FAIL  int_lactate" in result.output
    assert f"the model failed: {path}:" in result.output and "reads unknown table(s) stg_labz" in result.output
    assert "PASS  int_vfd" in result.output and ": 0 passed" not in result.output


SUBJECTS_CASE = """# sql/marts/subjects.sql (as `warehouse init` writes it): one row per subject, one form
cases:
  - model: subjects
    name: one row per subject with its site, one form
    given:
      src.demographics:
        - {subject_id: "1", site_id: A}
        - {subject_id: "2", site_id: null}
    expect:
      rows:
        - {subject_id: "1", site_id: A, n_forms: 1}
        - {subject_id: "2", site_id: null, n_forms: 1}
"""


@pytest.mark.slow
def test_a_project_made_by_init(monkeypatch, shared_fixtures, tmp_path):
    """A project from `warehouse init`: its cases need a src schema: none before a build (exit 2, saying what to
    run), the newest build's after one, and the project's own snapshot after `--update-schema`."""
    from warehouse.build import BuildRequest, run_build
    from warehouse.project import init_project

    export = shared_fixtures / "redcap" / "clinical-trial-1"
    project = tmp_path / "ct1"
    init_project(export, project)
    (project / "sql" / "marts" / "subjects.yml").write_text(SUBJECTS_CASE, encoding="utf-8")
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 2 and "no src schema for the unit cases" in result.output

    assert run_build(BuildRequest(data_dir=project / "data", export=export)).published
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 0, result.output
    assert "(no src_schema.json in the project)" in result.output
    assert "PASS  subjects  one row per subject with its site, one form" in result.output

    result = warehouse_test(monkeypatch, project, "--update-schema")
    assert result.exit_code == 0, result.output
    assert f"src schema written: {project / 'sql' / 'src_schema.json'}" in result.output
    assert f"src schema: {project / 'sql' / 'src_schema.json'}" in result.output
    assert "1 case(s): 1 passed, 0 failed" in result.output

    import json

    snapshot = project / "sql" / "src_schema.json"
    schema = json.loads(snapshot.read_text(encoding="utf-8"))
    schema["demographics"]["dropped_item"] = "VARCHAR"  # as if staging had dropped an item since the snapshot
    snapshot.write_text(json.dumps(schema), encoding="utf-8")
    result = warehouse_test(monkeypatch, project)
    assert result.exit_code == 0, result.output
    assert f"warning: {snapshot} differs from the src schema of " in result.output
    assert "in demographics; `warehouse test --update-schema` refreshes it" in result.output
