"""Transform runner: SQL models built in DuckDB, one after the other in dependency order, each in its layer's
schema with its descriptions as DuckDB comments; sessions that hold one connection for a run of models, and the
bookkeeping that contains a failure to the models downstream of it.

The models themselves (files, headers, the tables they read) are in `models`, their order and selection in
`order`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.transform.models import Model, ModelError, discover_models
from warehouse.transform.order import execution_order, select_models

SEARCH_PATH = "main,intermediate,staging,src"


@dataclass
class ModelRun:
    name: str
    relation: str
    rows: int
    seconds: float


def prepare_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """The layers' schemas (created when missing) and the search path. One look-up rather than a CREATE SCHEMA
    IF NOT EXISTS per schema: each of those is a transaction of its own, and the build calls this per model."""
    present = {r[0] for r in con.execute(
        "select schema_name from duckdb_schemas() where database_name = current_database()").fetchall()}
    for schema in ("src", "staging", "intermediate"):
        if schema not in present:
            con.execute(f"create schema if not exists {schema}")
    con.execute(f"set search_path = '{SEARCH_PATH}'")


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_commented_table(con: duckdb.DuckDBPyConnection, table: str, frame, comment: str,
                          column_comments: dict[str, str]) -> None:
    """Store a Polars frame as `main.<table>` (replacing it), with its table and column comments."""
    con.register(f"_{table}", frame.to_arrow())
    con.execute(f"create or replace table main.{table} as select * from _{table}")
    con.unregister(f"_{table}")
    con.execute(f"comment on table main.{table} is {quote_literal(comment)}")
    for column, text in column_comments.items():
        con.execute(f"comment on column main.{table}.{column} is {quote_literal(text)}")


# Descriptions of the key columns every layer carries, for a model whose header does not describe them.
KEY_DESCRIPTIONS = {
    "subject_id": "Subject: the eCRF record id (REDCap record / ODM SubjectKey)",
    "site_id": "Site: REDCap data access group / ODM site (LocationOID)",
    "event": "eCRF event: REDCap unique event name / ODM StudyEventOID",
    "repeat_instance": "Repeat instance of a repeating form (null when the form does not repeat)",
}


class Descriptions:
    """The column descriptions (DuckDB comments) of a database's tables, as the runner needs them to document a
    model: (schema, table) -> {column: text}, empty texts left out.

    Read from the catalog once (`read`) and then kept up to date by the runner itself (`record`, after each model
    it documented), so that a run of many models on one connection does not scan duckdb_columns() per model (~3 ms
    each, the catalog holding every staged form's columns). The runner is the only writer during a run (one build
    per data directory at a time), so what is kept equals what the catalog would say."""

    def __init__(self, tables: dict[tuple[str, str], dict[str, str]] | None = None):
        self.tables: dict[tuple[str, str], dict[str, str]] = tables if tables is not None else {}

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, names: list[str] | None = None) -> Descriptions:
        """Every described column of the current database, or only those of tables with one of `names`."""
        where = ""
        if names is not None:
            if not names:
                return cls()
            where = f" and table_name in ({', '.join('?' for _ in names)})"
        rows = con.execute(
            "select schema_name, table_name, column_name, comment from duckdb_columns() "
            f"where database_name = current_database() and comment is not null and comment <> ''{where}",
            names or []).fetchall()
        tables: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, comment in rows:
            tables.setdefault((schema, table), {})[column] = comment
        return cls(tables)

    def record(self, model: Model, comments: dict[str, str]) -> None:
        """The model's table now holds exactly these column comments (`create or replace` dropped any older)."""
        described = {column: text for column, text in comments.items() if text}
        if described:
            self.tables[(model.schema, model.name)] = described
        else:
            self.tables.pop((model.schema, model.name), None)

    def inherited(self, model: Model) -> dict[str, str]:
        """Descriptions for columns the header leaves out (see inherited_descriptions): the key columns' own, then
        the first description of the column in a table named like one the model reads (by bare name, in any
        schema): tables outside `src` first (a model's description before the eCRF item's label), then by name."""
        names = {ref.rpartition(".")[2] for ref in model.depends_on}
        found: dict[str, str] = dict(KEY_DESCRIPTIONS)
        own = (model.schema, model.name)
        candidates = sorted((key for key in self.tables if key[1] in names and key != own),
                            key=lambda key: (key[0] == "src", key[1], key[0]))
        for key in candidates:
            for column, text in self.tables[key].items():
                found.setdefault(column.lower(), text)
        return found


def inherited_descriptions(con: duckdb.DuckDBPyConnection, model: Model,
                           known: Descriptions | None = None) -> dict[str, str]:
    """Descriptions for columns the header leaves out: a column passed through under its own name keeps the
    description it has in a table the model reads (a staged eCRF item keeps its item label), keys get theirs.
    `known`: the descriptions a run keeps (see Descriptions); without it, the catalog is read for this model."""
    if known is None:
        known = Descriptions.read(con, sorted({ref.rpartition(".")[2] for ref in model.depends_on}))
    return known.inherited(model)


