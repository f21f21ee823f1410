"""The project's suite files load, Great Expectations' own classes take them, and they say what a data manager
needs; a file GX refuses stops validation with its name and GX's reason."""

from __future__ import annotations

import json
import logging

import pytest

from warehouse.validate import expectations_dir, load_suites

STAGES = ("raw", "staging", "marts")


def test_expectations_dir_is_the_projects():
    d = expectations_dir()
    assert {p.name for p in d.iterdir() if p.is_dir()} >= set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_suite_files_load_and_gx_takes_them(stage):
    from warehouse.validate.gx_worker import check_suites

    files = sorted((expectations_dir() / stage).glob("*.json"))
    suites = load_suites(stage)
    assert len(suites) == len(files) > 0
    for s, path in zip(suites, files):
        raw = json.loads(path.read_text())
        assert s.name == raw["name"] and s.meta["table"] == raw["meta"]["table"]
        assert len(s.expectations) == len(raw["expectations"]) > 0
        for e, r in zip(s.expectations, raw["expectations"]):
            assert e.expectation_type == r["type"]
            assert e.meta["severity"] in ("error", "warning") and e.meta["rule"]
            # GX's own severity follows ours
            assert e.severity == ("critical" if e.meta["severity"] == "error" else "warning")
    # Great Expectations' classes take every suite as the build holds it (they judge type names and kwargs)
    assert check_suites([s.to_json_dict() for s in suites]) == [None] * len(suites)


def test_the_build_holds_a_suite_as_gx_writes_it(gx_loaded):
    """expectations.Suite's JSON is GX's (ExpectationSuite.to_json_dict, ids aside): the generated suite files and
    the suites in a build's validation read the same as before GX left the build's process."""
    from warehouse.validate.suites import suite_to_dict, suite_to_gx

    for stage in STAGES:
        for s in load_suites(stage):
            assert suite_to_dict(s) == suite_to_dict(suite_to_gx(suite_to_dict(s)))


def _bad_suites(tmp_path):
    folder = tmp_path / "suites" / "marts"
    folder.mkdir(parents=True)
    good = {"name": "ok", "meta": {"table": "t"}, "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"},
         "meta": {"severity": "error", "rule": "a is there"}}]}
    unknown = {"name": "unknown", "meta": {"table": "t"}, "expectations": [
        {"type": "expect_column_values_to_be_lovely", "kwargs": {"column": "a"},
         "meta": {"severity": "error", "rule": "a is lovely"}}]}
    kwarg = {"name": "kwarg", "meta": {"table": "t"}, "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "mostly": "lots"},
         "meta": {"severity": "warning", "rule": "a mostly there"}}]}
    for d in (good, unknown, kwarg):
        (folder / f"{d['name']}.json").write_text(json.dumps(d))
    return folder


@pytest.mark.parametrize("through", ["worker", "process"])
def test_gx_refuses_a_bad_suite_file_by_name(tmp_path, through, caplog):
    """A suite file GX's classes refuse (an unknown type, a kwarg of the wrong type) stops the stage with a message
    naming each file and GX's reason, whether the build's GX worker or GX in this process judges it."""
    import duckdb

    from warehouse.validate import gx_process
    from warehouse.validate.pushdown import validate_stage_duckdb

    folder = _bad_suites(tmp_path)
    gx_process.stop_worker()
    if through == "worker":  # as in a build: asked without waiting, the verdicts taken once results are in
        assert gx_process.start_worker(defer_checks=True) is not None
    try:
        con = duckdb.connect()
        con.execute("create table t as select 1 as a")
        with caplog.at_level(logging.WARNING), pytest.raises(ValueError) as err:
            validate_stage_duckdb("marts", con, ["t"], suites_dir=folder.parent)
            gx_process.confirm_checks()
        text = str(err.value)
        if through == "worker":  # the worker's verdict, not the fallback's
            assert "GX worker failed" not in caplog.text and gx_process.current_worker() is not None
        assert "unknown.json" in text and "expect_column_values_to_be_lovely" in text
        assert "kwarg.json" in text and "mostly" in text
        assert "ok.json" not in text
    finally:
        gx_process.stop_worker()
        gx_process.forget_checks()


