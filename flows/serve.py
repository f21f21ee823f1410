"""`warehouse serve`: the scheduled build as a served deployment, in one process (no work pool, no worker).

The same deployment as `prefect.yaml` (cron in Europe/Paris, `only_new=True`, one run at a time), served by
`flow.serve`: the process registers the deployment, then polls the Prefect API and runs each due flow run in a
subprocess. Stop it with Ctrl-C (the deployment's schedule is paused on shutdown).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CRON = "0 6 * * *"
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_NAME = "served"


def deployment_parameters(data_dir: Path, export: Path | None, study: str | None,
                          keep_builds: int | None = None) -> dict:
    params: dict = {"data_dir": str(Path(data_dir).resolve()), "only_new": True}
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
    name: str = DEFAULT_NAME,
    keep_builds: int | None = None,
    paused: bool = False,
) -> None:
    """Register `build-warehouse/<name>` with the cron schedule and serve it until interrupted."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.build import build_warehouse

    build_warehouse.serve(
        name=name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters=deployment_parameters(data_dir, export, study, keep_builds),
        global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        description="Scheduled warehouse build: builds only when a new export has arrived.",
        tags=["warehouse", "scheduled"],
        paused=paused,
    )
