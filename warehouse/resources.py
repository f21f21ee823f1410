"""Where the active study project lives: its `study.toml`, `sql/` and `expectations/`.

A study is a project folder (dbt's model: one engine, many project folders). The repository root is the demo
study's project; a wheel carries a copy of it inside the package (`warehouse/_project/`). Every command takes
`--project DIR` (default: the current directory when it holds a `study.toml`, else the demo project); the build
makes its project the active one (`use_project`), and subprocesses and Prefect runs inherit it through
WAREHOUSE_PROJECT. An analyst editing `sql/` sees the change at the next build without reinstalling.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
PROJECT_ENV = "WAREHOUSE_PROJECT"
STUDY_FILE = "study.toml"


class ProjectError(ValueError):
    """A folder given as a project that is not one; the message says what is missing."""


def demo_project() -> Path:
    """The demo study's project: the checkout's root, else the copy inside the installed package."""
    for candidate in (_PACKAGE.parent, _PACKAGE / "_project"):
        if (candidate / STUDY_FILE).is_file() and (candidate / "sql").is_dir():
            return candidate
    raise FileNotFoundError(f"the demo study's project (study.toml, sql/) was found neither beside nor inside "
                            f"{_PACKAGE}")


def find_project(project: Path | str | None = None) -> Path:
    """The project folder a command works on: `project` when given (it must hold a study.toml), else the current
    directory when it holds one, else the demo project."""
    if project is not None:
        root = Path(project).expanduser()
        if not root.is_dir():
            raise ProjectError(f"project folder not found: {root}")
        if not (root / STUDY_FILE).is_file():
            raise ProjectError(f"not a study project: {root} has no {STUDY_FILE} "
                               "(`warehouse init --export PATH --out DIR` makes one from an export)")
        return root.resolve()
    if os.environ.get(PROJECT_ENV):
        return find_project(os.environ[PROJECT_ENV])
    if (Path.cwd() / STUDY_FILE).is_file():
        return Path.cwd().resolve()
    return demo_project()


def use_project(project: Path | str | None) -> Path:
    """Make `project` the active project of this process and of the processes it starts (WAREHOUSE_PROJECT)."""
    root = find_project(project)
    os.environ[PROJECT_ENV] = str(root)
    return root


def project_dir(name: str) -> Path:
    """A folder of the active project (`sql` or `expectations`)."""
    return find_project() / name


def sql_dir() -> Path:
    return project_dir("sql")


def expectations_dir() -> Path:
    return project_dir("expectations")


def study_file() -> Path:
    return find_project() / STUDY_FILE
