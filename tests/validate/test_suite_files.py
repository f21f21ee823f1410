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


def test_marts_suites_name_adam_tables_and_their_reconciliations():
    from warehouse.validate.derived import DERIVED_CHECKS

    tables = {s.meta["table"] for s in load_suites("marts")}
    assert tables == {"adsl", "adeff", "adae", "adtte", "chk_adsl_randomised", "chk_adeff_peresp",
                      "chk_adae_events", "chk_adtte_subjects"}
    assert {t for t in tables if t.startswith("chk_")} <= set(DERIVED_CHECKS)


def test_demo_suite_windows_come_from_the_study_configuration():
    """Windows and the NE drug code live only in the study configuration (the project's study.toml): a window
    expectation names its window (``meta.window``) and carries no bounds in its file; the loader reads them from the
    study, into the kwargs and the rule text. Every window of the study is checked by a suite."""
    study = pytest.importorskip("warehouse.study").load_study()
    for path in sorted((expectations_dir() / "staging").glob("*.json")):
        raw = json.loads(path.read_text())
        for e in raw["expectations"]:
            if (e.get("meta") or {}).get("window"):
                assert not {"min_value", "max_value"} & set(e["kwargs"]), f"{path.name}: bounds copied in the file"
                assert "{window}" in e["meta"]["rule"], f"{path.name}: rule text without {{window}}"
    suites = {s.name: s for s in load_suites("staging")}
    windows: dict[str, tuple] = {}
    for s in suites.values():
        for e in s.expectations:
            cfg = e.configuration
            kw = cfg.to_json_dict()["kwargs"]
            name = (cfg.meta or {}).get("window")
            if (kw.get("column", "").endswith("_hrs") and cfg.type == "expect_column_values_to_be_between"
                    and None not in (kw.get("min_value"), kw.get("max_value"))):  # (death_dt_hrs >= 0: an order)
                assert name, f"{s.name}: a window on {kw['column']} without meta.window"
            if name:
                assert name not in windows, f"window {name} checked twice"
                windows[name] = (kw["min_value"], kw["max_value"])
                lo, hi = (str(int(v)) if float(v).is_integer() else str(v) for v in windows[name])
                assert f"[{lo}, {hi}]" in cfg.meta["rule"], f"{s.name}: rule text of {name} says other bounds"
    assert windows == study.windows
    # the window's time point is the event of its row condition (pe_h6 -> h6_arm_1, lab_d3 -> day_3_arm_1)
    for e in suites["staging_pe_challenge"].expectations + suites["staging_labs"].expectations:
        name = (e.configuration.meta or {}).get("window")
        if name:
            event = e.configuration.to_json_dict()["kwargs"]["row_condition"]["parameter"]
            point = name.split("_", 1)[1]
            assert event == (f"day_{point[1:]}_arm_1" if point.startswith("d") else f"{point}_arm_1")
    derived = suites["staging_chk_pe_ne_rate_constant"].meta["derived"]
    assert derived["ne_drug_code"] == study.ne_drug_code
    assert suites["staging_chk_hemo_hourly"].meta["derived"]["last_hour"] == study.hemo_hourly_last_hour
    vp = suites["staging_vasopressors"].expectations[1].configuration.to_json_dict()["kwargs"]
    assert vp["row_condition"]["parameter"] == study.ne_drug_code


def test_another_study_configuration_gives_other_windows_and_codes(tmp_path):
    import dataclasses

    study = pytest.importorskip("warehouse.study").load_study()
    other = dataclasses.replace(study, ne_drug_code="9", windows={**study.windows, "pe_h6": (4.5, 8.0)})
    suites = {s.name: s for s in load_suites("staging", study=other)}
    h6 = next(e.configuration for e in suites["staging_pe_challenge"].expectations
              if (e.configuration.meta or {}).get("window") == "pe_h6")
    assert (h6.kwargs["min_value"], h6.kwargs["max_value"]) == (4.5, 8)
    assert "[4.5, 8] h" in h6.meta["rule"] and "[4.5, 8] h" in h6.meta["message"]
    assert suites["staging_chk_pe_ne_rate_constant"].meta["derived"]["ne_drug_code"] == "9"


def test_a_window_the_study_lacks_or_bounds_in_the_file_fail_loading(tmp_path):
    from warehouse.validate.suites import resolve_study_values

    pytest.importorskip("warehouse.study")
    suite = {"name": "s", "meta": {"table": "labs"}, "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "lab_dt_hrs"},
         "meta": {"severity": "warning", "rule": "in {window}", "window": "lab_d9"}}]}
    with pytest.raises(ValueError, match=r"x.json: .*no window 'lab_d9'.*known: pe_h0"):
        resolve_study_values(suite, tmp_path / "x.json")
    suite["expectations"][0]["meta"]["window"] = "lab_d7"
    suite["expectations"][0]["kwargs"]["min_value"] = 164
    with pytest.raises(ValueError, match="gives its bounds in the file"):
        resolve_study_values(suite, tmp_path / "x.json")
    with pytest.raises(ValueError, match="unknown study parameter 'ne_drug_cod'"):
        resolve_study_values({"meta": {"derived": {"code": {"study": "ne_drug_cod"}}}}, tmp_path / "x.json")


def test_importing_the_package_does_not_import_gx():
    import subprocess
    import sys

    code = "import sys, warehouse.validate; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
