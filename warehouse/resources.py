"""Where the project's SQL models and expectation suites live, installed or not.

A wheel carries them inside the package (`warehouse/_project/`); an editable install or a checkout reads them
from the repository root, so an analyst editing `sql/` sees the change at the next build without reinstalling.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def project_dir(name: str) -> Path:
    """The project directory `name` (`sql` or `expectations`), preferring the checkout over the wheel copy."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_project" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"project directory '{name}' not found beside or inside {_PACKAGE}")


def sql_dir() -> Path:
    return project_dir("sql")


def expectations_dir() -> Path:
    return project_dir("expectations")
