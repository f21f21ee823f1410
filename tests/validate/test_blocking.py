"""Blocking, through the command line as an operator runs it: a build of an export with errors leaves the
published warehouse byte-identical and exits 1 with one line naming the failed rules."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import duckdb
import pytest

EXIT_BLOCKED = 1


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def blocked(clean_build, tmp_path_factory):
    """A copy of the clean build's data directory (a published warehouse), then `warehouse build` of a demo export
    with problems injected at rate 0.05."""
    tmp = tmp_path_factory.mktemp("blocked")
    data = tmp / "data"
    shutil.copytree(clean_build.data_dir, data)
    published = data / "warehouse.duckdb"
    before = {"sha256": sha256(published), "inode": published.stat().st_ino,
              "builds": {p.name for p in (data / "builds").glob("*.duckdb")}}
    # the clean build's study (seed 7, 32 subjects) with problems injected: it differs only in the manifest's cells
    demo = cli("demo", "--out", str(tmp / "demo"), "--seed", "7", "--subjects", "32", "--inject-rate", "0.05",
               "--format", "redcap", timeout=300)
    assert demo.returncode == 0, demo.stderr
    proc = cli("build", "--export", str(tmp / "demo" / "redcap"), "--data-dir", str(data))
    return data, published, before, proc


def test_blocked_build_leaves_the_published_warehouse_byte_identical(blocked):
    data, published, before, proc = blocked
    assert proc.returncode == EXIT_BLOCKED, proc.stderr[-2000:]
    assert sha256(published) == before["sha256"]
    assert published.stat().st_ino == before["inode"]  # not even swapped for a copy of itself
    # the blocked build is kept beside it, recorded as blocked, never published
    new = [p for p in (data / "builds").glob("*.duckdb") if p.name not in before["builds"]]
    assert len(new) == 1
    record = json.loads(new[0].with_suffix(".json").read_text(encoding="utf-8"))
    assert record["status"] == "blocked" and record["errors"] > 0
    assert "Warehouse published" not in proc.stdout


def test_blocked_build_exits_with_one_line_naming_the_failed_rules(blocked):
    data, _, before, proc = blocked
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    line = errors[0]
    assert proc.stderr.rstrip().splitlines()[-1] == line  # the run's last word
    assert line.startswith("error: publishing blocked: ") and "the previous warehouse stays published" in line
    # the rules named are the build's failed error rules, first ones first, and the rest counted
    build = next(p for p in (data / "builds").glob("*.duckdb") if p.name not in before["builds"])
    with duckdb.connect(str(build), read_only=True) as con:
        failed = con.execute("select stage, rule from main.validation_results "
                             "where severity = 'error' and success = false").fetchall()
        n_errors = con.execute("select count(*) from main.findings where severity = 'error'").fetchall()[0][0]
    distinct = list(dict.fromkeys(failed))  # a rule failing on several tables is one rule
    assert len(distinct) > 3 and len(failed) > len(distinct)
    assert (f"{n_errors} error finding(s) from {len(distinct)} failed rule(s) on {len(failed)} table(s) and "
            "column(s)") in line
    named = [f"{stage}/{rule}" for stage, rule in distinct[:3]]
    assert all(line.count(n) == 1 for n in named) and f"and {len(distinct) - 3} more" in line
    assert line.index(named[0]) < line.index(named[1]) < line.index(named[2])


def test_the_change_report_of_the_new_export_is_stored_with_the_injected_cells(blocked):
    """main.export_changes of the (blocked) build: the field-level changes against the clean export are the
    injected cells, and no identifier item appears."""
    data, _, before, _ = blocked
    manifest = json.loads((data.parent / "demo" / "manifest.json").read_text(encoding="utf-8"))
    build = next(p for p in (data / "builds").glob("*.duckdb") if p.name not in before["builds"])
    with duckdb.connect(str(build), read_only=True) as con:
        changed = con.execute("select subject_id, form, field, old_value, new_value from main.export_changes "
                              "where change = 'changed'").fetchall()
        added = con.execute("select count(*) from main.export_changes where change = 'added'").fetchall()[0][0]
        previous = con.execute("select distinct from_export_id from main.export_changes").fetchall()
    cells = {(p["subject"], p["field"]) for p in manifest["problems"]
             if p["kind"] in ("out_of_range", "missing_required", "unknown_code")}
    assert cells and cells <= {(s, f) for s, _, f, _, _ in changed}
    assert all(old != new for *_, old, new in changed)
    duplicates = sum(1 for p in manifest["problems"] if p["kind"] == "duplicate_record")
    assert added <= duplicates
    assert not {f for _, _, f, _, _ in changed} & {"initials", "dob"}  # identifiers stay in the raw zone
    assert len(previous) == 1 and previous[0][0] is not None
