"""The build lock on the direct path, and the blinding scanners themselves (they must find what they look for)."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
from ops_support import ARM_VALUES, PROJECT, direct_build_code, scan_duckdb, scan_text, scan_text_cells

from warehouse.publish import build_lock, lock_holder


def test_a_second_build_of_the_same_data_dir_waits_for_the_lock(tmp_path):
    with build_lock(tmp_path):
        holder = lock_holder(tmp_path)
        assert holder and holder["pid"] == os.getpid()
        env = {**os.environ, "WAREHOUSE_LOCK_TIMEOUT": "1"}
        proc = subprocess.run([sys.executable, "-c", direct_build_code(tmp_path)], env=env, cwd=PROJECT,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "BuildLocked" in proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "builds").exists()  # it never started
    assert lock_holder(tmp_path) is None  # released with the holder


def test_the_lock_is_per_open_file_so_threads_exclude_each_other_too(tmp_path):
    import threading

    inside = threading.Event()
    release = threading.Event()
    waited = []

    def first():
        with build_lock(tmp_path):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)
    threading.Timer(0.5, release.set).start()
    with build_lock(tmp_path, on_wait=waited.append, poll_seconds=0.05):
        assert release.is_set()
    t.join(10)
    assert waited and waited[0]["pid"] == os.getpid()


def test_the_scanners_find_arms_kit_pairs_and_per_arm_groups(tmp_path):
    db = tmp_path / "leaky.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create table main.adsl as select 'K001' as KITNO, 'Placebo' as TRT01P")
        con.execute("create table main.ar_primary as select 'A' as arm, 3 as n union all select 'B', 4")
        con.execute("create table main.kits as select 'K002' as kit, 'DEX' as code")
    problems = scan_duckdb(db, set(ARM_VALUES), {"K001": ("PBO", "Placebo"), "K002": ("DEX", "Dexmedetomidine")},
                           identifier_names={"dob"})
    text = " ".join(problems)
    assert "pairs kit K001" in text and "pairs kit K002" in text
    assert "ar_primary.arm has groups" in text and "['Placebo']" in text
    assert scan_text("r.html", "<td>Placebo</td>", set(ARM_VALUES))
    assert not scan_text("r.html", "<p>placebo-controlled; index DEXA</p>", set(ARM_VALUES))
    assert scan_text_cells("r.csv", "x,ID,y", {"ID"}) and not scan_text_cells("r.html", "<th>Run ID</th>", {"ID"})
