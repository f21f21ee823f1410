"""The build flow: one task per stage and per SQL model, so a run in the Prefect UI reads like the data flow.

Operations (docs/operations.md):
- a scheduled run (`only_new=True`) builds only when the export's content differs from the last build's export;
- `extract` is cached by the export's content hash (an unchanged export skips it: its task run is `Cached`);
- one build per study warehouse at a time: a Prefect global concurrency limit (visible in the UI, waits there) and,
  underneath, the data directory's `flock` build lock that direct builds take too;
- every run leaves a markdown summary (stages, models, validation) and a table of findings as artifacts: findings
  carry subject, field and value as a data manager needs them, never an arm (none exists in a blinded build) and
  never an identifier's value (withheld at validation).
"""

from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.utilities.annotations import quote  # a Model is passed as is: Prefect does not walk its fields

from flows.progress import report as progress
from warehouse import pipeline
from warehouse.models import Model, ModelRun
from warehouse.validate.artifacts import findings_markdown
from warehouse.publish import build_lock

GCL_LEASE_SECONDS = 60  # a persistent server gives a killed build's slot back after this (Prefect's minimum)
GCL_WAIT_SECONDS = 30  # the slot is free once the build lock is held: a longer wait is a fault, not a queue


NoNewExport = pipeline.NoNewExport  # re-exported: callers of the flow check for it
export_content_id = pipeline.export_content_id


def snapshot_landed(data_dir: Path, export_id: str | None) -> bool:
    return bool(export_id) and (Path(data_dir) / "raw" / export_id / "_meta" / "export.json").is_file()


def extract_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Cache key of `extract`: the export's content hash, the extractor's version, the study's CSV dialect
    overrides and the data dir it lands in."""
    from warehouse.extract.land import EXTRACT_VERSION

    content = export_content_id(Path(parameters["export"]))
    if content is None:
        return None
    study = parameters.get("study")
    dialect = repr(sorted(study.export_options().items())) if study is not None else ""
    where = hashlib.sha256((str(Path(parameters["data_dir"]).resolve()) + dialect).encode()).hexdigest()[:12]
    return f"extract-v{EXTRACT_VERSION}-{content}-{where}"


def retry_on_io_only(task, task_run, state) -> bool:
    """Retries are for I/O hiccups (a share briefly away, a file still being copied); bad input fails at once."""
    from warehouse.extract import ExportError

    try:
        state.result()
    except (pipeline.BuildError, ExportError):
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True


# -- tasks ----------------------------------------------------------------------------------------------------


@task(name="prepare-export", cache_policy=NONE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_io_only)
def prepare_export(request: pipeline.BuildRequest) -> tuple[Path, Path | None]:
    return pipeline.resolve_export(request)


@task(name="extract", cache_key_fn=extract_cache_key, persist_result=True, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_io_only)
def extract(export: Path, data_dir: Path, study=None) -> str:
    return pipeline.land(export, data_dir, study)


@task(name="stage", cache_policy=NONE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_on_io_only)
def stage(request: pipeline.BuildRequest, export_id: str, build_file: Path, randomisation: Path | None) -> dict:
    return pipeline.stage(request, export_id, build_file, randomisation)


@task(name="validate-raw", cache_policy=NONE)
def validate_raw(data_dir: Path, export_id: str):
    return pipeline.validate_raw(data_dir, export_id)


@task(name="validate-staging", cache_policy=NONE)
def validate_staging(data_dir: Path, export_id: str, build_file: Path):
    return pipeline.validate_staging(data_dir, export_id, build_file)


@task(name="validate-marts", cache_policy=NONE)
def validate_marts(build_file: Path):
    return pipeline.validate_marts(build_file)


@task(cache_policy=NONE)
def run_model(build_file: Path, model: Model) -> ModelRun:
    return pipeline.transform_model(build_file, model)


_MODEL_TASKS: dict[str, Task] = {}  # model name -> its task (see model_task)


def model_task(name: str) -> Task:
    """The task that runs the model `name`, named after it (so the Prefect UI lists each model as its own task):
    made once per model name and kept, instead of a `with_options` copy (a new Task: the function's source read
    and hashed again) at every call; a long-lived process (`warehouse serve`) reuses it for every build."""
    made = _MODEL_TASKS.get(name)
    if made is None:
        made = _MODEL_TASKS[name] = run_model.with_options(name=name)
    return made


def run_model_task(build_file: Path, model: Model) -> ModelRun:
    """One model as its own task run: what the flow passes to pipeline.run_models. The Model goes in as is
    (`quote`: Prefect does not walk its fields looking for futures)."""
    return model_task(model.name)(build_file, quote(model))


@task(name="document", cache_policy=NONE)
def document(build_file: Path, models: list[Model]) -> None:
    pipeline.document(build_file, models)


@task(name="publish", cache_policy=NONE)
def publish(request, build_id, export_id, build_file, validations, runs, seconds) -> pipeline.BuildResult:
    return pipeline.finish(request, build_id, export_id, build_file, validations, runs, seconds)


@task(name="artifacts", cache_policy=NONE, retries=2, retry_delay_seconds=1)
def write_artifacts(study_id: str, summary: str, rows: list[dict[str, Any]] | None) -> None:
    """The run's summary and its findings table (row-level, capped; no arm, no identifier value)."""
    key = "warehouse-build-" + "".join(c if c.isalnum() else "-" for c in study_id.lower())
    create_markdown_artifact(markdown=summary, key=key, description=f"{study_id} warehouse build")
    if rows is not None:
        create_table_artifact(table=rows, key=f"{key}-findings", description="Findings by stage, rule and severity")


