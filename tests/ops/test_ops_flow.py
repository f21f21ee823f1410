"""The Prefect flow, operated: one build at a time per study, extract cached by the export's content hash, a
scheduled run without a new export does nothing, and a blinded build's every output reveals no arm and no
identifier. Runs under the session's Prefect test harness."""

from __future__ import annotations

import contextvars
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from ops_support import (
    ARM_VALUES,
    is_text,
    scan_duckdb,
    scan_parquet,
    scan_text,
    scan_text_cells,
    text_of,
    walk_outputs,
    whole_value_pattern,
)

from warehouse.publish import BuildPaths, read_records

pytestmark = pytest.mark.prefect


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001
            self.messages.append(str(record.msg))


def flow_run_ids(states) -> list:
    return [s.state_details.flow_run_id for s in states]


@pytest.fixture(scope="module")
def flow_builds(prefect_harness, tmp_path_factory):
    """Two blinded builds of the demo study started at once on one data directory, then a scheduled-style run."""
    from prefect.logging.handlers import APILogWorker

    from flows.build import build_warehouse

    data_dir = tmp_path_factory.mktemp("flow-builds")
    collect = Collect()
    prefect_logger = logging.getLogger("prefect")
    level = prefect_logger.level
    prefect_logger.setLevel(logging.INFO)  # the harness runs at WARNING: scan what a production run logs
    prefect_logger.addHandler(collect)
    try:
        with ThreadPoolExecutor(2) as pool:
            # force: the second would otherwise find the first one's build up to date and do nothing
            futures = [pool.submit(contextvars.copy_context().run, build_warehouse, data_dir=str(data_dir),
                                   force=True, return_state=True) for _ in range(2)]
            states = [f.result(timeout=300) for f in futures]
        again_state = build_warehouse(data_dir=str(data_dir), return_state=True)
        skip_state = build_warehouse(data_dir=str(data_dir), only_new=True, return_state=True)
        APILogWorker.drain_all(timeout=10)
    finally:
        prefect_logger.removeHandler(collect)
        prefect_logger.setLevel(level)
    return {"data_dir": data_dir, "states": states, "again_state": again_state, "skip_state": skip_state,
            "messages": collect.messages}


