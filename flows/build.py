"""The build flow: one task per stage and per SQL model, so a run in the Prefect UI reads like the data flow."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from warehouse import pipeline
from warehouse.models import Model, ModelRun


@task(name="prepare-export", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def prepare_export(request: pipeline.BuildRequest) -> tuple[Path, Path | None]:
    return pipeline.resolve_export(request)


@task(name="extract", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def extract(export: Path, data_dir: Path) -> str:
    return pipeline.land(export, data_dir)


@task(name="stage", cache_policy=NONE)
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


@task(name="publish", cache_policy=NONE)
def publish(request, build_id, export_id, build_file, validations, runs, seconds) -> pipeline.BuildResult:
    return pipeline.finish(request, build_id, export_id, build_file, validations, runs, seconds)


@flow(name="build-warehouse", log_prints=True)
def build_warehouse(
    data_dir: str = "data",
    export: str | None = None,
    unblinded: bool = False,
    randomisation: str | None = None,
) -> pipeline.BuildResult:
    """Build the study's warehouse from an eCRF export (the demo study when none is given) and publish it."""
    logger = get_run_logger()
    request = pipeline.BuildRequest(
        data_dir=Path(data_dir),
        export=Path(export) if export else None,
        blinded=not unblinded,
        randomisation=Path(randomisation) if randomisation else None,
    )
    request.data_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now

    export_path, randomisation_path = prepare_export(request)
    export_id = extract(export_path, request.data_dir)
    lap("extract")
    build_id, build_file = pipeline.start_build(request, export_id)
    logger.info("build %s of export %s", build_id, export_id)
    stage(request, export_id, build_file, randomisation_path)
    lap("stage")
    runs = [run_model.with_options(name=model.name)(build_file, model) for model in pipeline.plan_models(build_file)]
    lap("transform")
    validations = [
        validate_raw(request.data_dir, export_id),
        validate_staging(request.data_dir, export_id, build_file),
        validate_marts(build_file),
    ]
    lap("validate")
    return publish(request, build_id, export_id, build_file, validations, runs, seconds)
