"""Publish: a build is written to its own DuckDB file and swapped in atomically once validation lets it through.

Readers never see a half-built warehouse: they open `warehouse.duckdb`, which is only ever replaced by a rename
of a complete, closed file. A reader holding the old file keeps its consistent view (POSIX keeps the old inode
alive), and the next connection sees the new build.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PARTIAL_SUFFIX = ".building"


@dataclass(frozen=True)
class BuildPaths:
    """Where one build's outputs go; an unblinded build has a root of its own so the two never mix."""

    data_dir: Path
    blinded: bool

    @property
    def root(self) -> Path:
        return self.data_dir if self.blinded else self.data_dir / "unblinded"

    @property
    def published(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def builds(self) -> Path:
        return self.root / "builds"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def build_file(self, build_id: str) -> Path:
        return self.builds / f"{build_id}.duckdb"

    def partial_file(self, build_id: str) -> Path:
        return self.builds / f"{build_id}.duckdb{PARTIAL_SUFFIX}"

    def record_file(self, build_id: str) -> Path:
        return self.builds / f"{build_id}.json"


@dataclass
class BuildRecord:
    """What `warehouse status` lists: one per build attempt, published or not."""

    build_id: str
    started_at: str
    export_id: str | None = None
    blinded: bool = True
    status: str = "running"  # running | published | blocked | failed
    finished_at: str | None = None
    subjects: int | None = None
    tables: int | None = None
    errors: int = 0
    warnings: int = 0
    message: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_build_id(export_id: str | None, now: datetime | None = None) -> str:
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{(export_id or 'none')[:8]}"


def write_record(paths: BuildPaths, record: BuildRecord) -> None:
    paths.builds.mkdir(parents=True, exist_ok=True)
    target = paths.record_file(record.build_id)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    os.replace(tmp, target)


def read_records(paths: BuildPaths) -> list[BuildRecord]:
    """Build records, newest first."""
    if not paths.builds.is_dir():
        return []
    records = []
    for path in paths.builds.glob("*.json"):
        try:
            records.append(BuildRecord(**json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, TypeError):
            continue
    return sorted(records, key=lambda r: r.build_id, reverse=True)


def discard_partial_builds(paths: BuildPaths) -> list[Path]:
    """Remove what killed builds left behind: never visible as a build, never published."""
    removed = []
    if paths.builds.is_dir():
        for partial in paths.builds.glob(f"*{PARTIAL_SUFFIX}*"):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finalise_build(paths: BuildPaths, build_id: str) -> Path:
    """Turn a closed partial build file into a complete build (a rename: atomic)."""
    partial = paths.partial_file(build_id)
    final = paths.build_file(build_id)
    fsync_path(partial)
    os.replace(partial, final)
    return final


def swap_in(paths: BuildPaths, build_file: Path) -> Path:
    """Make `build_file` the published warehouse with one atomic rename.

    A hard link keeps the build in `builds/` as well without copying it; where links are not possible
    (another file system), a copy is made beside the target first, so the rename stays atomic.
    """
    staging = paths.root / ".warehouse.duckdb.swap"
    staging.unlink(missing_ok=True)
    try:
        os.link(build_file, staging)
    except OSError:
        shutil.copy2(build_file, staging)
        fsync_path(staging)
    os.replace(staging, paths.published)
    dir_fd = os.open(paths.root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return paths.published
