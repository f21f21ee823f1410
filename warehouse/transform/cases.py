"""A project's unit cases: YAML files beside the models, `sql/<layer>/<model>.yml`, run by `warehouse test`.

One file holds one case (a mapping), a list of cases, or `cases:` with a list; a case is

    model: int_vfd                       # the model under test
    name: death by day 28 gives 0        # what the case shows (printed on a failure)
    given:                               # input tables: a model (stg_x) or a staged form (src.x), rows as mappings
      stg_end_of_study:
        - {subject_id: D1, dthfl: true, dthdtm_hrs: 600.0}
    expect:
      rows:                              # compared on the columns each row names (warehouse.transform.testing)
        - {subject_id: D1, vfd28: 0.0}
      ordered: false                     # optional; also order_by: [col, ...] and tolerance: 1.0e-9

Where the `src` schema comes from (the column types the given rows are typed with): the project's snapshot
`sql/src_schema.json`, written from the project's last build by `warehouse test --update-schema` and kept in the
project like its models, so the cases run the same on any machine, without data and without a build. A project
without a snapshot (just made by `warehouse init`) uses the `src` schema of its newest build under the data
directory. Either way `src.study_parameters` is typed from the project's current study.toml, as the build stages
it. When both a snapshot and a build exist and they differ, the run warns (the snapshot is stale).

Model discovery reads `*.sql` only, and the code fingerprint (warehouse.rebuild) leaves the cases out: they test
the models but change nothing a build writes, so editing a case does not make the published warehouse stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.transform.compile import SourceSchema
from warehouse.transform.models import ModelError
from warehouse.transform.testing import (
    CaseError,
    UnitContext,
    assert_rows,
    load_src_schema,
    run_model_on,
    snapshot_path,
)

CASE_KEYS = {"model", "name", "given", "expect", "description"}
EXPECT_KEYS = {"rows", "ordered", "order_by", "tolerance"}


@dataclass
class Case:
    """One unit case and where it is written (file and line, for every message about it)."""

    path: Path
    line: int
    model: str
    name: str
    given: dict[str, list[dict[str, Any]]]
    expect: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class CaseResult:
    """A case's outcome: "pass", "fail" (the model's rows differ, or the model failed to run) or "error" (the case
    cannot run as written); `detail` is the diff or the reason."""

    case: Case
    outcome: str
    detail: str = ""


def case_files(sql_root: Path) -> list[Path]:
    """Every unit-case file of a project: `*.yml` anywhere under its sql/ folder, in path order."""
    return sorted(sql_root.rglob("*.yml"))


def _case_nodes(path: Path, text: str) -> list[tuple[Any, int]]:
    """The file's cases with the line each starts on; a YAML syntax error is a CaseError naming file and line."""
    import yaml

    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            reason += f" ({context} at line {start.line + 1})"
        raise CaseError(f"{path}{line}: malformed YAML: {reason}") from None
    if data is None:
        return []
    if isinstance(data, dict) and "cases" in data:
        items = data["cases"]
        node = next(v for k, v in root.value if k.value == "cases")
        if not isinstance(items, list):
            raise CaseError(f"{path}:{node.start_mark.line + 1}: 'cases' must be a list of cases")
        return [(item, n.start_mark.line + 1) for item, n in zip(items, node.value)]
    if isinstance(data, dict):
        return [(data, root.start_mark.line + 1)]
    if isinstance(data, list):
        return [(item, n.start_mark.line + 1) for item, n in zip(data, root.value)]
    raise CaseError(f"{path}:1: a unit-case file holds a case, a list of cases or `cases:`, not {type(data).__name__}")


