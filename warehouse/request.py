"""What a build is asked to do and what it did: the request, the result, and the build's own errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from warehouse.publish import (
    BuildPaths,
)
from warehouse.study import StudyConfig, load_study
from warehouse.transform.runner import (
    ModelRun,
)

DEMO_SEED = 20190515


class BuildError(Exception):
    """A build that cannot go on; the message is one line a person can act on."""


class PublishBlocked(BuildError):
    """Validation found errors: the previous warehouse stays published."""


@dataclass
class BuildRequest:
    data_dir: Path
    export: Path | None = None
    blinded: bool = True
    randomisation: Path | None = None
    study: StudyConfig = field(default_factory=load_study)
    demo_subjects: int = 32
    demo_seed: int = DEMO_SEED
    demo_inject_rate: float = 0.0
    keep_builds: int | None = None  # build files kept after a publish; None: WAREHOUSE_KEEP_BUILDS, else 5
    force: bool = False  # rebuild even when the published warehouse is up to date (same export, code and study)
    only_new: bool = False  # scheduled runs: do nothing when this export was already built or none has arrived

    @property
    def paths(self) -> BuildPaths:
        return BuildPaths(self.data_dir, self.blinded)


@dataclass
class BuildResult:
    build_id: str
    export_id: str
    published: Path | None
    report: Path
    analysis_report: Path
    subjects: int
    tables: list[str]
    errors: int
    warnings: int
    findings_open: int
    model_runs: list[ModelRun]
    stage_seconds: dict[str, float]
    blinded: bool
    up_to_date: bool = False  # nothing was rebuilt: the published build already has this export, code and study
    review: str = ""  # the review's summary line (accepted, by whom, queried, answered, open): empty without decisions


@dataclass
class NoNewExport:
    """What an `only_new` build returns when the export it finds was already built, or none has arrived yet:
    nothing to do, not an error."""

    export_id: str
    last_build_id: str | None
    data_dir: str
    published: Path | None = None

    def __str__(self) -> str:
        if not self.export_id:
            return "no export yet: nothing to do"
        return f"no new export: {self.export_id} was already built ({self.last_build_id})"
