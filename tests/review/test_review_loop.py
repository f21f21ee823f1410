"""The review loop end to end on the injected demo, through direct builds (warehouse.build.run_build): a blocked
build; every error finding of one rule accepted with a reason, every other one queried; the next build publishes
with the decisions in the warehouse and the report; they survive a rebuild and a new export; the value of an
accepted finding changed by a later export reopens it (and blocks again)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from review_helpers import demo_request, fresh_copy
from typer.testing import CliRunner

from warehouse.build import PublishBlocked, run_build
from warehouse.cli import app
from warehouse.review.actions import decide
from warehouse.review.source import review_source
from warehouse.review.store import read_decisions

pytestmark = pytest.mark.slow

RULE = "weight must be within the plausible range [30, 250] kg"  # a staging rule of the injected demo
REASON = "site confirmed against the source: weight as entered"


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def table(build_file: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(build_file), read_only=True) as con:
        return con.sql(sql).pl()


def changed_export(data_dir: Path, subject: str, field: str, old: str, new: str) -> Path:
    """A copy of the demo's REDCap export with one value of one subject changed (a later export)."""
    import shutil

    source = data_dir / "demo" / "seed-7-n32" / "redcap"
    target = data_dir.parent / "export-2"
    shutil.copytree(source, target)
    path = next(target.glob("*_DATA_*.csv"))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    col, rec = rows[0].index(field), rows[0].index("record_id")
    hits = [r for r in rows[1:] if r[rec] == subject and r[col] == old]
    assert len(hits) == 1, f"{subject}.{field}={old} not found once in {path}"
    hits[0][col] = new
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return target


def test_accept_and_query_publish_and_survive_rebuilds_and_exports(injected_review, tmp_path):
    data = fresh_copy(injected_review, tmp_path / "data")
    source = review_source(data)
    assert not source.published
    errors = source.findings.filter(pl.col("severity") == "error")
    rule = errors.filter(pl.col("rule") == RULE)
    assert rule.height >= 2, "the injected demo has several implausible weights"
    assert set(errors["review_status"].to_list()) == {"open"}

    # accept every error finding of the rule from the command line, with a reason, as a named person
    code, out = cli("findings", "accept", *rule["finding_id"].to_list(), "--reason", REASON, "--by", "dm-alice",
                    "--data-dir", str(data))
    assert code == 0, out
    assert out.count("accept ") == rule.height
    # an unknown id: exit 2, one line, nothing recorded
    code, out = cli("findings", "accept", "0123456789abcdef", "--reason", "x", "--data-dir", str(data))
    assert code == 2 and "unknown finding id(s) 0123456789abcdef" in out
    # a reason quoting an identifier (a date of birth of the export): refused, nothing recorded
    from warehouse.validate.identifiers import export_identifier_values

    names, values = export_identifier_values(data, source.export_id)
    assert "dob" in names and values.long
    code, out = cli("findings", "accept", rule["finding_id"][0], "--reason", f"born {values.long[0]}, fine",
                    "--data-dir", str(data))
    assert code == 2 and "holds an identifier value" in out and values.long[0] not in out
    assert read_decisions(data).height == rule.height
    # query every other error finding (the functions the CLI and the page call)
    others = errors.filter(pl.col("rule") != RULE)["finding_id"].to_list()
    decide(data, "query", others, "please check against the source", "dm-bob")

    # the next build publishes; its summary says who accepted how many
    result = run_build(demo_request(data))
    assert result.published is not None
    assert result.review == (f"Review: {rule.height} error finding(s) accepted (by dm-alice {rule.height}), "
                             f"{len(others)} queried, 0 answered, 0 open")
    built = result.published
    decisions = table(built, "select * from main.finding_decisions order by decision_id")
    assert decisions.height == rule.height + len(others)
    assert decisions.filter(pl.col("action") == "accept")["text"].unique().to_list() == [REASON]
    accepted = table(built, f"select * from main.findings where rule = '{RULE}'")
    assert set(accepted["review_status"].to_list()) == {"accepted"}
    assert set(accepted["accepted_by"].to_list()) == {"dm-alice"}
    assert set(accepted["accepted_reason"].to_list()) == {REASON}
    assert table(built, "select count(*) n from main.findings where severity = 'error' and review_status = "
                        "'queried'")["n"][0] == len(others)
    report = result.report.read_text(encoding="utf-8")
    assert "Accepted findings" in report and REASON in report and "dm-alice" in report
    record = json.loads((data / "builds" / f"{result.build_id}.json").read_text(encoding="utf-8"))
    assert record["status"] == "published"

    # a rebuild of the same export keeps every decision and still publishes
    again = run_build(demo_request(data, force=True))
    assert again.published is not None and again.build_id != result.build_id
    assert again.review == result.review

    # a later export changes one accepted value (still implausible): that acceptance lapses, the others hold
    first = accepted.sort("subject_id").row(0, named=True)
    new_value = str(float(first["value"]) + 100.0)
    export = changed_export(data, first["subject_id"], "weight", first["value"], new_value)
    with pytest.raises(PublishBlocked, match=r"after review 1 error finding\(s\) open"):
        run_build(demo_request(data, export=export))
    blocked = review_source(data)
    assert not blocked.published and blocked.build_id not in (result.build_id, again.build_id)
    now = blocked.findings.filter(pl.col("rule") == RULE)
    lapsed = now.filter(pl.col("finding_id") == first["finding_id"]).row(0, named=True)
    assert lapsed["value"] == new_value and lapsed["review_status"] == "open" and lapsed["acceptance_lapsed"]
    assert now.filter(pl.col("finding_id") != first["finding_id"])["review_status"].unique().to_list() == [
        "accepted"]
    # judged again: accepted for the new value, the build publishes
    decide(data, "accept", [first["finding_id"]], "site confirmed the corrected weight too", "dm-alice")
    final = run_build(demo_request(data, export=export))
    assert final.published is not None
    code, out = cli("findings", "history", first["finding_id"], "--data-dir", str(data))
    assert code == 0 and out.count(" accept ") == 2 and "site confirmed the corrected weight too" in out
