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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.utilities.annotations import opaque, quote  # passed as is: Prefect does not walk their fields

from flows.progress import report as progress
from warehouse.analyse import steps as analyse_steps
from warehouse.build import Runner, run
from warehouse.extract import steps as extract_steps
from warehouse.publish import build_lock
from warehouse.publish import steps as publish_steps
from warehouse.request import BuildError, BuildRequest, BuildResult, NoNewExport
from warehouse.resources import use_project
from warehouse.review.report import review_markdown
from warehouse.stage import load as stage_steps
from warehouse.transform import catalog as catalog_steps
from warehouse.transform import steps as transform_steps
from warehouse.transform.models import Model
from warehouse.transform.runner import ModelRun
from warehouse.validate import steps as validate_steps
from warehouse.validate.artifacts import findings_markdown

GCL_LEASE_SECONDS = 60  # a persistent server gives a killed build's slot back after this (Prefect's minimum)
GCL_WAIT_SECONDS = 30  # the slot is free once the build lock is held: a longer wait is a fault, not a queue


NoNewExport = NoNewExport  # re-exported: callers of the flow check for it
export_content_id = extract_steps.export_content_id


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
    except (BuildError, ExportError):
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True


# -- tasks: one per step of warehouse.build, named as the step --------------------------------------------------


@task(name="prepare-export", cache_policy=NONE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_io_only)
def prepare_export(request: BuildRequest) -> tuple[Path, Path | None]:
    return extract_steps.resolve_export(request)


@task(name="extract", cache_key_fn=extract_cache_key, persist_result=True, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_io_only)
def extract(export: Path, data_dir: Path, study=None) -> str:
    return extract_steps.land(export, data_dir, study)


@task(name="stage", cache_policy=NONE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_on_io_only)
def stage(request: BuildRequest, export_id: str, build_file: Path, randomisation: Path | None) -> dict:
    return stage_steps.stage(request, export_id, build_file, randomisation)


@task(cache_policy=NONE)
def run_model(build_file: Path, model: Model) -> ModelRun:
    return transform_steps.transform_model(build_file, model)


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
    """One model as its own task run. The Model goes in as is (`quote`: Prefect does not walk its fields looking
    for futures)."""
    return model_task(model.name)(build_file, quote(model))


def unwalked(args: tuple) -> list:
    """A step's arguments wrapped so that Prefect does not walk inside them: before each task run it visits every
    field of every argument twice (resolving futures, collecting upstream task runs), and the validations, the
    models and the build request are deep (1.2 s of a 32-subject build's 1.8 s of per-task overhead, measured). An
    `opaque` argument is still looked up as a whole, so a step given another step's result (or a list of them: each
    element is wrapped) keeps its upstream edge in the run's graph; the function receives the values unchanged."""
    return [[opaque(item) for item in arg] if type(arg) is list else opaque(arg) for arg in args]


def plain_task(name: str, fn) -> Task:
    """A step with no retries and no cache: models and validations fail on code or data, not on I/O."""
    return task(fn, name=name, cache_policy=NONE)


TASKS: dict[str, Task] = {
    "prepare-export": prepare_export,
    "extract": extract,
    "stage": stage,
    "document": plain_task("document", transform_steps.document),
    "validate-raw": plain_task("validate-raw", validate_steps.validate_raw),
    "validate-staging": plain_task("validate-staging", validate_steps.validate_staging),
    "validate-marts": plain_task("validate-marts", validate_steps.validate_marts),
    "changes": plain_task("changes", analyse_steps.record_changes),
    "analyse": plain_task("analyse", analyse_steps.analyse),
    "review": plain_task("review", validate_steps.review_findings),
    "findings": plain_task("findings", validate_steps.record_validation),
    "report": plain_task("report", analyse_steps.write_report),
    "catalog": plain_task("catalog", catalog_steps.refresh_build_catalog),
    "publish": plain_task("publish", publish_steps.publish),
}


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
        raise BuildError(str(err)) from None


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


