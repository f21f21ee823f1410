"""Study projects: a folder of study.toml, sql/ and expectations/ that the engine builds (docs/contracts.md).

`init_project` writes a working project from an export's own metadata (`warehouse init`)."""

from .init import InitResult, init_project

__all__ = ["InitResult", "init_project"]
