"""`warehouse extract` as a data manager runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

from extract_samples import write_redcap

PROJECT = Path(__file__).resolve().parents[2]


def warehouse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse.cli", *args], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300)


def printed_forms(stdout: str) -> dict[str, tuple[int, int]]:
    """`  <form>  <rows> rows  <subjects> subjects` lines -> {form: (rows, subjects)}."""
    return {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^  (\S+)\s+(\d+) rows\s+(\d+) subjects$", stdout,
                                                               re.MULTILINE)}


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_extract_prints_rows_and_subjects_per_form(fixtures: Path, tmp_path: Path) -> None:
    project = fixtures / "redcap" / "repeating-instruments"
    with open(project / "data.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    bp = [r for r in rows if r["redcap_repeat_instrument"] == "bp"]
    assert bp, "the fixture has repeating bp instances"
    proc = warehouse("extract", "--export", str(project), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"Export [0-9a-f]{16} \(redcap\) landed: ", proc.stdout)
    forms = printed_forms(proc.stdout)
    assert forms["bp"] == (len(bp), len({r["record_id"] for r in bp}))
    # the same export again: a no-op, same counts
    again = warehouse("extract", "--export", str(project), "--data-dir", str(tmp_path / "data"))
    assert again.returncode == 0 and "already landed (no change)" in again.stdout
    assert printed_forms(again.stdout) == forms


def test_extract_counts_a_500_record_project(fixtures: Path, tmp_path: Path) -> None:
    project = fixtures / "redcap" / "clinical-trial-1"
    with open(project / "data.csv", newline="", encoding="utf-8-sig") as fh:
        ids = [r["record_id"] for r in csv.DictReader(fh)]
    proc = warehouse("extract", "--export", str(project), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    assert printed_forms(proc.stdout) == {"demographics": (len(ids), len(set(ids)))}
    assert len(ids) >= 500


def test_extract_bad_export_exits_2_with_one_line_error(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x")
    data_file = folder / "STUDY_DATA_2024-01-01.csv"
    data_file.write_bytes(data_file.read_bytes()[:-12])  # cut inside the last record
    proc = warehouse("extract", "--export", str(folder), "--data-dir", str(tmp_path / "data"))
    line = one_line_error(proc)
    assert line.startswith("error: STUDY_DATA_2024-01-01.csv line 7: ")
    assert proc.stdout == ""
    assert not (tmp_path / "data" / "raw").exists() or not any(
        p for p in (tmp_path / "data" / "raw").iterdir() if not p.name.startswith("."))
    (q,) = (tmp_path / "data" / "quarantine").iterdir()
    assert (q / "REASON.txt").read_text(encoding="utf-8").splitlines()[0] == line.removeprefix("error: ")


def test_extract_missing_export_exits_2(tmp_path: Path) -> None:
    line = one_line_error(warehouse("extract", "--export", str(tmp_path / "nowhere"), "--data-dir",
                                    str(tmp_path / "data")))
    assert str(tmp_path / "nowhere") in line


def test_extract_dialect_options(tmp_path: Path) -> None:
    folder = write_redcap(tmp_path / "x", sep="|")
    data = str(tmp_path / "data")
    line = one_line_error(warehouse("extract", "--export", str(folder), "--data-dir", data))
    assert "STUDY_DATA_2024-01-01.csv line 1" in line and "--delimiter '|'" in line
    proc = warehouse("extract", "--export", str(folder), "--data-dir", data, "--delimiter", "|", "--encoding",
                     "utf-8")
    assert proc.returncode == 0, proc.stderr
    assert printed_forms(proc.stdout) == {"demographics": (3, 3), "hemodynamics": (3, 2)}
    line = one_line_error(warehouse("extract", "--export", str(folder), "--data-dir", data, "--encoding", "nope"))
    assert "unknown encoding 'nope'" in line

