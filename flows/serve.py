"""`warehouse serve`: the scheduled build of one study project as a served deployment, in one process (no work
pool, no worker).

The same deployment as one entry of `prefect.yaml` (cron in Europe/Paris, `only_new=True`, one run at a time),
served by `flow.serve`: the process registers the deployment, then polls the Prefect API and runs each due flow run
in a subprocess. The deployment carries the study project (`project`, an absolute path) and is named after the
study (`build-warehouse/<study id>`), so one server can hold one served deployment per study. Stop it with Ctrl-C
(the deployment's schedule is paused on shutdown).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CRON = "0 6 * * *"
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_NAME = "served"  # when the study id gives no usable name


def deployment_name(study_id: str) -> str:
    """The default deployment name of a study: its id in lower case, anything but letters and digits a `-`."""
    name = "".join(c if c.isalnum() else "-" for c in study_id.lower()).strip("-")
    return name or DEFAULT_NAME


def study_id_of(project: Path | str | None, study: str | None) -> str:
    """The id of the study a served deployment builds: `study` (a TOML file or `adress`) when given, else the
    project's study.toml (else the active project's)."""
    from warehouse.resources import STUDY_FILE
    from warehouse.study import load_study, resolve_study

    if study or project is None:
        return resolve_study(study).study_id
    return load_study(Path(project) / STUDY_FILE).study_id


def deployment_parameters(data_dir: Path, export: Path | None, study: str | None,
                          keep_builds: int | None = None, project: Path | str | None = None) -> dict:
    params: dict = {"data_dir": str(Path(data_dir).resolve()), "only_new": True}
    if project is not None:
        params["project"] = str(Path(project).resolve())
    if export is not None:
        params["export"] = str(Path(export).resolve())
    if study:
        params["study"] = study
    if keep_builds is not None:
        params["keep_builds"] = keep_builds
    return params


def serve_builds(
    data_dir: Path,
    export: Path | None = None,
    study: str | None = None,
    cron: str = DEFAULT_CRON,
    timezone: str = DEFAULT_TIMEZONE,
    name: str | None = None,
    keep_builds: int | None = None,
    paused: bool = False,
    project: Path | str | None = None,
) -> None:
    """Register `build-warehouse/<name>` (default: named after the study) with the cron schedule and serve it
    until interrupted. `project`: the study project folder its runs build (the flow's `project` parameter)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.build import build_warehouse

    build_warehouse.serve(
        name=name or deployment_name(study_id_of(project, study)),
        schedules=[Cron(cron, timezone=timezone)],
        parameters=deployment_parameters(data_dir, export, study, keep_builds, project),
        global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        description="Scheduled warehouse build: builds only when a new export has arrived.",
        tags=["warehouse", "scheduled"],
        paused=paused,
    )
