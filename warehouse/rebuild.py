"""Whether a build is due: the fingerprint of what a build's content depends on, and the decisions a build
takes before any work (no export yet, no new export, up to date).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.db import connect_build
from warehouse.extract.steps import export_content_id, export_present
from warehouse.publish import (
    BuildPaths,
    BuildRecord,
    last_built_export,
    read_records,
)
from warehouse.request import BuildRequest, BuildResult, NoNewExport
from warehouse.resources import sql_dir

_CODE_FINGERPRINT: dict[Path, str] = {}  # project root -> fingerprint


def code_fingerprint() -> str:
    """SHA-256 over what turns an export into a warehouse: the engine's Python files, the active project's SQL
    models and expectation suites, and the versions of the libraries that compute it (the project's study.toml
    counts in build_fingerprint). Computed once per process and project (~10 ms)."""
    from warehouse.resources import expectations_dir, find_project

    project = find_project()
    if project not in _CODE_FINGERPRINT:
        import hashlib

        from warehouse.publish import package_versions

        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent
        roots = [(package, "*.py"), (sql_dir(), "*.sql"), (expectations_dir(), "*.json")]
        for root, pattern in roots:
            for path in sorted(root.rglob(pattern)):
                digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
                digest.update(path.read_bytes())
        digest.update(repr(sorted(package_versions().items())).encode())
        _CODE_FINGERPRINT[project] = digest.hexdigest()
    return _CODE_FINGERPRINT[project]


def build_fingerprint(request: BuildRequest, export_id: str, randomisation: Path | None) -> str:
    """What a build's content depends on: the export's content, the code, the study configuration, blinding and
    (unblinded) the randomisation list's content. Two builds with the same fingerprint have the same tables."""
    import hashlib

    digest = hashlib.sha256()
    for part in (export_id, code_fingerprint(), str(request.blinded)):
        digest.update(part.encode() + b"\0")
    for path in (request.study.source, randomisation):
        if path is not None and Path(path).is_file():
            digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    from warehouse.review.store import decisions_digest

    digest.update(decisions_digest(request.data_dir).encode())  # a new decision on findings: rebuild ("" if none)
    return digest.hexdigest()[:32]


def published_build_id(paths: BuildPaths) -> str | None:
    if not paths.published.exists():
        return None
    try:
        with duckdb.connect(str(paths.published), read_only=True) as con:
            return con.execute("select build_id from src.build_info").fetchall()[0][0]
    except (duckdb.Error, IndexError):
        return None


def up_to_date_build(paths: BuildPaths, fingerprint: str) -> BuildRecord | None:
    """The published build's record when it was built with this fingerprint and the published file is still the
    one it made (its content hash as recorded), else None (a rebuild is due)."""
    from warehouse.publish import verify_published

    build_id = published_build_id(paths)
    for record in read_records(paths):
        if record.build_id == build_id:
            if record.status != "published" or record.fingerprint != fingerprint:
                return None
            checked = verify_published(paths)
            return record if checked is not None and checked.ok else None
    return None


def up_to_date_result(paths: BuildPaths, record: BuildRecord) -> BuildResult:
    """The published build, as the result of a build that had nothing to do."""
    subjects, tables = summarise(paths.published)
    with duckdb.connect(str(paths.published), read_only=True) as con:
        open_findings = con.execute("select count(*) from main.findings_history where status = 'open'").fetchall()[0][0]
    reports = paths.reports / record.build_id
    return BuildResult(build_id=record.build_id, export_id=record.export_id or "", published=paths.published,
                       report=reports / "validation.html", analysis_report=reports / "analysis.html",
                       subjects=subjects, tables=tables, errors=record.errors, warnings=record.warnings,
                       findings_open=int(open_findings), model_runs=[], stage_seconds={}, blinded=record.blinded,
                       up_to_date=True)


def nothing_to_do(request: BuildRequest, export: Path, randomisation: Path | None) -> NoNewExport | BuildResult | None:
    """The decisions a build takes before any work, from file hashes and the build records alone (no server, no
    lock, no parsing), so that a build with nothing to do answers in about a second: no export has arrived
    (`only_new`), this export was already built (`only_new`), or the published build already has this export,
    code and study (unless `force`). None: build. The command line asks before it starts Prefect; the flow and
    `run_build` ask again under the build lock, so a build that finished meanwhile is seen."""
    paths = request.paths
    published = paths.published if paths.published.exists() else None
    if request.only_new and not export_present(export):
        return NoNewExport("", None, str(request.data_dir), published)
    content_id = export_content_id(export)
    if content_id is None:
        return None
    if request.only_new:
        last_export, last_build = last_built_export(paths)
        if last_export == content_id:
            return NoNewExport(content_id, last_build, str(request.data_dir), published)
    if request.force:
        return None
    current = up_to_date_build(paths, build_fingerprint(request, content_id, randomisation))
    return up_to_date_result(paths, current) if current is not None else None


def summarise(build_file: Path) -> tuple[int, list[str]]:
    with connect_build(build_file, read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema in ('main', 'intermediate', 'staging') order by 1"
            ).fetchall()
        ]
        # the subject-level mart: ADSL in an ADaM project, `subjects` in one started by `warehouse init`
        mart = next((t for t in ("main.adsl", "main.subjects") if t in tables), None)
        subjects = con.execute(f"select count(*) from {mart}").fetchall()[0][0] if mart else 0
    return subjects, tables
