"""The data manager's review: `warehouse findings` (list, accept, query, answer, reopen, history) and
`warehouse review` (the same on a local page). See docs/review.md.

Both read the newest finished build (the blocked one when the latest build was blocked, else the published one)
and record decisions in DIR/review/decisions.sqlite. Bad input (an unknown id, an empty reason, no build): one
`error:` line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from warehouse.commands import DataDir

EXIT_BAD_INPUT = 2
LIST_COLUMNS = ("finding_id", "review_status", "severity", "stage", "site_id", "subject_id", "event",
                "repeat_instance", "form", "field", "value", "rule", "query_id", "accepted_by")

Unblinded = Annotated[bool, typer.Option("--unblinded", help="Review the unblinded builds (DIR/unblinded).")]
By = Annotated[Optional[str], typer.Option("--by", help="Who decides (default: the OS account).")]
Ids = Annotated[list[str], typer.Argument(help="Finding ids (the first column of `warehouse findings list`).")]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _source(data_dir: Path, unblinded: bool):
    from warehouse.review.source import ReviewError, review_source

    try:
        return review_source(data_dir, blinded=not unblinded)
    except ReviewError as err:
        _fail(str(err))


def _cell(value) -> str:
    return "" if value is None else " ".join(str(value).split())


def list_command(
    data_dir: DataDir = Path("data"),
    site: Annotated[Optional[str], typer.Option("--site", help="Only this site (site_id).")] = None,
    form: Annotated[Optional[str], typer.Option("--form", help="Only this form.")] = None,
    rule: Annotated[Optional[str], typer.Option("--rule", help="Only rules equal to, or containing, this text.")] = None,
    severity: Annotated[Optional[str], typer.Option("--severity", help="error or warning.")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="open, queried, answered or accepted.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table (tab-separated) or csv.")] = "table",
    unblinded: Unblinded = False,
) -> None:
    """List the findings of the build under review with their review status, errors first."""
    import polars as pl

    from warehouse.review.source import ReviewError, filter_findings
    from warehouse.review.status import STATUSES

    if status is not None and status not in STATUSES:
        _fail(f"--status {status}: one of {', '.join(STATUSES)}")
    if severity is not None and severity not in ("error", "warning"):
        _fail(f"--severity {severity}: error or warning")
    if fmt not in ("table", "csv"):
        _fail(f"--format {fmt}: table or csv")
    source = _source(data_dir, unblinded)
    try:
        rows = filter_findings(source.findings, site_id=site, form=form, rule=rule, severity=severity,
                               review_status=status)
    except ReviewError as err:
        _fail(str(err))
    state = "published" if source.published else "blocked"
    typer.echo(f"build {source.build_id} ({state}): {rows.height} of {source.findings.height} finding(s)", err=True)
    if rows.height == 0:
        return
    rows = (rows.with_columns(_o=pl.col("severity").replace_strict({"error": 0, "warning": 1}, default=2))
            .sort(["_o", "site_id", "subject_id", "form", "event", "field"], nulls_last=True)
            .select(list(LIST_COLUMNS)))
    if fmt == "csv":
        typer.echo(rows.write_csv(), nl=False)
        return
    typer.echo("\t".join(LIST_COLUMNS))
    for row in rows.iter_rows():
        typer.echo("\t".join(_cell(v) for v in row))


def _decide(action: str, ids: list[str], text: str | None, by: str | None, data_dir: Path, unblinded: bool) -> None:
    from warehouse.review.actions import decide
    from warehouse.review.source import ReviewError

    try:
        recorded = decide(data_dir, action, ids, text, by, blinded=not unblinded)
    except ReviewError as err:
        _fail(str(err))
    for row in recorded.iter_rows(named=True):
        query = f" query {row['query_id']}" if row["query_id"] else ""
        typer.echo(f"{row['action']} {row['finding_id']}{query}: decision {row['decision_id']} by "
                   f"{row['decided_by']} at {row['decided_at']}")


def accept(ids: Ids, reason: Annotated[Optional[str], typer.Option("--reason", help="Why the value is correct as entered.")] = None,
           by: By = None, data_dir: DataDir = Path("data"), unblinded: Unblinded = False) -> None:
    """Accept findings: the values are correct as entered (they no longer block publishing while unchanged)."""
    _decide("accept", ids, reason, by, data_dir, unblinded)


def query(ids: Ids, text: Annotated[Optional[str], typer.Option("--text", help="The query sent to the site.")] = None,
          by: By = None, data_dir: DataDir = Path("data"), unblinded: Unblinded = False) -> None:
    """Query findings: sent to the site (each gets a query id; the site's query sheet lists it)."""
    _decide("query", ids, text, by, data_dir, unblinded)


def answer(finding_id: Annotated[str, typer.Argument(help="The queried finding's id.")],
           text: Annotated[Optional[str], typer.Option("--text", help="The site's answer.")] = None,
           by: By = None, data_dir: DataDir = Path("data"), unblinded: Unblinded = False) -> None:
    """Record the site's answer to a queried finding."""
    _decide("answer", [finding_id], text, by, data_dir, unblinded)


def reopen(finding_id: Annotated[str, typer.Argument(help="The finding's id.")],
           reason: Annotated[Optional[str], typer.Option("--reason", help="Why it is open again.")] = None,
           by: By = None, data_dir: DataDir = Path("data"), unblinded: Unblinded = False) -> None:
    """Reopen a queried, answered or accepted finding (an accepted error blocks publishing again)."""
    _decide("reopen", [finding_id], reason, by, data_dir, unblinded)


def history_command(finding_id: Annotated[str, typer.Argument(help="The finding's id.")],
                    data_dir: DataDir = Path("data"), unblinded: Unblinded = False) -> None:
    """A finding and every decision on it, oldest first."""
    from warehouse.review.source import ReviewError, history

    source = _source(data_dir, unblinded)
    try:
        finding, decisions = history(source, finding_id)
    except ReviewError as err:
        _fail(str(err))
    typer.echo(f"finding {finding_id}: {finding['review_status']}  {finding['severity']} {finding['stage']}  "
               f"site {_cell(finding['site_id'])} subject {_cell(finding['subject_id'])} event "
               f"{_cell(finding['event'])} form {_cell(finding['form'])} field {_cell(finding['field'])} value "
               f"{_cell(finding['value'])}")
    typer.echo(f"rule: {_cell(finding['rule'])}")
    if finding["acceptance_lapsed"]:
        typer.echo("an acceptance lapsed: the value changed since it was accepted")
    if decisions.height == 0:
        typer.echo("no decision yet")
    for d in decisions.iter_rows(named=True):
        query = f" [{d['query_id']}]" if d["query_id"] else ""
        typer.echo(f"{d['decided_at']}  {d['action']}{query}  by {d['decided_by']}: {d['text']}")


def review(
    data_dir: DataDir = Path("data"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free one).")] = 8765,
    by: By = None,
    unblinded: Unblinded = False,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in the browser.")] = False,
) -> None:
    """The review page on http://127.0.0.1:PORT/ (only this machine): findings, filters, history, decisions,
    per-site query sheets. Ctrl-C stops it."""
    from warehouse.review.source import ReviewError
    from warehouse.review.web import serve

    try:
        serve(data_dir, port=port, by=by, blinded=not unblinded, open_browser=open_browser,
              say=lambda line: typer.echo(line))
    except ReviewError as err:
        _fail(str(err))


def register(app: typer.Typer) -> None:
    findings = typer.Typer(help="The data manager's review of findings: list, accept, query, answer, reopen, "
                                "history (decisions in DIR/review/decisions.sqlite).", no_args_is_help=True)
    findings.command("list")(list_command)
    findings.command("accept")(accept)
    findings.command("query")(query)
    findings.command("answer")(answer)
    findings.command("reopen")(reopen)
    findings.command("history")(history_command)
    app.add_typer(findings, name="findings")
    app.command("review")(review)