def test_a_refusal_on_record_is_raised_again_with_new_suites(tmp_path):
    """A suite GX refused stays refused in the next build of the same process, even when that build also sends
    other, new suites to the worker (their verdicts pending)."""
    import duckdb

    from warehouse.validate import gx_process
    from warehouse.validate.pushdown import validate_stage_duckdb

    folder = _bad_suites(tmp_path)
    con = duckdb.connect()
    con.execute("create table t as select 1 as a")
    gx_process.stop_worker()
    with pytest.raises(ValueError, match="unknown.json"):
        validate_stage_duckdb("marts", con, ["t"], suites_dir=folder.parent)  # judged here, on record
    new = json.loads((folder / "ok.json").read_text())
    new["name"] = "ok2"
    new["expectations"][0]["meta"]["rule"] = "a is there (2)"
    (folder / "ok2.json").write_text(json.dumps(new))
    assert gx_process.start_worker(defer_checks=True) is not None
    try:
        with pytest.raises(ValueError, match="unknown.json"):
            validate_stage_duckdb("marts", con, ["t"], suites_dir=folder.parent)
    finally:
        gx_process.stop_worker()
        gx_process.forget_checks()


def test_pending_checks_survive_a_worker_that_dies(tmp_path):
    """Checks a build's worker was asked are judged in the build's process when the worker dies before answering:
    a refused suite is still reported."""
    import duckdb

    from warehouse.validate import gx_process
    from warehouse.validate.pushdown import validate_stage_duckdb

    folder = _bad_suites(tmp_path)
    (folder / "kwarg.json").unlink()
    bad = json.loads((folder / "unknown.json").read_text())
    bad["name"], bad["meta"]["rule_set"] = "unknown_too", "a copy, so that it was never judged in this process"
    (folder / "unknown.json").write_text(json.dumps(bad))
    gx_process.stop_worker()
    worker = gx_process.start_worker(defer_checks=True)
    try:
        con = duckdb.connect()
        con.execute("create table t as select 1 as a")
        validate_stage_duckdb("marts", con, ["t"], suites_dir=folder.parent)  # asked, not waited for
        worker.proc.kill()
        worker.proc.wait()
        with pytest.raises(ValueError, match="unknown.json.*expect_column_values_to_be_lovely"):
            gx_process.confirm_checks()
    finally:
        gx_process.stop_worker()
        gx_process.forget_checks()


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


def test_validation_in_duckdb_imports_no_gx_in_the_process(tmp_path):
    """A build validates in DuckDB without Great Expectations in its process (its import is ~3-5 s of Python that
    held the build's interpreter lock): the suites are checked by the GX worker, the results are plain data."""
    import subprocess
    import sys

    code = """
import sys, duckdb
from warehouse.validate import gx_process
from warehouse.validate.pushdown import validate_stage_duckdb
gx_process.start_worker()
con = duckdb.connect()
con.execute("create table adsl as select 'S' || i as USUBJID, 'Y' as ITTFL from range(3) t(i)")
v = validate_stage_duckdb("marts", con, ["adsl"])
print(len(v.results), int(v.results["success"].fill_null(False).sum()), len(v.gx_results))
print('great_expectations' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ran, passed, runs, gx_imported = out.stdout.split()
    assert int(ran) > 0 and int(runs) > 0 and int(passed) > 0
    assert gx_imported == "False"


def test_the_gx_worker_defers_what_gx_imports_and_never_uses():
    """The worker defers scipy.stats and altair (gx_worker.defer_imports): GX imports and checks a suite without
    loading them, and a deferred module still works the moment it is used."""
    import subprocess
    import sys

    code = """
import sys, importlib.util
from warehouse.validate import gx_worker
gx_worker.defer_imports()
errors = gx_worker.check_suites([{"name": "s", "expectations": [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "USUBJID"}}]}])
print(errors == [None], isinstance(sys.modules["scipy.stats"], importlib.util._LazyModule))
import scipy.stats
print(scipy.stats.norm.cdf(0.0), isinstance(sys.modules["scipy.stats"], importlib.util._LazyModule))
"""
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "0.5", "False"]