def output_columns(con: duckdb.DuckDBPyConnection, model: Model) -> list[str]:
    """The model's columns as DuckDB names them: what the compile inferred (the same SELECT over inputs of the same
    types), else DuckDB's DESCRIBE of the relation just created."""
    if model.output_columns:
        return list(model.output_columns)
    return [row[0] for row in con.execute(f"describe {model.relation}").fetchall()]


def comment_statements(con: duckdb.DuckDBPyConnection, model: Model,
                       known: Descriptions | None = None) -> tuple[list[str], dict[str, str]]:
    """The COMMENT ON statements that document the model, and the column comments they write: the header's
    description and columns (those the model outputs), else the description the same column has upstream."""
    kind = "view" if model.materialized == "view" else "table"
    statements = []
    if model.description:
        statements.append(f"comment on {kind} {model.relation} is {quote_literal(model.description)}")
    existing = output_columns(con, model)
    by_lower = {column.lower(): column for column in existing}
    written: dict[str, str] = {}
    for column, text in model.columns.items():
        if column.lower() in by_lower:
            statements.append(f"comment on column {model.relation}.{column} is {quote_literal(text)}")
            written[by_lower[column.lower()]] = text
    described = {c.lower() for c in model.columns}
    missing = [c for c in existing if c.lower() not in described]
    if missing and any(c.lower() not in KEY_DESCRIPTIONS for c in missing):
        upstream = inherited_descriptions(con, model, known)
    else:
        upstream = KEY_DESCRIPTIONS  # keys only: no table needs to be read
    for column in missing:
        text = upstream.get(column.lower())
        if text:
            statements.append(f'comment on column {model.relation}."{column}" is {quote_literal(text)}')
            written[column] = text
    return statements, written


def document_model(con: duckdb.DuckDBPyConnection, model: Model, known: Descriptions | None = None) -> dict[str, str]:
    """Store the model's descriptions as DuckDB comments, so any client shows them beside the table: the header's,
    else the description the same column has upstream (see inherited_descriptions). Every COMMENT ON of the model
    goes to DuckDB in one call. Returns the column comments written (`known`, if given, is only read)."""
    statements, written = comment_statements(con, model, known)
    if statements:
        con.execute(";\n".join(statements))
    return written


def run_model(con: duckdb.DuckDBPyConnection, model: Model, known: Descriptions | None = None) -> ModelRun:
    """Build one model's table (or view) in its layer's schema, with its comments, in one transaction.

    One transaction, not one per statement: each COMMENT ON would otherwise be a commit of its own (most of the
    runner's overhead before). A table's row count is what CREATE TABLE AS returns. `known`: the descriptions a
    run of several models keeps (see Descriptions), updated only when the model's transaction committed. Anything
    that interrupts the model rolls its transaction back, so the connection can run the next one."""
    started = time.perf_counter()
    kind = "view" if model.materialized == "view" else "table"
    written: dict[str, str] = {}
    con.execute("begin transaction")
    try:
        created = con.execute(f"create or replace {kind} {model.relation} as\n{model.sql}").fetchall()
        written = document_model(con, model, known)
        con.execute("commit")
    except duckdb.Error as err:
        rollback(con)
        raise ModelError(f"{model.path}: {str(err).splitlines()[0]}") from err
    except BaseException:
        rollback(con)
        raise
    if known is not None:
        known.record(model, written)
    if kind == "table" and created and isinstance(created[0][0], int):
        rows = created[0][0]
    else:
        rows = con.execute(f"select count(*) from {model.relation}").fetchall()[0][0]
    return ModelRun(model.name, model.relation, rows, time.perf_counter() - started)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction; a failed COMMIT has already ended it (nothing left to roll back)."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


@dataclass
class ModelSession:
    """One connection that runs models one after the other: the schemas and search path prepared once, and the
    descriptions of its tables kept from one catalog read (see Descriptions) instead of one read per model."""

    con: duckdb.DuckDBPyConnection
    descriptions: Descriptions

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection) -> ModelSession:
        prepare_schemas(con)
        return cls(con, Descriptions.read(con))

    def run(self, model: Model) -> ModelRun:
        return run_model(self.con, model, self.descriptions)


_HELD: dict[str, ModelSession] = {}  # database file -> the session holding it open (see hold_session)


def _database_key(database: Path | str) -> str:
    return str(Path(database).resolve())


