"""The project's suite files load with Great Expectations' own classes and say what a data manager needs."""

from __future__ import annotations

import json

import pytest

from warehouse.validate import expectations_dir, load_suites

STAGES = ("raw", "staging", "marts")


def test_expectations_dir_is_the_projects():
    d = expectations_dir()
    assert {p.name for p in d.iterdir() if p.is_dir()} >= set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_suite_files_load_with_gx(gx_loaded, stage):
    gx = gx_loaded["gx"]
    files = sorted((expectations_dir() / stage).glob("*.json"))
    suites = load_suites(stage)
    assert len(suites) == len(files) > 0
    for s, path in zip(suites, files):
        assert isinstance(s, gx.ExpectationSuite)
        raw = json.loads(path.read_text())
        assert s.name == raw["name"] and s.meta["table"] == raw["meta"]["table"]
        assert len(s.expectations) == len(raw["expectations"]) > 0
        for e, r in zip(s.expectations, raw["expectations"]):
            assert e.expectation_type == r["type"]
            assert e.meta["severity"] in ("error", "warning") and e.meta["rule"]
            # GX's own severity follows ours
            assert e.severity.value == ("critical" if e.meta["severity"] == "error" else "warning")


def test_marts_suites_name_adam_tables():
    tables = {s.meta["table"] for s in load_suites("marts")}
    assert tables == {"adsl", "adeff"}


def test_demo_suite_windows_match_the_study_configuration():
    """Windows and the NE drug code are written in the suite files for the data manager: keep them equal to the
    study configuration (warehouse/studies/adress.toml)."""
    study = pytest.importorskip("warehouse.study").load_study()
    suites = {s.name: s for s in load_suites("staging")}
    windows = {}
    for e in suites["staging_pe_challenge"].expectations:
        kw = e.configuration.to_json_dict()["kwargs"]
        if kw["column"] == "pe_dt_hrs" and e.configuration.type == "expect_column_values_to_be_between":
            event = kw["row_condition"]["parameter"]  # h0_arm_1 -> pe_h0
            windows["pe_" + event.split("_")[0]] = (kw["min_value"], kw["max_value"])
    assert windows == study.windows
    derived = suites["staging_chk_pe_ne_rate_constant"].meta["derived"]
    assert derived["ne_drug_code"] == study.ne_drug_code
    vp = suites["staging_vasopressors"].expectations[1].configuration.to_json_dict()["kwargs"]
    assert vp["row_condition"]["parameter"] == study.ne_drug_code


def test_importing_the_package_does_not_import_gx():
    import subprocess
    import sys

    code = "import sys, warehouse.validate; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
