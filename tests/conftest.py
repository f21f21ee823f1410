"""Shared fixtures: the real exports in ../shared/fixtures, one demo build, and one Prefect test harness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = PROJECT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The real eCRF exports, read in place; tests that need them skip with the folder's name when absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real eCRF exports not found at {SHARED_FIXTURES} (../shared/fixtures beside the project)")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole session (it takes 12-25 s to start here)."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """The demo study built once, unblinded, without Prefect: the marts most end-to-end tests read."""
    from warehouse.build import BuildRequest, run_build

    data_dir = tmp_path_factory.mktemp("demo-build")
    result = run_build(BuildRequest(data_dir=data_dir, blinded=False))
    return result


# Fixtures that make a whole build (or start a Prefect server): a test that uses one, directly or through another
# fixture, is in the slow tier. Tests that build inline say so with @pytest.mark.slow. `pytest -m "not slow"` is
# the quick tier for the development loop; CI runs everything.
BUILD_FIXTURES = frozenset({
    "demo_build", "ops_data_dir", "prefect_harness", "flow_builds", "both_builds", "blinded_build",
    "relative_build", "blocked", "builds", "injected_build", "clean_build", "two_builds", "server",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BUILD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
