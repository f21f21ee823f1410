"""`warehouse serve` per study project (issue 17 item 6), without a Prefect server: the deployment's name and
parameters come from the active project (`--project DIR`, else the current directory's, else the demo), and
prefect.yaml holds one deployment per project, each with its own `project` and data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.serve import deployment_name, deployment_parameters, study_id_of
from warehouse.resources import PROJECT_ENV, demo_project

PROJECT = Path(__file__).resolve().parents[2]


def test_deployment_named_after_the_study():
    assert deployment_name("ADRESS") == "adress"
    assert deployment_name("REDCAPR_CLINICAL_TRIAL_1") == "redcapr-clinical-trial-1"
    assert deployment_name("__") == "served"


def test_parameters_carry_the_project_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = deployment_parameters(Path("data"), None, None, project=Path("ct1"))
    assert params == {"data_dir": str(tmp_path / "data"), "only_new": True, "project": str(tmp_path / "ct1")}


def test_study_id_from_the_project_or_the_study_option(tmp_path):
    (tmp_path / "study.toml").write_text('[study]\nid = "CT-1"\n', encoding="utf-8")
    assert study_id_of(tmp_path, None) == "CT-1"
    assert study_id_of(tmp_path, "adress") == "ADRESS"


def serve_with(monkeypatch, env_project: Path | None, *args: str) -> dict:
    """Run `warehouse serve` with serve_builds replaced: what it would have served."""
    import flows.serve
    from warehouse.commands import ops

    served: dict = {}
    monkeypatch.setattr(flows.serve, "serve_builds", lambda *a, **k: served.update(args=a, kwargs=k))
    monkeypatch.setattr(ops, "prefect_api_url", lambda: "http://127.0.0.1:1/api")
    if env_project is None:
        monkeypatch.delenv(PROJECT_ENV, raising=False)
    else:
        monkeypatch.setenv(PROJECT_ENV, str(env_project))
    from warehouse.cli import app

    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return served


def test_serve_passes_the_active_project_and_names_the_deployment_after_its_study(tmp_path, monkeypatch):
    project = tmp_path / "ct1"
    (project / "sql").mkdir(parents=True)
    (project / "study.toml").write_text('[study]\nid = "CT1"\n', encoding="utf-8")
    served = serve_with(monkeypatch, project, "--data-dir", str(project / "data"))
    assert served["kwargs"]["project"] == project.resolve()
    assert served["kwargs"]["name"] == "ct1"
    named = serve_with(monkeypatch, project, "--name", "nightly")
    assert named["kwargs"]["name"] == "nightly"


def test_serve_without_a_project_serves_the_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no study.toml here: the demo project
    served = serve_with(monkeypatch, None)
    assert served["kwargs"]["project"] == demo_project()
    assert served["kwargs"]["name"] == "adress"


def test_serve_of_a_folder_that_is_not_a_project_is_refused(tmp_path, monkeypatch):
    import flows.serve

    monkeypatch.setattr(flows.serve, "serve_builds", lambda *a, **k: pytest.fail("served"))
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path))
    from warehouse.cli import app

    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "no study.toml" in result.output


def test_prefect_yaml_has_one_deployment_per_project():
    spec = yaml.safe_load((PROJECT / "prefect.yaml").read_text(encoding="utf-8"))
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"adress", "ct1"}
    data_dirs = set()
    for d in deployments.values():
        params = d["parameters"]
        assert params["project"] and "study" not in params and params["only_new"] is True
        assert d["entrypoint"] == "flows/build.py:build_warehouse" and d["work_pool"]["name"] == "warehouse"
        assert d["concurrency_limit"]["limit"] == 1
        data_dirs.add(params["data_dir"])
    assert len(data_dirs) == 2  # one data directory per study
    assert (PROJECT / deployments["adress"]["parameters"]["project"] / "study.toml").is_file()