def read_run_objects(flow_run_ids):
    """Task runs, artifacts and logs of flow runs, read back through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids)))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)),
                                limit=200)
    return task_runs, artifacts, logs


def test_two_builds_of_the_same_study_at_once_run_one_after_the_other(flow_builds):
    assert all(s.is_completed() for s in flow_builds["states"])
    records = [r for r in read_records(BuildPaths(flow_builds["data_dir"], True)) if r.status == "published"]
    assert len(records) == 2
    spans = []
    for r in records:
        started = datetime.strptime(r.build_id.split("-")[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc)
        spans.append((started, datetime.fromisoformat(r.finished_at)))
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert a_end <= b_start, f"builds overlapped: {spans}"


def test_a_rebuild_of_an_unchanged_export_and_code_does_nothing(flow_builds):
    from warehouse.rebuild import published_build_id

    paths = BuildPaths(flow_builds["data_dir"], True)
    state = flow_builds["again_state"]
    assert state.is_completed()
    result = state.result()
    assert result.up_to_date and result.model_runs == []
    assert result.build_id == published_build_id(paths) == max(r.build_id for r in read_records(paths))
    assert result.subjects == 32 and result.published == paths.published
    assert len([r for r in read_records(paths) if r.status == "published"]) == 2  # no third build was made


def test_an_unchanged_export_skips_extract(flow_builds):
    task_runs, artifacts, _ = read_run_objects(flow_run_ids(flow_builds["states"]))
    extract_states = sorted(t.state.name for t in task_runs if t.name.startswith("extract"))
    assert extract_states == ["Cached", "Completed"]
    summaries = [a.data for a in artifacts if a.type == "markdown"]
    assert any("extract cached" in s for s in summaries) and any("extract ran" in s for s in summaries)


def test_a_scheduled_run_without_a_new_export_does_nothing(flow_builds):
    from flows.build import NoNewExport

    state = flow_builds["skip_state"]
    assert state.is_completed()
    result = state.result()
    assert isinstance(result, NoNewExport)
    assert len(read_records(BuildPaths(flow_builds["data_dir"], True))) == 2  # no build was started
    _, artifacts, _ = read_run_objects(flow_run_ids([state]))
    assert any("no new export" in (a.data or "") for a in artifacts)


def test_the_study_concurrency_limit_exists_and_is_free_again(flow_builds):
    from prefect.client.orchestration import get_client

    from flows.build import concurrency_name

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(concurrency_name("ADRESS", flow_builds["data_dir"]))
    assert limit.limit == 1 and limit.active_slots == 0


def test_a_blinded_build_reveals_no_arm_anywhere(flow_builds, demo_secrets):
    """Every warehouse table and column, every Parquet file, every report, the artifacts and the logs."""
    data_dir = flow_builds["data_dir"]
    kit_arms = demo_secrets["kit_arms"]
    forbidden = set(ARM_VALUES)
    assert kit_arms and {a for pair in kit_arms.values() for a in pair} <= forbidden  # the list is what we think
    assert not (data_dir / "unblinded").exists()
    assert not [p for p in data_dir.rglob("*") if "randomisation" in p.name.lower() and p.suffix == ".csv"]
    problems, scanned = [], {"duckdb": 0, "parquet": 0, "text": 0, "other": 0}
    for path in walk_outputs(data_dir, skip_top=set()):
        if path.name == ".build.lock":
            continue
        if path.suffix == ".duckdb":
            problems += scan_duckdb(path, forbidden, kit_arms)
            scanned["duckdb"] += 1
        elif path.suffix == ".parquet":
            problems += scan_parquet(path, forbidden, kit_arms)
            scanned["parquet"] += 1
        elif is_text(path):
            problems += scan_text(str(path.relative_to(data_dir)), text_of(path), forbidden)
            scanned["text"] += 1
        else:
            problems += scan_text(str(path), path.read_bytes().decode("latin-1"), forbidden)
            scanned["other"] += 1
    ids = flow_run_ids([*flow_builds["states"], flow_builds["skip_state"]])
    _, artifacts, logs = read_run_objects(ids)
    assert artifacts and logs
    for a in artifacts:
        problems += scan_text(f"artifact {a.key}", str(a.data), forbidden)
    problems += scan_text("API logs", "\n".join(log.message for log in logs), forbidden)
    problems += scan_text("local logs", "\n".join(flow_builds["messages"]), forbidden)
    assert scanned["duckdb"] >= 3 and scanned["parquet"] >= 10 and scanned["text"] >= 4
    assert problems == []


def test_identifiers_never_leave_the_raw_zone(flow_builds, demo_secrets):
    data_dir = flow_builds["data_dir"]
    names = demo_secrets["identifier_names"]
    values = {v for vs in demo_secrets["identifier_values"].values() for v in vs}
    initials, dobs = demo_secrets["identifier_values"]["initials"], demo_secrets["identifier_values"]["dob"]
    assert names == {"initials", "dob"} and len(initials) > 10 and len(dobs) > 30
    problems = []
    raw_zone = {"raw", "landing", "demo", "quarantine"}
    for path in walk_outputs(data_dir, skip_top=raw_zone):
        if path.suffix == ".duckdb":
            problems += scan_duckdb(path, values, {}, identifier_names=names)
        elif path.suffix == ".parquet":
            problems += scan_parquet(path, values, {})
        elif is_text(path):
            text = text_of(path)
            # two-letter initials are common words ("ID"): looked for as whole cells; dates anywhere
            problems += scan_text_cells(str(path.relative_to(data_dir)), text, initials)
            problems += scan_text(str(path.relative_to(data_dir)), text, dobs)
            # Great Expectations data docs of the raw stage describe the raw forms, column names included (raw
            # zone validation): they may name the items, never show their values (checked above)
            raw_stage_docs = "data_docs" in path.parts and any(part.startswith("raw") for part in path.parts)
            if re.search(r"\b(initials|dob)\b", text) and not raw_stage_docs:
                problems.append(f"{path} names an identifier item")
    _, artifacts, logs = read_run_objects(flow_run_ids(flow_builds["states"]))
    pattern = whole_value_pattern(dobs | names)
    for text in [str(a.data) for a in artifacts] + [log.message for log in logs] + flow_builds["messages"]:
        if pattern.search(text):
            problems.append(f"artifact/log: {pattern.search(text).group(0)}")
        problems += scan_text_cells("artifact/log", text, initials)
    assert problems == []


def harness_env() -> dict:
    import os

    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


def test_cli_build_with_no_new_export_says_so_and_exits_0(flow_builds):
    from ops_support import cli

    proc = cli("build", "--only-new", "--data-dir", str(flow_builds["data_dir"]), env=harness_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No new export:")
    # decided before any Prefect server starts: no stage line, no Prefect log noise
    assert "Traceback" not in proc.stderr and "Prefect" not in proc.stderr
    assert len(read_records(BuildPaths(flow_builds["data_dir"], True))) == 2


def test_cli_build_while_another_build_holds_the_lock_exits_4_in_one_line(flow_builds):
    from ops_support import cli

    from warehouse.publish import build_lock

    env = {**harness_env(), "WAREHOUSE_LOCK_TIMEOUT": "1"}
    with build_lock(flow_builds["data_dir"]):  # --force: an up-to-date build answers without the lock
        proc = cli("build", "--force", "--data-dir", str(flow_builds["data_dir"]), env=env)
    assert proc.returncode == 4, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another build" in errors[0] and "Traceback" not in proc.stderr


def test_a_flow_build_stores_lineage_catalog_and_change_report(flow_builds):
    import duckdb

    published = BuildPaths(flow_builds["data_dir"], True).published
    with duckdb.connect(str(published), read_only=True) as con:
        tables = {r[0] for r in con.sql("select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
        assert {"lineage", "catalog", "export_changes"} <= tables
        mart_columns = con.sql("select count(*) from duckdb_columns() where schema_name = 'main' "
                               "and table_name in ('adsl', 'adeff', 'adae', 'adtte', 'hemodynamics')").fetchall()[0][0]
        lineage_columns = con.sql("select count(distinct (table_name, column_name)) from main.lineage").fetchall()
        assert lineage_columns[0][0] >= mart_columns > 50
        assert con.sql("select count(*) from main.export_changes").fetchall()[0][0] == 0  # one snapshot only


def test_each_model_is_a_task_named_after_it_and_the_summary_times_them(flow_builds):
    from warehouse.transform.models import discover_models
    from warehouse.resources import sql_dir

    task_runs, artifacts, _ = read_run_objects(flow_run_ids(flow_builds["states"][:1]))
    names = {t.name.rsplit("-", 1)[0] for t in task_runs}
    assert set(discover_models(sql_dir())) <= names and "document" in names
    summary = next(a.data for a in artifacts if a.type == "markdown")
    assert "## Models" in summary and "| adsl | main.adsl | 32 |" in summary and "## Validation" in summary
    tables = [a for a in artifacts if a.type == "table"]
    assert len(tables) == 1


def test_the_run_graph_links_each_step_to_the_steps_it_reads(flow_builds):
    """The steps' arguments are passed to Prefect unwalked (flows.build.unwalked, for speed): the graph in the UI
    still links a step to the steps whose results it reads, and `document` to every model's task run."""
    from warehouse.resources import sql_dir
    from warehouse.transform.models import discover_models

    task_runs, _, _ = read_run_objects(flow_run_ids(flow_builds["states"][:1]))
    by_id = {t.id: t.name.rsplit("-", 1)[0] for t in task_runs}
    upstream = {by_id[t.id]: {k: {by_id.get(i.id) for i in v} for k, v in t.task_inputs.items() if v}
                for t in task_runs}
    assert upstream["findings"]["validations"] == {"validate-raw", "validate-staging", "validate-marts"}
    assert upstream["findings"]["review"] == {"review"}
    assert upstream["report"]["history"] == {"findings"}
    assert upstream["stage"]["export_id"] == {"extract"}
    assert upstream["document"]["wait_for"] == set(discover_models(sql_dir()))
