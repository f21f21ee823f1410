"""Tamper evidence: a build file's content hash, recorded when it is completed, checked against the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from warehouse.publish.paths import BuildPaths, read_records


def content_sha256(path: Path, chunk: int = 8 << 20) -> str:
    """SHA-256 of a file's bytes (a build file: ~1 s per GB here)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Verification:
    """One file checked against the hash its build recorded when it was completed."""

    path: Path
    build_id: str | None
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return bool(self.expected) and self.expected == self.actual

    def describe(self) -> str:
        if self.build_id is None:
            return f"{self.path}: not the file of any recorded build: do not trust it (rebuild with --force)"
        if not self.expected:
            return f"{self.path}: build {self.build_id} recorded no content hash (made before hashes were kept)"
        if self.ok:
            return f"{self.path}: build {self.build_id}, sha256 {self.actual[:16]}... as recorded"
        return (f"{self.path}: CHANGED after build {self.build_id} made it (sha256 {self.actual[:16]}... where "
                f"{self.expected[:16]}... was recorded): do not trust it; rebuild with --force")


def published_build_of(paths: BuildPaths) -> str | None:
    """The build whose file the published warehouse is (same inode: the hard link made at publish), else the
    build id its own `src.build_info` claims, else None."""
    if not paths.published.exists():
        return None
    inode = paths.published.stat().st_ino
    for build_file in paths.builds.glob("*.duckdb") if paths.builds.is_dir() else ():
        if build_file.stat().st_ino == inode:
            return build_file.name[: -len(".duckdb")]
    try:
        import duckdb

        with duckdb.connect(str(paths.published), read_only=True) as con:
            return con.execute("select build_id from src.build_info").fetchall()[0][0]
    except Exception:  # noqa: BLE001 - a file that does not even open is simply not a known build
        return None


def verify_file(paths: BuildPaths, path: Path, build_id: str | None) -> Verification:
    records = {r.build_id: r for r in read_records(paths)}
    record = records.get(build_id) if build_id else None
    return Verification(path=path, build_id=build_id if record else None,
                        expected=record.sha256 if record else "", actual=content_sha256(path))


def verify_published(paths: BuildPaths) -> Verification | None:
    """The published warehouse checked against its build's recorded hash (None when nothing is published)."""
    if not paths.published.exists():
        return None
    return verify_file(paths, paths.published, published_build_of(paths))
