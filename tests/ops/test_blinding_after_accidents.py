"""Blinding as an invariant (issue 15): what a blinded build leaves when it fails, when it is killed at each stage,
and what every read command prints afterwards, holds no arm: no arm label or code in any file, table or output,
and no kit paired with its arm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from ops_support import (
    ARM_VALUES,
    PROJECT,
    cli,
    is_text,
    scan_duckdb,
    scan_parquet,
    scan_text,
    text_of,
    walk_outputs,
)

pytestmark = pytest.mark.slow


def build_in_subprocess(data_dir, **env):
    code = ("from pathlib import Path\nfrom warehouse.build import BuildRequest, run_build\n"
            f"run_build(BuildRequest(data_dir=Path({str(data_dir)!r}), force=True))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def scan_data_dir(data_dir, kit_arms) -> list[str]:
    forbidden = set(ARM_VALUES)
    problems = []
    for path in walk_outputs(data_dir, skip_top=set()):
        if path.name == ".build.lock" or "unblinded" in path.relative_to(data_dir).parts:
            continue
        if path.suffix == ".duckdb":
            problems += scan_duckdb(path, forbidden, kit_arms)
        elif path.suffix == ".parquet":
            problems += scan_parquet(path, forbidden, kit_arms)
        elif is_text(path):
            problems += scan_text(str(path.relative_to(data_dir)), text_of(path), forbidden)
        else:
            problems += scan_text(str(path), path.read_bytes().decode("latin-1"), forbidden)
    return problems


def read_command_outputs(data_dir) -> str:
    outputs = []
    for args in (["status"], ["locks"], ["verify"], ["changes"],
                 ["query", "select * from adsl", "--format", "csv"],
                 ["query", "select * from findings_history", "--format", "json"],
                 ["query", "select * from ar_primary", "--format", "csv"]):
        proc = cli(*args, "--data-dir", str(data_dir))
        outputs.append(proc.stdout + proc.stderr)
    return "\n".join(outputs)


def test_failed_and_killed_blinded_builds_and_the_read_commands_reveal_no_arm(tmp_path, demo_secrets):
    data_dir = tmp_path / "data"
    kit_arms = demo_secrets["kit_arms"]
    first = build_in_subprocess(data_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    failed = build_in_subprocess(data_dir, WAREHOUSE_DUCKDB_MEMORY="1MB")  # fails (not killed)
    assert failed.returncode == 1 and "Error" in failed.stderr
    for stage in ("demo", "extract", "stage", "transform", "publish"):
        killed = build_in_subprocess(data_dir, WAREHOUSE_CRASH_AT=stage)
        assert killed.returncode in (-signal.SIGKILL, 0), (stage, killed.stderr[-2000:])  # demo exists already
    problems = scan_data_dir(data_dir, kit_arms)
    problems += scan_text("read commands", read_command_outputs(data_dir), set(ARM_VALUES))
    assert problems == []
    assert not [p for p in data_dir.rglob("randomisation*.csv") if "unblinded" not in p.relative_to(data_dir).parts]
