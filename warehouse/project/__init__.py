"""Study projects: a folder of study.toml, sql/ and expectations/ that the engine builds (docs/contracts.md).

`init_project` (init) writes a working project from an export's own metadata (`warehouse init`): `metadata` reads
what the export says about itself, `forms` describes each form's staging columns, `sql` writes the staging models
and the subjects mart, `toml` study.toml, `suites` the expectations."""

from .init import InitResult, init_project

__all__ = ["InitResult", "init_project"]
