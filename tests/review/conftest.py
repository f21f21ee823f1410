"""Fixtures of the review tests: one build of the injected demo (blocked), copied for each test that changes it.

The Chrome DevTools helper lives with the validation report's tests (tests/validate/cdp.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validate"))

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
