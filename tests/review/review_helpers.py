"""Helpers of the review tests (a module of its own name: `conftest` is ambiguous across test folders): the
injected demo's request, the session's one build of it (blocked), and copies of its data directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SEED, SUBJECTS, INJECT_RATE = 7, 32, 0.1


def demo_request(data_dir: Path, **kwargs):
    from warehouse.build import BuildRequest

    return BuildRequest(data_dir=data_dir, demo_subjects=SUBJECTS, demo_seed=SEED, demo_inject_rate=INJECT_RATE,
                        **kwargs)


@pytest.fixture(scope="session")
def injected_review(tmp_path_factory) -> Path:
    """The demo study (32 subjects, seed 7) with problems injected at rate 0.1, built once through run_build:
    validation blocks it. Returns its data directory (copy it before changing anything: see `fresh_copy`)."""
    from warehouse.build import PublishBlocked, run_build

    data_dir = tmp_path_factory.mktemp("review-injected") / "data"
    with pytest.raises(PublishBlocked):
        run_build(demo_request(data_dir))
    return data_dir


def fresh_copy(source: Path, target: Path) -> Path:
    """A copy of a data directory (its builds, raw zone, demo export) to build and decide in."""
    shutil.copytree(source, target, symlinks=True)
    return target
