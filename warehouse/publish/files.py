"""Build files: a partial file made complete and read-only, swapped in by one atomic rename, the last K kept;
what a failed or killed build left removed; the crash test hook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from warehouse.publish.paths import (
    CRASH_ENV,
    DEFAULT_KEEP_BUILDS,
    LOCKS_DIR,
    PARTIAL_SUFFIX,
    SWAP_NAME,
    BuildPaths,
    read_records,
    write_record,
)
from warehouse.publish.verify import content_sha256


def discard_partial_builds(paths: BuildPaths) -> list[Path]:
    """Remove what killed builds left behind: never visible as a build, never published.

    Call it holding the build lock (`build_lock`): then any partial file, swap link or `running` record is from a
    build that died (SIGKILL, power loss). Its record is marked `interrupted` so `warehouse status` says so.
    """
    removed = []
    if paths.builds.is_dir():
        removed += remove_partial_files(paths, "*")
        for tmp in paths.builds.glob("*.json.tmp"):
            tmp.unlink(missing_ok=True)
        for record in read_records(paths):
            if record.status == "running":
                record.status = "interrupted"
                record.message = record.message or "the build process died before it finished"
                write_record(paths, record)
    swap = paths.root / SWAP_NAME
    if swap.exists():
        swap.unlink(missing_ok=True)
        removed.append(swap)
    return removed


def remove_partial_build(paths: BuildPaths, build_id: str) -> None:
    """Remove one failed build's partial file, its WAL and its staging spill folder (same prefix)."""
    remove_partial_files(paths, f"{build_id}.duckdb")


def remove_partial_files(paths: BuildPaths, prefix: str) -> list[Path]:
    """Remove `builds/<prefix>.building*`: partial files, their WAL, staging spill folders."""
    removed = []
    for partial in paths.builds.glob(f"{prefix}{PARTIAL_SUFFIX}*"):
        if partial.is_dir():  # a staging spill folder
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's: its entries) data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finalise_build(paths: BuildPaths, build_id: str) -> Path:
    """Turn a closed partial build file into a complete build (a rename: atomic), read-only from now on."""
    partial = paths.partial_file(build_id)
    final = paths.build_file(build_id)
    fsync_path(partial)
    os.chmod(partial, 0o444)
    os.replace(partial, final)
    for record in read_records(paths):
        if record.build_id == build_id:
            record.sha256 = content_sha256(final)
            write_record(paths, record)
    return final


def swap_in(paths: BuildPaths, build_file: Path) -> Path:
    """Make `build_file` the published warehouse with one atomic rename.

    A hard link keeps the build in `builds/` as well without copying it; where links are not possible
    (another file system), a copy is made beside the target first, so the rename stays atomic.
    A stale `warehouse.duckdb.wal` (left by someone who opened the published file read-write) would be replayed
    into the new file by the next writer, so it goes before the swap.
    """
    staging = paths.root / SWAP_NAME
    staging.unlink(missing_ok=True)
    try:
        os.link(build_file, staging)
    except OSError:
        shutil.copy2(build_file, staging)
        fsync_path(staging)
    Path(f"{paths.published}.wal").unlink(missing_ok=True)
    crash_point("publish")
    os.replace(staging, paths.published)
    fsync_path(paths.root)
    return paths.published


def crash_point(stage: str, detail: str | None = None) -> None:
    """Test hook: with WAREHOUSE_CRASH_AT=<stage> (or <stage>:<detail>) the process SIGKILLs itself here.

    Stages that call it: `demo` (the demo study generated, not yet moved into place), `extract` (the export has
    landed), `stage` (after the first `src` table is written),
    `transform` (after a model ran; `transform:<model>` picks one), `publish` (the build is complete and linked
    beside the published file, just before the atomic rename), `lock` (after the first 8 MB of a snapshot copy;
    `lock:<label>`). Never set it outside tests.
    """
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in (stage, f"{stage}:{detail}"):
        os.kill(os.getpid(), signal.SIGKILL)


def keep_builds_default() -> int:
    """K: WAREHOUSE_KEEP_BUILDS, else 5."""
    return int(os.environ.get("WAREHOUSE_KEEP_BUILDS", DEFAULT_KEEP_BUILDS))


def locked_build_ids(paths: BuildPaths) -> set[str]:
    ids = set()
    for manifest in (paths.root / LOCKS_DIR).glob("*/manifest.json"):
        try:
            ids.add(json.loads(manifest.read_text(encoding="utf-8"))["build_id"])
        except (OSError, ValueError, KeyError):
            continue
    return ids


def prune_builds(paths: BuildPaths, keep: int | None = None) -> list[Path]:
    """Delete build files beyond the newest `keep`; never the published one, never one a lock was taken from.

    Build records (`builds/<id>.json`) stay: `warehouse status` keeps the history. Readers holding a deleted
    build open keep reading it (the inode lives until they close).
    """
    keep = keep_builds_default() if keep is None else keep
    if keep < 1 or not paths.builds.is_dir():
        return []
    published = os.stat(paths.published) if paths.published.exists() else None
    protected = locked_build_ids(paths)
    removed = []
    files = sorted(paths.builds.glob("*.duckdb"), key=lambda p: p.name, reverse=True)
    for index, build_file in enumerate(files):
        st = os.stat(build_file)
        is_published = published is not None and (st.st_ino, st.st_dev) == (published.st_ino, published.st_dev)
        if index < keep or is_published or build_file.name.removesuffix(".duckdb") in protected:
            continue
        build_file.unlink(missing_ok=True)
        removed.append(build_file)
    return removed
