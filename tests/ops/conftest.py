"""Fixtures of the operations tests: one blinded direct build of the demo study shared by the module tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ops_data_dir(tmp_path_factory) -> Path:
    """A data directory with a published, blinded build of the demo study (direct path, no Prefect).

    Tests may add builds and locks; each compares against the state it finds, not against this first build.
    """
    from warehouse.build import BuildRequest, run_build

    data_dir = tmp_path_factory.mktemp("ops-data")
    run_build(BuildRequest(data_dir=data_dir))
    return data_dir


@pytest.fixture(scope="session")
def demo_secrets(tmp_path_factory) -> dict:
    """What the demo study's blinded build must not reveal: the randomisation list (generated apart, as the build
    does, then read here only) and the identifier items (names and values) of its eCRF export."""
    from ops_support import read_identifiers, read_randomisation

    from warehouse.demo import generate_demo
    from warehouse.build import DEMO_SEED

    out = tmp_path_factory.mktemp("demo-secrets")
    result = generate_demo(out, subjects=32, seed=DEMO_SEED)
    names, values = read_identifiers(result.redcap_dir)
    return {"kit_arms": read_randomisation(result.randomisation_file), "identifier_names": names,
            "identifier_values": values, "redcap_dir": result.redcap_dir}
