"""`warehouse init`: a study project folder written from an export's own metadata.

The export is landed first (`land_export`), then only the raw zone is read: the `_meta` tables (REDCap data
dictionary, events and repeating instruments, or ODM MetaDataVersion, normalised alike by the readers) and the
column names of each form's Parquet file. What it writes, every file short and meant to be edited:

    study.toml                      identity, export format and dialect, forms, sites, identifiers, dates;
                                    the time anchor and randomisation as commented choices
    sql/staging/stg_<form>.sql      one model per form: readable names, codes decoded, a comment per column
    sql/marts/subjects.sql          one row per subject: site, first and last date, forms and events with data
    expectations/README.md          which rules the engine generates at run time, where study rules go
    expectations/raw/structure.json every record placed (subject id, unique keys, known subject)
    expectations/staging/keys_*.json  the grain of each form's table is unique
    README.md                       the commands from export to published warehouse, and what to edit next

Same export, same bytes: nothing depends on time, paths of the data directory or dictionary order beyond the
export's own order. The staging models select from `src.<form>`, the tables the engine's staging step writes
(types from the metadata; see "Staging contract" in docs/contracts.md): they rename and decode, no casts.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from warehouse.project.forms import describe_form
from warehouse.project.metadata import study_identity
from warehouse.project.sql import staging_sql, subjects_sql
from warehouse.project.suites import (
    expectations_readme,
    key_suites,
    raw_structure_suite,
)
from warehouse.project.toml import study_toml


@dataclass
class InitResult:
    """What `init_project` wrote: the project folder, the export it read, and the files (relative, sorted)."""

    project: Path
    export_id: str
    format: str
    forms: list[str]
    files: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- entry point


def init_project(export: Path, out: Path, *, data_dir: Path | None = None) -> InitResult:
    """Land ``export`` (in ``data_dir``, else a temporary directory) and write a study project into ``out``.

    ``out`` may exist; the files this writes are overwritten, others are left alone."""
    from warehouse.extract import land_export

    export, out = Path(export), Path(out)
    if data_dir is not None:
        return _init_from(land_export(export, Path(data_dir)), export, out)
    with tempfile.TemporaryDirectory(prefix="warehouse-init-") as tmp:
        return _init_from(land_export(export, Path(tmp)), export, out)


def _init_from(landed, export: Path, out: Path) -> InitResult:
    meta_dir = Path(landed.raw_dir) / "_meta"
    meta = {kind: pl.read_parquet(meta_dir / f"{kind}.parquet")
            for kind in ("items", "choices", "events", "forms", "subjects")}
    info = json.loads((meta_dir / "export.json").read_text("utf-8"))
    study = study_identity(export, landed)
    study_has_events = meta["events"].height > 0
    forms = [describe_form(row, Path(landed.raw_dir), meta, info["format"], study_has_events)
             for row in meta["forms"].sort("order").iter_rows(named=True)]
    files: dict[str, str] = {
        "study.toml": study_toml(study, info, forms, meta),
        "sql/marts/subjects.sql": subjects_sql(forms, study_has_events),
        "expectations/README.md": expectations_readme(),
        "expectations/raw/structure.json": raw_structure_suite(),
        "README.md": project_readme(study, export),
    }
    for form in forms:
        files[f"sql/staging/stg_{form.table}.sql"] = staging_sql(form, info["format"])
    for name, suite in key_suites(forms).items():
        files[f"expectations/staging/{name}.json"] = json.dumps(suite, indent=2, ensure_ascii=False) + "\n"
    for relative, text in sorted(files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return InitResult(out, landed.export_id, info["format"], [f.table for f in forms], sorted(files))


def project_readme(study: dict, export: Path) -> str:
    return f"""# {study['title']}

Study project written by `warehouse init` from `{export.name}`: the engine builds it like the demo study.

| path | what |
|---|---|
| `study.toml` | identity, export format, forms, sites, identifiers, dates; time anchor and randomisation to choose |
| `sql/staging/` | one model per form: readable names, codes decoded (`<item>` label, `<item>_cd` code) |
| `sql/marts/subjects.sql` | one row per subject |
| `expectations/` | validation suites (README there: what the engine generates itself) |

From export to published warehouse:

```sh
warehouse extract --export EXPORT --data-dir data            # land it, list forms, rows and subjects
warehouse compile --project .                                # every model against the staged columns
warehouse build --project . --export EXPORT --data-dir data  # stage, transform, validate, publish
warehouse query --data-dir data "select * from subjects"     # read the published warehouse
```

What to edit next:
1. `study.toml`: choose `[time]` (the anchor) and `[randomisation]`, check `[identifiers]`.
2. `sql/staging/`: rename columns to the study's (CDISC) names, drop what is not needed.
3. `sql/intermediate/` and `sql/marts/`: derivations and analysis datasets, read from the staging models.
4. `expectations/`: protocol ranges, date order and windows.
"""
