"""Groups of `warehouse` sub-commands, one module per area; each module has `register(app)`.

Keeping each area's commands in its own module keeps `cli.py` small and lets each stage own its interface.
"""

AREAS = ("extract", "models", "ops", "analysis", "server", "project", "review")

from pathlib import Path as _Path
from typing import Annotated as _Annotated

import typer as _typer

DATA_DIR_ENV = "WAREHOUSE_DATA_DIR"
# every command's data directory: --data-dir, else WAREHOUSE_DATA_DIR (set to DIR/data by --project DIR), else data
DataDir = _Annotated[_Path, _typer.Option("--data-dir", envvar=DATA_DIR_ENV, show_envvar=False,
                                          help="Data directory (raw zone, builds, warehouse, reports); default "
                                               "data, or DIR/data with --project DIR.")]
