"""Small published data directories made by hand (real DuckDB files, published by warehouse.publish's own
finalise_build + swap_in), for the read-only session tests: fast, no build."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from warehouse.publish import BuildPaths, finalise_build, lock_snapshot, swap_in

ARMS = ("Dexmedetomidine", "Placebo")


def publish_build(paths: BuildPaths, build_id: str, subjects: int, arm: str | None = None) -> Path:
    """Write a build file (src.build_info, main.adsl with `subjects` rows) and publish it as publish.py does:
    the partial file is finalised (0444, renamed into builds/) and hard-linked over warehouse.duckdb."""
    paths.builds.mkdir(parents=True, exist_ok=True)
    partial = paths.partial_file(build_id)
    blinded = paths.blinded
    with duckdb.connect(str(partial)) as con:
        con.execute("create schema src")
        con.execute("create table src.build_info as select ? as build_id, 'e1' as export_id, 'DEMO' as study_id, "
                    "? as blinded, 'Blinded' as blinded_label, now()::timestamp as built_at", [build_id, blinded])
        arm_sql = "'Blinded'" if blinded else f"case when i % 2 = 0 then '{ARMS[0]}' else '{ARMS[1]}' end"
        con.execute(f"create table main.adsl as select printf('DEMO-%03d', i) as USUBJID, "
                    f"case when i % 3 = 0 then 'F' else 'M' end as SEX, {arm_sql} as TRT01P "
                    f"from range({subjects}) t(i)")
    build_file = finalise_build(paths, build_id)
    swap_in(paths, build_file)
    return build_file


def make_data_dir(root: Path, subjects: int = 150, lock: str | None = "interim-1") -> Path:
    """DIR with a published blinded build, a published unblinded one (the arms) and, optionally, a lock."""
    data_dir = root / "data"
    publish_build(BuildPaths(data_dir, blinded=True), "20250101T000000000000Z-e1", subjects)
    publish_build(BuildPaths(data_dir, blinded=False), "20250101T000000000000Z-e1", subjects)
    if lock:
        lock_snapshot(BuildPaths(data_dir, blinded=True), lock)
    return data_dir


def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: relative path -> (sha256, inode): what a refused statement must leave alone."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
            for p in sorted(folder.rglob("*")) if p.is_file()}
