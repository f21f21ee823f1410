"""Publish: a build is written to its own DuckDB file and swapped in atomically once validation lets it through.

Readers never see a half-built warehouse: they open `warehouse.duckdb`, which is only ever replaced by a rename
of a complete, closed file. A reader holding the old file keeps its consistent view (POSIX keeps the old inode
alive), and the next connection sees the new build.

Also here, because they guard the same files: the build lock (one build per data directory at a time, `flock`
on `DIR/.build.lock`), pruning of old build files (keep the last K), locked snapshots (`DIR/locks/<label>/`,
a read-only copy with a manifest of content hashes) and the crash test hook (`WAREHOUSE_CRASH_AT`).
See docs/operations.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# -- test hook --------------------------------------------------------------------------------------------------


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


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine is alive (a folder or lock named after it may be reclaimed when not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the build lock ---------------------------------------------------------------------------------------------


class BuildLocked(Exception):
    """Another build of this study (same data directory) holds the lock and the wait timed out."""


def lock_holder(data_dir: Path) -> dict | None:
    """Who holds the build lock of `data_dir` (pid, host, since), or None when no build runs."""
    path = Path(data_dir) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(path.read_text(encoding="utf-8") or "{}")
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def build_lock(
    data_dir: Path,
    timeout: float | None = None,
    on_wait: Callable[[dict], None] | None = None,
    poll_seconds: float = 0.2,
) -> Iterator[Path]:
    """Hold the build lock of `data_dir` (exclusive `flock` on DIR/.build.lock) for the whole build.

    One build per data directory (one study's warehouse, blinded and unblinded roots alike) at a time. The kernel
    drops the lock when the holder dies, even by SIGKILL, so a crashed build never blocks the next one. Waits for
    a running build (calling `on_wait` once with the holder's pid/host/since); `timeout` seconds (default: the
    WAREHOUSE_LOCK_TIMEOUT environment variable, else wait forever) then BuildLocked. `flock` locks are per open
    file, so two threads of one process exclude each other too. Not reliable on NFS: see docs/operations.md.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if timeout is None and os.environ.get(LOCK_TIMEOUT_ENV):
        timeout = float(os.environ[LOCK_TIMEOUT_ENV])
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    try:
                        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
                    except ValueError:
                        holder = {}
                    on_wait(holder)
                waited = True
                if deadline is not None and time.monotonic() >= deadline:
                    holder = lock_holder(data_dir) or {}
                    raise BuildLocked(
                        f"another build of {data_dir} is running (pid {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')} since {holder.get('since', '?')}); waited {timeout:g} s"
                    ) from None
                time.sleep(poll_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": utc_now().isoformat(timespec="seconds")}).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# -- keeping the last K builds ----------------------------------------------------------------------------------


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


def last_built_export(paths: BuildPaths) -> tuple[str | None, str | None]:
    """(export_id, build_id) of the newest finished build (published, or blocked by validation), else (None, None).

    A scheduled build compares the export it finds with this: the same content was already built.
    """
    for record in read_records(paths):
        if record.status in ("published", "blocked") and record.export_id:
            return record.export_id, record.build_id
    return None, None


# -- locked snapshots (a database lock in the clinical sense) ---------------------------------------------------

LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Columns that name or time a build rather than describe the data: left out of table content hashes, so that
# rebuilding the same export gives the same hashes. Listed per table in each manifest.
VOLATILE_COLUMNS = frozenset({"build_id", "built_at", "first_seen_build", "last_seen_build", "first_seen_at",
                              "last_seen_at", "closed_build", "closed_at", "validated_at", "run_at"})


class SnapshotError(Exception):
    """A lock cannot be taken (bad or existing label, nothing published); the message says which."""


def table_content_hashes(con) -> dict[str, dict]:
    """Per table (`schema.table`): rows, columns, excluded columns and a SHA-256 of its content.

    The hash is over UTF-8 lines: first the hashed columns as `name type` joined by `,`, then one line per row, the
    row as a JSON object (DuckDB `to_json`) of the hashed columns, the row lines sorted bytewise. Row order and
    file layout do not matter; build ids and timestamps (VOLATILE_COLUMNS) are excluded.
    """
    tables = con.sql(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
        "and table_catalog = current_database() order by 1, 2"
    ).fetchall()
    out = {}
    for schema, table in tables:
        cols = con.sql(
            "select column_name, data_type from information_schema.columns where table_schema = ? and "
            "table_name = ? and table_catalog = current_database() order by ordinal_position",
            params=[schema, table],
        ).fetchall()
        kept = [(c, t) for c, t in cols if c.lower() not in VOLATILE_COLUMNS]
        excluded = [c for c, _ in cols if c.lower() in VOLATILE_COLUMNS]
        digest = hashlib.sha256()
        digest.update((",".join(f"{c} {t}" for c, t in kept) + "\n").encode())
        select = ", ".join('"' + c.replace('"', '""') + '"' for c, _ in kept) or "null as _none"
        cursor = con.execute(
            f'select to_json(r)::varchar as j from (select {select} from "{schema}"."{table}") r order by j'
        )
        rows = 0
        while batch := cursor.fetchmany(10_000):
            for (line,) in batch:
                digest.update(line.encode())
                digest.update(b"\n")
            rows += len(batch)
        out[f"{schema}.{table}"] = {"rows": rows, "sha256": digest.hexdigest(), "columns": [c for c, _ in kept],
                                    "excluded_columns": excluded}
    return out


def code_version() -> str:
    """`git describe --always --dirty` of the project when it is a git checkout, else the package version."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return f"git:{out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return f"trial-warehouse {version('trial-warehouse')}"
    except PackageNotFoundError:
        return "unknown"


def package_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("trial-warehouse", "duckdb", "polars", "pyarrow", "sqlglot", "great-expectations", "prefect",
                 "pandas", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def list_locks(paths: BuildPaths) -> list[dict]:
    """The manifests of the locked snapshots, oldest first."""
    out = []
    for manifest in sorted((paths.root / LOCKS_DIR).glob("*/manifest.json")):
        if manifest.parent.name.startswith("."):
            continue
        try:
            out.append(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda m: m.get("locked_at", ""))


def lock_snapshot(paths: BuildPaths, label: str, note: str = "") -> Path:
    """Lock the published warehouse as `locks/<label>/`: a read-only copy plus manifest.json.

    The copy is read from one open descriptor of the published file, so a publish during the copy does not mix
    two builds. It is assembled in a hidden `.tmp-` folder and renamed into place: a killed lock leaves nothing
    visible. Files are made read-only (0444) and the folder 0555.
    """
    import duckdb

    if not LABEL_PATTERN.match(label):
        raise SnapshotError(f"lock label {label!r}: use letters, digits, '.', '_' or '-' (at most 64, not "
                            "starting with '.', '_' or '-')")
    locks = paths.root / LOCKS_DIR
    target = locks / label
    if target.exists():
        raise SnapshotError(f"lock {label!r} already exists: {target} (locks are never overwritten)")
    if not paths.published.exists():
        raise SnapshotError(f"nothing published under {paths.root}: build first")
    locks.mkdir(parents=True, exist_ok=True)
    for stale in locks.glob(".tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and pid_alive(int(pid))):
            _remove_tree(stale)
    tmp = locks / f".tmp-{label}-{os.getpid()}"
    tmp.mkdir()
    try:
        copy = tmp / "warehouse.duckdb"
        file_hash = hashlib.sha256()
        with open(paths.published, "rb") as src, open(copy, "wb") as dst:
            while chunk := src.read(8 << 20):
                file_hash.update(chunk)
                dst.write(chunk)
                crash_point("lock", label)
            dst.flush()
            os.fsync(dst.fileno())
        with duckdb.connect(str(copy), read_only=True) as con:
            where = con.sql("select table_schema from information_schema.tables where table_name = 'build_info' "
                            "order by table_schema = 'main' desc, table_schema limit 1").fetchall()
            info, info_cols = [], []
            if where:
                rel = con.sql(f'select * from "{where[0][0]}".build_info')
                info, info_cols = rel.fetchall(), list(rel.columns)
            tables = table_content_hashes(con)
        build = dict(zip(info_cols, info[0])) if info else {}
        export_id = build.get("export_id")
        manifest = {
            "label": label,
            "note": note,
            "locked_at": utc_now().isoformat(timespec="seconds"),
            "locked_by": os.environ.get("USER", ""),
            "build_id": build.get("build_id"),
            "study_id": build.get("study_id"),
            "blinded": build.get("blinded"),
            "built_at": str(build.get("built_at")),
            "exports": [_export_manifest(paths.data_dir, export_id)] if export_id else [],
            "code_version": code_version(),
            "packages": package_versions(),
            "file": {"name": "warehouse.duckdb", "sha256": file_hash.hexdigest(), "bytes": copy.stat().st_size},
            "hash_method": "sha256 over 'name type' header line + rows as to_json lines sorted bytewise; "
                           "excluded columns listed per table",
            "tables": tables,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        for f in tmp.iterdir():
            fsync_path(f)
            os.chmod(f, 0o444)
        os.rename(tmp, target)
        os.chmod(target, 0o555)
        fsync_path(locks)
    except BaseException:
        _remove_tree(tmp)
        raise
    return target


def _export_manifest(data_dir: Path, export_id: str) -> dict:
    path = data_dir / "raw" / export_id / "_meta" / "export.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"export_id": export_id}
    return {"export_id": export_id, "format": info.get("format"), "landed_at": info.get("landed_at"),
            "files": [{k: f.get(k) for k in ("name", "sha256", "bytes")} for f in info.get("files", [])]}


def _remove_tree(path: Path) -> None:
    def make_writable(func, p, _exc_info):
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        func(p)

    if path.exists():
        os.chmod(path, 0o755)
        shutil.rmtree(path, onerror=make_writable)
