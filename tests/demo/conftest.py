"""Fixtures for the demo-study tests: exports generated once per session."""

from __future__ import annotations

import pytest
from demo_export_reader import Export, read_export

from warehouse.demo import generate_demo

DIRTY_RATE = 0.06


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Export:
    return read_export(generate_demo(tmp_path_factory.mktemp("demo_clean")))


@pytest.fixture(scope="session")
def dirty(tmp_path_factory) -> Export:
    return read_export(generate_demo(tmp_path_factory.mktemp("demo_dirty"), inject_rate=DIRTY_RATE))
