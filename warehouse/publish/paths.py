"""Where a data directory keeps its builds, and the build records `warehouse status` lists.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

PARTIAL_SUFFIX = ".building"


SWAP_NAME = ".warehouse.duckdb.swap"


LOCK_FILE = ".build.lock"


LOCKS_DIR = "locks"


DEFAULT_KEEP_BUILDS = 5


CRASH_ENV = "WAREHOUSE_CRASH_AT"


LOCK_TIMEOUT_ENV = "WAREHOUSE_LOCK_TIMEOUT"


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
    status: str = "running"  # running | published | blocked | failed | interrupted (process died)
    finished_at: str | None = None
    subjects: int | None = None
    tables: int | None = None
    errors: int = 0
    warnings: int = 0
    message: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""  # what the content depends on (export, code, study, blinding): see rebuild.build_fingerprint
    sha256: str = ""  # the complete build file's content hash, taken when it was made read-only (tamper evidence)


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


def last_built_export(paths: BuildPaths) -> tuple[str | None, str | None]:
    """(export_id, build_id) of the newest finished build (published, or blocked by validation), else (None, None).

    A scheduled build compares the export it finds with this: the same content was already built.
    """
    for record in read_records(paths):
        if record.status in ("published", "blocked") and record.export_id:
            return record.export_id, record.build_id
    return None, None