# -- helpers ----------------------------------------------------------------------------------------------------


def resolve_study(study: str | None):
    """The study configuration named by the flow's `study` parameter (see warehouse.study.resolve_study)."""
    from warehouse.study import UnknownStudy
    from warehouse.study import resolve_study as resolve

    try:
        return resolve(study)
    except UnknownStudy as err:
        raise pipeline.BuildError(str(err)) from None


def concurrency_name(study_id: str, data_dir: Path) -> str:
    """The global concurrency limit of one study's warehouse (study id + data directory)."""
    where = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    return f"warehouse-build-{study_id.lower()}-{where}"


@contextmanager
def one_build_at_a_time(study_id: str, data_dir: Path, say):
    """Hold the data directory's build lock, then this warehouse's Prefect global concurrency slot (limit 1, made
    on first use, so the Prefect UI shows a running build).

    The file lock decides: the kernel drops it when its holder dies, and its wait is bounded by
    WAREHOUSE_LOCK_TIMEOUT (then BuildLocked, exit 4). Holding it, no live build of this data directory can hold
    the slot: a slot still taken was leased by a build that was killed (its temporary server never gives it back,
    a persistent one only after the lease runs out), so it is reclaimed at once instead of waited for.
    """
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    from warehouse.publish import BuildLocked

    name = concurrency_name(study_id, data_dir)
    with build_lock(data_dir, on_wait=lambda holder: say(
            "wait", f"waiting for the build lock held by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} since {holder.get('since', '?')}")):
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, 1)
            limit = client.read_global_concurrency_limit_by_name(name)
            if limit.active_slots >= limit.limit:
                say("lock", f"reclaiming the concurrency slot {name} left by a build that died")
                client.delete_global_concurrency_limit_by_name(name)
                client.upsert_global_concurrency_limit_by_name(name, 1)
        slot = ExitStack()
        try:
            slot.enter_context(concurrency(name, occupy=1, lease_duration=GCL_LEASE_SECONDS, strict=True,
                                           timeout_seconds=GCL_WAIT_SECONDS))
        except TimeoutError:
            raise BuildLocked(f"the Prefect concurrency slot {name} stayed taken for {GCL_WAIT_SECONDS} s "
                              "while this build held the build lock") from None
        with slot:
            yield


def findings_rows(validations: list) -> list[dict[str, Any]]:
    """The findings table artifact: row-level findings (errors first, at most 500; the report has them all)."""
    import polars as pl

    from warehouse.validate import findings_table_rows

    frames = [v.findings for v in validations if getattr(v, "findings", None) is not None and v.findings.height]
    return findings_table_rows(pl.concat(frames, how="diagonal_relaxed")) if frames else []


def summary_markdown(study_id: str, result: pipeline.BuildResult, extract_cached: bool,
                     validations: list | None = None) -> str:
    """The run's summary: result, stages, per-model timing and the validation summary (counts, rules, sites)."""
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.stage_seconds.items())
    if result.up_to_date:
        state = "up to date: the published build already has this export, code and study; nothing rebuilt"
    else:
        state = "published" if result.published else "blocked (the previous warehouse stays published)"
    lines = [
        f"# {study_id} build {result.build_id}",
        "",
        "| | |",
        "|---|---|",
        f"| result | {state} |",
        f"| export | `{result.export_id}` (extract {'cached' if extract_cached else 'ran'}) |",
        f"| blinded | {'yes' if result.blinded else 'NO (unblinded root)'} |",
        f"| subjects | {result.subjects} |",
        f"| tables | {len(result.tables)} |",
        f"| findings | {result.errors} error, {result.warnings} warning, {result.findings_open} open |",
        f"| warehouse | `{result.published or '-'}` |",
        f"| validation report | `{result.report}` |",
        f"| stages | {seconds or '-'} |",
    ]
    if result.model_runs:
        lines += ["", "## Models", "", "| model | relation | rows | seconds |", "|---|---|---:|---:|"]
        lines += [f"| {r.name} | {r.relation} | {r.rows} | {r.seconds:.3f} |" for r in result.model_runs]
    if validations:
        lines += ["", findings_markdown(validations, result.build_id).replace("# Validation", "## Validation", 1)]
    return "\n".join(lines)


