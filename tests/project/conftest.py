"""Fixtures of the study-project tests."""

from __future__ import annotations

import pytest

from warehouse.resources import PROJECT_ENV


@pytest.fixture
def restore_project(monkeypatch):
    """The active project (WAREHOUSE_PROJECT, which `use_project` sets) restored after the test."""
    monkeypatch.delenv(PROJECT_ENV, raising=False)