def _check_shape(path: Path, line: int, number: int, case: Any) -> None:
    """The keys and types of one case; a problem is a CaseError naming file, line and the case's number."""
    where = f"{path}:{line}: case {number}"
    if not isinstance(case, dict):
        raise CaseError(f"{where}: a case must be a mapping (model, name, given, expect)")
    for key in ("model", "given", "expect"):
        if key not in case:
            raise CaseError(f"{where} lacks '{key}'")
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; a case has "
                        f"{', '.join(sorted(CASE_KEYS))}")
    if case["given"] is not None and not isinstance(case["given"], dict):
        raise CaseError(f"{where}: 'given' must map table names to lists of rows")
    for table, rows in (case["given"] or {}).items():
        if rows is not None and not isinstance(rows, list):
            raise CaseError(f"{where}: given '{table}' must be a list of rows")
    expect = case["expect"]
    if not isinstance(expect, dict) or set(expect) - EXPECT_KEYS:
        raise CaseError(f"{where}: 'expect' must be a mapping of {', '.join(sorted(EXPECT_KEYS))}")
    if not isinstance(expect.get("rows") or [], list):
        raise CaseError(f"{where}: expect 'rows' must be a list of rows")


def load_cases(path: Path) -> list[Case]:
    """The cases of one YAML file, each checked for its keys (a problem names the file and the case's line)."""
    cases = []
    for number, (case, line) in enumerate(_case_nodes(path, path.read_text(encoding="utf-8")), start=1):
        _check_shape(path, line, number, case)
        cases.append(Case(path, line, str(case["model"]), str(case.get("name") or f"case {number}"),
                          case["given"] or {}, case["expect"]))
    return cases


def check_case(case: Case, context: UnitContext | None = None) -> None:
    """Run one case and assert its expectation: AssertionError with the diff when the rows differ."""
    expect = case.expect
    rows = run_model_on(case.model, case.given, order_by=expect.get("order_by"), context=context)
    assert_rows(rows, expect.get("rows") or [], ordered=bool(expect.get("ordered") or expect.get("order_by")),
                tolerance=float(expect.get("tolerance", 1e-9)))


def run_cases(cases: list[Case], context: UnitContext) -> list[CaseResult]:
    """Every case's outcome; one case's failure or error does not stop the others."""
    results = []
    for case in cases:
        try:
            check_case(case, context)
        except AssertionError as err:
            results.append(CaseResult(case, "fail", str(err)))
        except CaseError as err:
            results.append(CaseResult(case, "error", f"{case.where}: {err}"))
        except ModelError as err:  # the model's SQL failed on these rows
            results.append(CaseResult(case, "fail", f"the model failed: {err}"))
        else:
            results.append(CaseResult(case, "pass"))
    return results


def project_src_schema(project: Path, data_dir: Path | None) -> tuple[SourceSchema, str, list[str]]:
    """The `src` schema a project's cases are typed with, where it came from, and warnings (see the module).
    FileNotFoundError (its message says what to run) when the project has neither a snapshot nor a build."""
    from warehouse.study import load_study
    from warehouse.transform.compile import find_source_database, source_schema_of

    snapshot = snapshot_path(project)
    build: Path | None = None
    if data_dir is not None:
        try:
            build = find_source_database(data_dir)
        except FileNotFoundError:
            build = None
    warnings: list[str] = []
    if snapshot.is_file():
        schema, origin = load_src_schema(snapshot), str(snapshot)
        if build is not None:
            built = source_schema_of(build)
            stale = sorted(t for t in set(schema) | set(built)
                           if t != "study_parameters" and schema.get(t) != built.get(t))
            if stale:
                warnings.append(f"{snapshot} differs from the src schema of {build} in {', '.join(stale)}; "
                                f"`warehouse test --update-schema` refreshes it")
    elif build is not None:
        schema, origin = source_schema_of(build), f"{build} (no {snapshot.name} in the project)"
    else:
        raise FileNotFoundError(
            f"no src schema for the unit cases: {snapshot} does not exist and there is no build under "
            f"{data_dir}; build once (`warehouse build --project {project} --export PATH`), then "
            f"`warehouse test --update-schema` keeps a snapshot in the project")
    columns = load_study(project / "study.toml").parameter_columns()
    schema["study_parameters"] = {name: kind for name, (_, kind) in columns.items()}
    return schema, origin, warnings
