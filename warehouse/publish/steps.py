"""The publish stage as the build calls it: a build file started, completed and swapped in (or kept, blocked),
its record written; a failed build recorded and its partial file removed.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.publish import (
    BuildPaths,
    BuildRecord,
    discard_partial_builds,
    finalise_build,
    new_build_id,
    prune_builds,
    read_records,
    swap_in,
    utc_now,
    write_record,
)
from warehouse.rebuild import summarise
from warehouse.request import BuildRequest, BuildResult
from warehouse.transform.runner import (
    ModelRun,
)
from warehouse.validate.steps import count_findings


def start_build(request: BuildRequest, export_id: str, fingerprint: str = "") -> tuple[str, Path]:
    """Open a new partial build file; earlier partial files (from killed builds) are discarded first."""
    paths = request.paths
    paths.builds.mkdir(parents=True, exist_ok=True)
    discard_partial_builds(paths)
    build_id = new_build_id(export_id)
    write_record(paths, BuildRecord(build_id=build_id, started_at=utc_now().isoformat(), export_id=export_id,
                                    blinded=request.blinded, fingerprint=fingerprint))
    return build_id, paths.partial_file(build_id)


def publish(paths: BuildPaths, build_id: str, blocked: bool, keep: int | None = None) -> Path | None:
    """Complete the build file, and swap it in unless validation blocked it; then keep the last `keep` builds."""
    from warehouse.validate.report import promote_reports

    final = finalise_build(paths, build_id)
    if blocked:
        return None
    published = swap_in(paths, final)
    promote_reports(paths.reports, build_id)
    prune_builds(paths, keep)
    return published


def record_outcome(request: BuildRequest, build_id: str, export_id: str, build_file: Path, validations: list,
                   history: pl.DataFrame, model_runs: list[ModelRun], stage_seconds: dict[str, float],
                   published: Path | None, report: Path, analysis_report: Path) -> BuildResult:
    """Write the finished build's record (published or blocked) and return what the build did."""
    paths = request.paths
    blocked = published is None
    errors, warnings = count_findings(validations)
    final = paths.build_file(build_id)
    subjects, tables = summarise(final if final.exists() else build_file)
    earlier = next((r for r in read_records(paths) if r.build_id == build_id), None)
    write_record(paths, BuildRecord(
        build_id=build_id, started_at=earlier.started_at if earlier else build_id, export_id=export_id,
        blinded=request.blinded, status="blocked" if blocked else "published", finished_at=utc_now().isoformat(),
        subjects=subjects, tables=len(tables), errors=errors, warnings=warnings,
        message=f"{errors} error finding(s) blocked publishing" if blocked else "", stage_seconds=stage_seconds,
        fingerprint=earlier.fingerprint if earlier else "", sha256=earlier.sha256 if earlier else ""))
    open_findings = int((history.get_column("status") == "open").sum()) if history.height else 0
    return BuildResult(build_id=build_id, export_id=export_id, published=published, report=report,
                       analysis_report=analysis_report, subjects=subjects, tables=tables, errors=errors,
                       warnings=warnings, findings_open=open_findings, model_runs=model_runs,
                       stage_seconds=stage_seconds, blinded=request.blinded)


def fail_build(paths: BuildPaths, build_id: str, export_id: str, blinded: bool, err: BaseException) -> None:
    """Record a build that raised (a model failed, ...) as `failed`, and remove its partial build file at once,
    as after a crash: nothing of a failed build is left to look like a build. The record keeps the whole message
    (bounded): `warehouse status` shows it, a compile failure with every error."""
    from warehouse.publish import remove_partial_build

    remove_partial_build(paths, build_id)
    started = next((r.started_at for r in read_records(paths) if r.build_id == build_id), build_id)
    write_record(paths, BuildRecord(build_id=build_id, started_at=started, export_id=export_id, blinded=blinded,
                                    status="failed", finished_at=utc_now().isoformat(),
                                    message=failure_message(err, limit=4000)))


def failure_message(err: BaseException, limit: int = 300) -> str:
    """`Type: message`, cut to `limit` characters (a 100,000-column export must not give a 75 KB line)."""
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) <= limit else text[: limit - 30].rstrip() + f" ... ({len(text) - limit + 30} more chars)"