def summary_markdown(study_id: str, result: BuildResult, extract_cached: bool,
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
        lines += ["", findings_markdown(validations, result.build_id, blocked=False)
                  .replace("# Validation", "## Validation", 1)]
    if result.review:
        lines += ["", result.review]
    return "\n".join(lines)


# -- the flow -------------------------------------------------------------------------------------------------


class PrefectRunner(Runner):
    """Each step of warehouse.build as its Prefect task; progress to the run's log and to flows.progress; the
    study's Prefect concurrency slot besides the build lock; artifacts when the build ends."""

    def __init__(self) -> None:
        self.logger = get_run_logger()
        self.extract_cached = False
        self.model_states: list = []  # the model task runs, upstream of `document` in the run's graph

    def step(self, name, fn, *args):
        if name == "extract":  # cached by the export's content hash, unless its snapshot is gone from DIR/raw
            export, data_dir = args[0], args[1]
            landed = snapshot_landed(data_dir, export_content_id(export))
            state = extract.with_options(refresh_cache=not landed)(*args, return_state=True)
            self.extract_cached = state.name == "Cached"
            return state.result()
        if name == "document":  # its models are plain Models (no task results): the edges come from wait_for
            return TASKS[name](*unwalked(args), wait_for=self.model_states)
        return TASKS[name](*unwalked(args))

    def model(self, build_file, model):
        state = model_task(model.name)(build_file, quote(model), return_state=True)
        self.model_states.append(state)
        return state.result()

    def one_build_at_a_time(self, request):
        return one_build_at_a_time(request.study.study_id, request.data_dir, self.say)

    def say(self, stage_name: str, message: str) -> None:
        self.logger.info("%s: %s", stage_name, message)
        progress(stage_name, message)

    def finished(self, request, outcome, validations, blocked=None) -> None:
        study_id = request.study.study_id
        if isinstance(outcome, NoNewExport):
            text = (f"# {study_id}: no new export\n\nExport `{outcome.export_id}` was already built in "
                    f"`{outcome.last_build_id}`; nothing to do." if outcome.export_id
                    else f"# {study_id}: no export yet\n\nNothing to do.")
            write_artifacts(study_id, text, None)
        elif blocked is not None:
            write_artifacts(study_id, f"# {study_id} build {outcome.build_id}: publishing blocked\n\n{blocked}"
                            "\n\n" + findings_markdown(validations, outcome.build_id, blocked=True)
                            + review_markdown(request.paths.build_file(outcome.build_id)), findings_rows(validations))
        else:
            cached = self.extract_cached or outcome.up_to_date
            review = review_markdown(request.paths.build_file(outcome.build_id)) if validations is not None else ""
            write_artifacts(study_id, summary_markdown(study_id, outcome, cached, validations)
                            + ("\n\n" + review if review else ""),
                            findings_rows(validations) if validations is not None else None)


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
    project: str | None = None,
) -> BuildResult | NoNewExport:
    """Build the study's warehouse from an eCRF export (the demo study when none is given) and publish it.

    `only_new` (scheduled runs): do nothing, and return NoNewExport, when the export's content hash equals the
    export of the last finished build, or when the export folder is missing or empty (nothing arrived yet).
    A build whose export, code and study are those of the published build does nothing and returns that build
    (`up_to_date`), unless `force`. `keep_builds`: build files kept (default WAREHOUSE_KEEP_BUILDS, else 5).
    `project`: the study project folder (a deployment per project sets it). The sequence is warehouse.build.run; this flow only makes each of its steps a task.
    """
    if project:  # the study project (study.toml, sql/, expectations/); default: the working directory's, else the demo
        use_project(project)
    request = BuildRequest(
        data_dir=Path(data_dir), export=Path(export) if export else None, blinded=not unblinded,
        randomisation=Path(randomisation) if randomisation else None, study=resolve_study(study),
        keep_builds=keep_builds, force=force, only_new=only_new)
    return run(request, PrefectRunner())
