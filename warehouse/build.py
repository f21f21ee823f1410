"""The build, written once: the sequence of stages and every decision in it, run by a `Runner`.

`DirectRunner` calls each step as a plain function (tests, benchmarks, the floor of orchestration overhead);
`flows/build.py` supplies a runner that makes each step a Prefect task (retries, caching, artifacts), so a run in
the Prefect UI reads like the data flow: prepare-export, extract, stage, one task per model, document,
validate-raw, validate-staging, validate-marts, review, changes, analyse, findings, report, publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from warehouse import rebuild
from warehouse.analyse import steps as analyse
from warehouse.extract import steps as extract
from warehouse.publish import build_lock
from warehouse.publish import steps as publish
from warehouse.request import DEMO_SEED, BuildError, BuildRequest, BuildResult, NoNewExport, PublishBlocked
from warehouse.stage import load as stage
from warehouse.transform import catalog
from warehouse.transform import steps as transform
from warehouse.transform.models import Model
from warehouse.transform.runner import ModelRun
from warehouse.validate import steps as validate

T = TypeVar("T")
__all__ = ["DEMO_SEED", "BuildError", "BuildRequest", "BuildResult", "NoNewExport", "PublishBlocked", "Runner",
           "DirectRunner", "run", "run_build"]


class Runner:
    """How the steps of a build run, and who hears about them. The base class runs each step as a plain call,
    holds the data directory's build lock, and reports nothing; subclasses decorate."""

    def step(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    def model(self, build_file: Path, model: Model) -> ModelRun:
        return transform.transform_model(build_file, model)

    @contextmanager
    def one_build_at_a_time(self, request: BuildRequest) -> Iterator[None]:
        with build_lock(request.data_dir):
            yield

    def say(self, stage: str, message: str) -> None:
        """A progress line (stage, message)."""

    def finished(self, request: BuildRequest, outcome: BuildResult | NoNewExport, validations: list | None,
                 blocked: str | None = None) -> None:
        """The build ended without an exception, or was blocked (`blocked`: the message): e.g. Prefect artifacts."""


class DirectRunner(Runner):
    """Plain calls; progress lines to `say` when given."""

    def __init__(self, say: Callable[[str, str], None] | None = None) -> None:
        self._say = say

    def say(self, stage: str, message: str) -> None:
        if self._say is not None:
            self._say(stage, message)


class Clock:
    """Seconds per stage of one build, as its record and summary report them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, runner: Runner, stage: str, name: str, fn: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            return runner.step(name, fn, *args)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def run(request: BuildRequest, runner: Runner | None = None) -> BuildResult | NoNewExport:
    """Build the study's warehouse from its export (the demo study when none is given) and publish it, unless
    there is nothing to do (see rebuild.nothing_to_do) or validation blocks it (PublishBlocked, after the
    blocked build's reports are written). A build that raises is recorded as failed, its partial file removed."""
    runner = runner or DirectRunner()
    request.data_dir.mkdir(parents=True, exist_ok=True)
    with runner.one_build_at_a_time(request):
        export, randomisation = runner.step("prepare-export", extract.resolve_export, request)
        early = rebuild.nothing_to_do(request, export, randomisation)
        if early is not None:
            runner.say("skip", describe_nothing_to_do(early))
            runner.finished(request, early, None)
            return early
        validate.preload_validation()  # a build is due: GX's worker imports it while the export lands
        try:
            clock = Clock()
            export_id = clock.timed(runner, "extract", "extract", extract.land, export, request.data_dir,
                                    request.study)
            runner.say("extract", f"export {export_id} in {clock.seconds['extract']:.1f} s")
            fingerprint = rebuild.build_fingerprint(request, export_id, randomisation)
            build_id, build_file = publish.start_build(request, export_id, fingerprint)
            try:
                return build_and_publish(request, runner, clock, export_id, build_id, build_file, randomisation)
            except PublishBlocked:
                raise
            except BaseException as err:
                publish.fail_build(request.paths, build_id, export_id, request.blinded, err)
                raise
        finally:
            validate.stop_gx_worker()  # already ended once the report took its Data Docs; not so after a failure


def build_and_publish(request: BuildRequest, runner: Runner, clock: Clock, export_id: str, build_id: str,
                      build_file: Path, randomisation: Path | None) -> BuildResult:
    """The stages of one build, in order, from the landed export to the published (or blocked) warehouse."""
    runner.say("stage", f"build {build_id}: typing forms into {build_file.name}")
    clock.timed(runner, "stage", "stage", stage.stage, request, export_id, build_file, randomisation)
    runner.say("stage", f"done in {clock.seconds['stage']:.1f} s")
    runs = run_transform(runner, clock, build_file)
    validations = [
        clock.timed(runner, "validate", "validate-raw", validate.validate_raw, request.data_dir, export_id),
        clock.timed(runner, "validate", "validate-staging", validate.validate_staging, request.data_dir,
                    export_id, build_file),
        clock.timed(runner, "validate", "validate-marts", validate.validate_marts, build_file),
    ]
    # no identifier value leaves the raw zone, whatever stage a finding comes from (belt and braces: each stage
    # already withholds them where it makes findings)
    validate.withhold_identifier_values(validations, data_dir=request.data_dir, export_id=export_id)
    validate.confirm_suites_checked()  # GX's verdict on the suite files, asked while validation ran
    validate.start_data_docs(request.paths, build_id, validations)  # rendered on the second core meanwhile
    runner.say("validate", f"3 stages in {clock.seconds['validate']:.1f} s")
    # the data manager's decisions (warehouse/review/): an error finding accepted or queried no longer blocks
    review = clock.timed(runner, "validate", "review", validate.review_findings, request.data_dir, validations)
    blocked = review.blocked
    paths = request.paths
    clock.timed(runner, "analyse", "changes", analyse.record_changes, build_file, request.data_dir, export_id)
    analysis = clock.timed(runner, "analyse", "analyse", analyse.analyse, request, build_file, build_id, blocked)
    history = clock.timed(runner, "report", "findings", validate.record_validation, build_file, paths, build_id,
                          validations, review)
    report = clock.timed(runner, "report", "report", analyse.write_report, paths, build_id, validations, history,
                         blocked)
    # the catalog and lineage of the tables written after the models (ar_*, findings, changes)
    clock.timed(runner, "report", "catalog", catalog.refresh_build_catalog, build_file)
    published = clock.timed(runner, "publish", "publish", publish.publish, paths, build_id, blocked,
                            request.keep_builds)
    runner.say("publish", f"{'published' if published else 'not published'} in {clock.seconds['publish']:.1f} s")
    result = publish.record_outcome(request, build_id, export_id, build_file, validations, history, runs,
                                     clock.seconds, published, report, analysis)
    result.review = review.summary()
    if blocked:
        message = validate.blocked_message(validations, result, review)
        runner.finished(request, result, validations, blocked=message)
        raise PublishBlocked(message)
    runner.finished(request, result, validations)
    return result


def run_transform(runner: Runner, clock: Clock, build_file: Path) -> list[ModelRun]:
    """Compile every model against the staged schema, run them in order (a task per model), then document the
    build (catalog, column lineage)."""
    started = time.perf_counter()
    models = transform.plan_models(build_file)
    transformed = transform.run_models(
        build_file, models, runner.model,
        after=lambda i, model: runner.say("transform", f"{i}/{len(models)} {model.name}"))
    transformed.raise_for_failures()
    runner.step("document", transform.document, build_file, models)
    clock.seconds["transform"] = time.perf_counter() - started
    runner.say("transform", f"{len(models)} models in {clock.seconds['transform']:.1f} s")
    return transformed.runs


def describe_nothing_to_do(early: BuildResult | NoNewExport) -> str:
    if isinstance(early, NoNewExport):
        return str(early)
    return (f"up to date: build {early.build_id} is published from export {early.export_id} with this code and "
            "study (--force rebuilds)")


def run_build(request: BuildRequest) -> BuildResult | NoNewExport:
    """The whole build without Prefect (tests, benchmarks, the floor of orchestration overhead)."""
    return run(request)
