"""Locked snapshots (`DIR/locks/<label>/`): a read-only copy of the published warehouse with a manifest of
content hashes, for a database lock in the clinical sense.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from warehouse.publish.files import crash_point, fsync_path
from warehouse.publish.lock import pid_alive
from warehouse.publish.paths import LOCKS_DIR, BuildPaths, utc_now

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