# -- the flow -------------------------------------------------------------------------------------------------


@flow(name="build-warehouse", log_prints=True)
def build_warehouse(
    data_dir: str = "data",
    export: str | None = None,
    unblinded: bool = False,
    randomisation: str | None = None,
    study: str | None = None,
    only_new: bool = False,
    keep_builds: int | None = None,
    force: bool = False,
) -> pipeline.BuildResult | NoNewExport:
    """Build the study's warehouse from an eCRF export (the demo study when none is given) and publish it.

    `only_new` (scheduled runs): do nothing, and return NoNewExport, when the export's content hash equals the
    export of the last finished build, or when the export folder is missing or empty (nothing arrived yet).
    A build whose export, code and study are those of the published build does nothing and returns that build
    (`up_to_date`), unless `force`. `keep_builds`: build files kept (default WAREHOUSE_KEEP_BUILDS, else 5).
    """
    logger = get_run_logger()

    def say(stage_name: str, message: str) -> None:
        logger.info("%s: %s", stage_name, message)
        progress(stage_name, message)

    request = pipeline.BuildRequest(
        data_dir=Path(data_dir), export=Path(export) if export else None, blinded=not unblinded,
        randomisation=Path(randomisation) if randomisation else None, study=resolve_study(study),
        keep_builds=keep_builds, force=force, only_new=only_new)
    request.data_dir.mkdir(parents=True, exist_ok=True)
    study_id = request.study.study_id
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> float:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now
        return seconds[name]

    with one_build_at_a_time(study_id, request.data_dir, say):
        export_path, randomisation_path = prepare_export(request)
        early = pipeline.nothing_to_do(request, export_path, randomisation_path)
        if early is not None:
            return report_nothing_to_do(study_id, early, say)
        clock = time.perf_counter()
        content_id = export_content_id(export_path)
        state = extract.with_options(refresh_cache=not snapshot_landed(request.data_dir, content_id))(
            export_path, request.data_dir, request.study, return_state=True)
        export_id = state.result()
        extract_cached = state.name == "Cached"
        say("extract", f"export {export_id} {'(cached: unchanged export)' if extract_cached else 'landed'} "
                       f"in {lap('extract'):.1f} s")
        fingerprint = pipeline.build_fingerprint(request, export_id, randomisation_path)
        build_id, build_file = pipeline.start_build(request, export_id, fingerprint)
        pipeline.preload_validation()
        try:
            say("stage", f"build {build_id}: typing forms into {build_file.name}")
            stage(request, export_id, build_file, randomisation_path)
            say("stage", f"done in {lap('stage'):.1f} s")
            models = pipeline.plan_models(build_file)
            transformed = pipeline.run_models(
                build_file, models, run_model_task,
                after=lambda i, model: progress("transform", f"{i}/{len(models)} {model.name}"))
            transformed.raise_for_failures()
            runs = transformed.runs
            document(build_file, models)
            say("transform", f"{len(models)} models in {lap('transform'):.1f} s")
            validations = [
                validate_raw(request.data_dir, export_id),
                validate_staging(request.data_dir, export_id, build_file),
                validate_marts(build_file),
            ]
            say("validate", f"3 stages in {lap('validate'):.1f} s")
            try:
                result = publish(request, build_id, export_id, build_file, validations, runs, seconds)
            except pipeline.PublishBlocked as blocked:
                write_artifacts(study_id, f"# {study_id} build {build_id}: publishing blocked\n\n{blocked}\n\n"
                                + findings_markdown(validations, build_id), findings_rows(validations))
                raise
        except pipeline.PublishBlocked:
            raise
        except BaseException as err:
            pipeline.fail_build(request.paths, build_id, export_id, request.blinded, err)
            raise
        say("publish", f"{'published' if result.published else 'not published'} in "
                       f"{result.stage_seconds.get('publish', 0.0):.1f} s")
        write_artifacts(study_id, summary_markdown(study_id, result, extract_cached, validations),
                        findings_rows(validations))
        return result


def report_nothing_to_do(study_id: str, early: pipeline.BuildResult | NoNewExport, say):
    """Say why this run builds nothing (no export yet, no new export, up to date), as a log line and artifact."""
    if isinstance(early, NoNewExport):
        say("skip", str(early))
        text = (f"# {study_id}: no new export\n\nExport `{early.export_id}` was already built in "
                f"`{early.last_build_id}`; nothing to do." if early.export_id
                else f"# {study_id}: no export yet\n\nNothing to do.")
        write_artifacts(study_id, text, None)
    else:
        say("skip", f"up to date: build {early.build_id} is published from export {early.export_id} with this "
                    "code and study (--force rebuilds)")
        write_artifacts(study_id, summary_markdown(study_id, early, True), None)
    return early
