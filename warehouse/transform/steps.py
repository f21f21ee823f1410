"""The transform stage as the build calls it: compile the models against the staged schema, run them in order
(each on the connection the loop holds), then document the build (catalog, column lineage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from warehouse.db import connect_build
from warehouse.publish import (
    crash_point,
)
from warehouse.transform.models import Model
from warehouse.transform.runner import (
    ModelRun,
    RunResult,
    RunTracker,
    prepare_schemas,
    run_model,
)


def plan_models(build_file: Path, sql_root: Path | None = None) -> list[Model]:
    """The models in the order they must run, each compiled against the staged `src` schema of the build (an
    unknown table or column fails here, naming file, line and column, before any model is written)."""
    from warehouse.transform.compile import compile_models

    return compile_models(build_file, sql_root)


def document(build_file: Path, models: list[Model]) -> None:
    """Column lineage and the catalog (main.lineage, main.catalog), written into the build."""
    from warehouse.transform.catalog import document_build
    from warehouse.transform.compile import build_cache_dir

    with connect_build(build_file) as con:
        document_build(con, models, cache_dir=build_cache_dir(build_file))


def transform(build_file: Path) -> list[ModelRun]:
    """Compile, then run every model; the lineage and catalog are written once all models ran."""
    models = plan_models(build_file)
    result = run_models(build_file, models, transform_model)
    result.raise_for_failures()
    document(build_file, models)
    return result.runs


def run_models(build_file: Path, models: list[Model], run_one: Callable[[Path, Model], ModelRun],
               after: Callable[[int, Model], None] | None = None) -> RunResult:
    """Run the models in order with `run_one` (the flow passes its per-model task): a failed model stops its
    descendants only, and the result names both. One connection is held open around the loop, because each
    close of the last connection checkpoints the whole build file (~50 ms a model); it is also the session
    `transform_model` runs on (schemas prepared and the catalog's descriptions read once, not per model)."""
    from warehouse.transform.runner import hold_session

    tracker = RunTracker(models)
    with connect_build(build_file) as con, hold_session(build_file, con):
        for i, model in enumerate(models, 1):
            if tracker.should_run(model):
                try:
                    tracker.record(run_one(build_file, model))
                except Exception as err:  # noqa: BLE001 - recorded; raise_for_failures names it after the loop
                    tracker.fail(model, err)
            if after is not None:
                after(i, model)
    return tracker.result()


def transform_model(build_file: Path, model: Model) -> ModelRun:
    """Run one model into the build file: on the connection `run_models` holds open (see models.hold_session),
    else on a connection of its own."""
    from warehouse.transform.runner import held_session

    session = held_session(build_file)
    if session is not None:
        run = session.run(model)
    else:
        with connect_build(build_file) as con:
            prepare_schemas(con)
            run = run_model(con, model)
    crash_point("transform", model.name)
    return run
