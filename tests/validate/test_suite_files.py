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