@contextmanager
def hold_session(database: Path | str, con: duckdb.DuckDBPyConnection) -> Iterator[ModelSession]:
    """Make `con` (open on `database`) the session that `held_session(database)` returns while the block runs: a
    caller that is only given the file (the build's per-model Prefect task) then runs on this connection instead
    of connecting, preparing the schemas and reading the catalog again for every model."""
    key = _database_key(database)
    session = ModelSession.open(con)
    previous = _HELD.get(key)
    _HELD[key] = session
    try:
        yield session
    finally:
        if previous is None:
            _HELD.pop(key, None)
        else:
            _HELD[key] = previous


def held_session(database: Path | str) -> ModelSession | None:
    """The session holding `database` open in this process (see hold_session), or None."""
    return _HELD.get(_database_key(database)) if _HELD else None


def source_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_name from information_schema.tables where table_schema = 'src'").fetchall()
    return {r[0].lower() for r in rows}


def run_models(con: duckdb.DuckDBPyConnection, sql_root: Path, select: str | list[str] | None = None) -> list[ModelRun]:
    """Run every model (or the selected ones) in dependency order: the direct, Prefect-free path.

    Every model that can run does; then a failure (and the descendants it stopped) is raised as one ModelError.
    """
    prepare_schemas(con)
    models = discover_models(sql_root)
    order = execution_order(models, source_tables(con))
    result = run_project(con, models, order, select)
    result.raise_for_failures()
    return result.runs


# -- running, with failures contained to their descendants ---------------------------------------------------


@dataclass
class RunResult:
    """What a run did: the models built (with timings), the failed ones (with their error), the skipped ones
    (with the failed model that stopped them) and the ones left out by the selector."""

    runs: list[ModelRun] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_selected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """The run summary: one line per model with rows and seconds, then failures and what they stopped."""
        lines = [f"{'model':<32} {'relation':<40} {'rows':>8} {'seconds':>8}"]
        for run in self.runs:
            lines.append(f"{run.name:<32} {run.relation:<40} {run.rows:>8} {run.seconds:>8.3f}")
        for name, error in self.failed.items():
            lines.append(f"{name:<32} FAILED: {error}")
        for name, cause in self.skipped.items():
            lines.append(f"{name:<32} SKIPPED: upstream model {cause} failed")
        total = sum(r.seconds for r in self.runs)
        lines.append(
            f"{len(self.runs)} built in {total:.2f} s, {len(self.failed)} failed, {len(self.skipped)} skipped"
            + (f", {len(self.not_selected)} not selected" if self.not_selected else "")
        )
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        if self.failed:
            raise ModelError(self.failure_message())

    def failure_message(self) -> str:
        parts = [f"{name}: {error}" for name, error in self.failed.items()]
        message = f"{len(self.failed)} model(s) failed: " + "; ".join(parts)
        if self.skipped:
            message += f"; not run because of them: {', '.join(self.skipped)}"
        return message


class RunTracker:
    """Decides, model by model in dependency order, whether a model may run, and collects the RunResult.

    The same bookkeeping serves the direct runner (`run_project`) and the Prefect flow:

        tracker = RunTracker(models)            # the ordered list from plan_models / compile_models
        for model in models:
            if tracker.should_run(model):       # False (and recorded as skipped) when an upstream failed
                try:
                    tracker.record(run_model_task(build_file, model))
                except Exception as err:
                    tracker.fail(model, err)
        result = tracker.result()               # result.summary(); result.raise_for_failures()
    """

    def __init__(self, models: list[Model] | dict[str, Model], not_selected: list[str] | None = None):
        self.models = {m.name: m for m in (models.values() if isinstance(models, dict) else models)}
        self.state = RunResult(not_selected=list(not_selected or []))
        self._stopped: dict[str, str] = {}  # model -> the failed model that stops it

    def blocked_by(self, model: Model) -> str | None:
        """The failed model that stops this one, or None."""
        for parent in sorted(model.upstream):
            if parent in self.state.failed:
                return parent
            if parent in self._stopped:
                return self._stopped[parent]
        return None

    def should_run(self, model: Model) -> bool:
        cause = self.blocked_by(model)
        if cause is not None:
            self._stopped[model.name] = cause
            self.state.skipped[model.name] = cause
            return False
        return True

    def record(self, run: ModelRun) -> None:
        self.state.runs.append(run)

    def fail(self, model: Model, error: BaseException | str) -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.state.failed[model.name] = text

    def result(self) -> RunResult:
        return self.state


def run_project(
    con: duckdb.DuckDBPyConnection,
    models: dict[str, Model],
    order: list[str],
    select: str | list[str] | None = None,
) -> RunResult:
    """Run the selected models in `order`; a failed model stops its descendants, independent models still run."""
    chosen = select_models(models, select)
    session = ModelSession.open(con)
    tracker = RunTracker([models[n] for n in order if n in chosen], [n for n in order if n not in chosen])
    for name in order:
        if name not in chosen:
            continue
        model = models[name]
        if not tracker.should_run(model):
            continue
        try:
            tracker.record(session.run(model))
        except ModelError as err:
            tracker.fail(model, err)
    return tracker.result()
