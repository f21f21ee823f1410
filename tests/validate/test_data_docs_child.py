"""Issue 19: a build's Data Docs rendered by its GX worker (validate.gx_process, a process of its own) while the
build goes on, taken by build_data_docs: the same site as rendered in the build's process, and rendered there
when the worker fails."""

from __future__ import annotations

import logging
import os
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from validate_frames import choices_frame, items_frame, raw_form

from warehouse.validate import datadocs, gx_process
from warehouse.validate.datadocs import build_data_docs, start_data_docs

ITEMS = items_frame([
    ("vitals", "hr", "text", "integer", "20", "250", None, True),
    ("vitals", "sex", "radio", None, None, None, "1, Male | 2, Female", True),
])
META = {"items": ITEMS, "choices": choices_frame(ITEMS)}
STAMPS = (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # element ids
          r"|\d{8}T\d{6}(\.\d+)?Z|\b\d{10}\.\d+\b"  # run times, in names and as epoch seconds
          r"|\d{4}-\d{2}-\d{2}[T ][\d:.]+(Z|\+00:00)?")  # and as dates


@pytest.fixture(scope="module")
def validations(gx_loaded):
    """One raw-stage validation of a small form: a heart rate that is not a number, sex 3 not a code."""
    from warehouse.validate import validate_stage

    rows = [{"subject_id": f"01-00{k}", "event": "day_1", "repeat_instance": None, "site_id": "01", "hr": hr,
             "sex": sex} for k, (hr, sex) in enumerate([("80", "1"), ("fast", "2"), ("72", "3")], 1)]
    v = validate_stage("raw", {"vitals": raw_form(rows, ["hr", "sex"])}, META)
    assert sorted(v.findings.select("subject_id", "field").rows()) == [("01-002", "hr"), ("01-003", "sex")]
    assert v.gx_results  # the site has failures to show
    return [v]


def site(folder: Path) -> dict[str, str]:
    """Every file of a site by its path, path and text with the run times and the element ids (random UUIDs) that
    GX stamps on each render masked."""
    def mask(text: str) -> str:
        return re.sub(STAMPS, "STAMP", text)

    return {mask(str(p.relative_to(folder))): mask(p.read_bytes().decode("utf-8", errors="replace"))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_worker_renders_the_same_site_as_the_build_process(validations, tmp_path, caplog):
    inline = build_data_docs(tmp_path / "inline", validations, "run1")
    assert start_data_docs(tmp_path / "child", validations, "run1")
    worker = gx_process.current_worker()
    assert worker is not None and worker.proc.pid != os.getpid()
    with caplog.at_level(logging.WARNING):
        forked = build_data_docs(tmp_path / "child", validations, "run1")
    assert "GX worker failed" not in caplog.text  # the worker's site, not the fallback's
    assert forked == (tmp_path / "child" / "index.html").resolve() and inline.name == "index.html"
    assert not datadocs._PENDING  # taken
    assert worker.proc.poll() is not None and gx_process.current_worker() is None  # and the worker ended
    a, b = site(tmp_path / "inline"), site(tmp_path / "child")
    assert len([n for n in a if n.endswith(".html")]) >= 3  # index, the run's page, the suites' pages
    assert sorted(a) == sorted(b) and a == b


def test_a_worker_that_dies_leaves_the_site_to_the_build_process(validations, tmp_path, caplog):
    out = tmp_path / "docs"
    assert start_data_docs(out, validations, "run2")
    gx_process.current_worker().proc.send_signal(signal.SIGKILL)  # killed while it imports GX or renders
    with caplog.at_level(logging.WARNING, logger="warehouse.validate.datadocs"):
        index = build_data_docs(out, validations, "run2")
    # the EOF on its pipe, or (already reaped) no worker: either way the build's process renders
    assert "Data Docs by the GX worker failed (" in caplog.text
    assert index == (out / "index.html").resolve() and index.is_file()
    assert site(out) == site(_rendered_inline(validations, tmp_path / "ref", "run2"))
    assert gx_process.current_worker() is None


def test_nothing_to_render_starts_no_worker(tmp_path):
    gx_process.stop_worker()
    empty = SimpleNamespace(gx_results=[], suites=[])
    assert not start_data_docs(tmp_path / "none", [empty], "run3")
    assert not datadocs._PENDING and build_data_docs(tmp_path / "none", [empty], "run3") is None
    assert gx_process.current_worker() is None


def _rendered_inline(validations: list, out: Path, run: str) -> Path:
    build_data_docs(out, validations, run)
    return out
