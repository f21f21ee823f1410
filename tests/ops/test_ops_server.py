"""Deployments against a real Prefect server on loopback, started here with its own PREFECT_HOME and SQLite DB.

prefect.yaml is deployed with `prefect deploy` (one deployment per study project, each with its `project`), a process
worker runs a flow run of the demo study's deployment triggered through the API, and its artifacts are read back;
`warehouse serve` registers the served deployment (cron, Europe/Paris, the active project) and runs a triggered run
in-process: with no new export, it does nothing. Nothing here touches the session's test harness:
the server, worker and serve processes get their settings from their own environment, and the test talks to the
server through a client with an explicit API URL. Every process is stopped at the end, whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ops_support import PROJECT, free_port

STARTUP_SECONDS = 60
RUN_SECONDS = 90


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    processes = [proc]
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        client_env = {**env, "PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1",
                      "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
        yield {"api": api, "env": client_env, "home": home, "processes": processes,
               "data_dir": tmp_path_factory.mktemp("served-data")}
    finally:
        for p in reversed(processes):
            stop(p)
        log.close()


def client_for(api: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api=api)


def wait_for_final_state(api: str, flow_run_id, seconds: float):
    deadline = time.monotonic() + seconds
    with client_for(api) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                pytest.fail(f"flow run {flow_run_id} still {run.state.name if run.state else '?'} after {seconds} s")
            time.sleep(0.5)


def artifacts_of(api: str, flow_run_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with client_for(api) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def run(args, env, timeout=120):
    proc = subprocess.run(args, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    return proc


def start(server, args, name):
    log = open(server["home"] / f"{name}.log", "w")
    proc = subprocess.Popen(args, env=server["env"], cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server["processes"].append(proc)
    return proc


def test_prefect_yaml_deployment_runs_on_a_process_worker(server, demo_secrets):
    env, api = server["env"], server["api"]
    run([sys.executable, "-m", "prefect", "work-pool", "create", "warehouse", "--type", "process"], env)
    run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], env)
    with client_for(api) as client:
        deployments = {name: client.read_deployment_by_name(f"build-warehouse/{name}") for name in ("adress", "ct1")}
    for deployment in deployments.values():  # one deployment per study project, each with its own data directory
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("0 6 * * *", "Europe/Paris")
        assert deployment.parameters["only_new"] is True and "study" not in deployment.parameters
        assert deployment.work_pool_name == "warehouse"
        assert deployment.concurrency_limit == 1 or deployment.global_concurrency_limit.limit == 1
    assert deployments["adress"].parameters["project"] == "."
    assert deployments["ct1"].parameters["project"] == "studies/ct1"
    assert deployments["ct1"].parameters["data_dir"] != deployments["adress"].parameters["data_dir"]
    deployment = deployments["adress"]

    start(server, [sys.executable, "-m", "prefect", "worker", "start", "--pool", "warehouse", "--type", "process"],
          "worker")
    data_dir = server["data_dir"]
    with client_for(api) as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"data_dir": str(data_dir), "export": str(demo_secrets["redcap_dir"])})
    done = wait_for_final_state(api, flow_run.id, RUN_SECONDS)
    assert done.state.is_completed(), f"{done.state}: {(server['home'] / 'worker.log').read_text()[-3000:]}"
    assert (data_dir / "warehouse.duckdb").is_file()
    artifacts = {a.key: a for a in artifacts_of(api, flow_run.id)}
    assert artifacts["warehouse-build-adress"].type == "markdown"
    assert "| result | published |" in artifacts["warehouse-build-adress"].data
    assert artifacts["warehouse-build-adress-findings"].type == "table"


def test_served_deployment_does_nothing_without_a_new_export(server, demo_secrets):
    """`warehouse serve` registers the cron deployment and runs what is triggered: an export already built (by the
    worker's run above, same data directory) is a no-op."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    from warehouse.publish import BuildPaths, read_records

    api, data_dir, export = server["api"], server["data_dir"], demo_secrets["redcap_dir"]
    if not any(r.status == "published" for r in read_records(BuildPaths(data_dir, True))):  # run alone
        from warehouse.build import BuildRequest, run_build

        run_build(BuildRequest(data_dir=data_dir, export=export))
    builds_before = len(read_records(BuildPaths(data_dir, True)))
    serve = start(server, [sys.executable, "-m", "warehouse.cli", "serve", "--data-dir", str(data_dir),
                           "--export", str(export), "--name", "served-test"], "serve")
    deadline = time.monotonic() + 60
    with client_for(api) as client:
        while True:
            try:
                deployment = client.read_deployment_by_name("build-warehouse/served-test")
                break
            except Exception:  # noqa: BLE001 - ObjectNotFound until serve has registered it
                if serve.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((server["home"] / "serve.log").read_text()[-3000:])
                time.sleep(0.5)
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("0 6 * * *", "Europe/Paris")
        assert deployment.parameters == {"data_dir": str(data_dir.resolve()), "export": str(export.resolve()),
                                         "only_new": True, "project": str(PROJECT)}
        flow_run = client.create_flow_run_from_deployment(deployment.id)
    done = wait_for_final_state(api, flow_run.id, RUN_SECONDS)
    assert done.state.is_completed(), (server["home"] / "serve.log").read_text()[-3000:]
    assert len(read_records(BuildPaths(data_dir, True))) == builds_before  # nothing was built
    artifacts = artifacts_of(api, flow_run.id)
    assert any("no new export" in (a.data or "") for a in artifacts)
    with client_for(api) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))
    assert any(r.id == flow_run.id for r in runs)


def test_served_deployment_of_a_project_is_named_after_its_study(server, shared_fixtures, tmp_path):
    """`warehouse serve --project DIR`: the deployment carries the project and its data directory (DIR/data) and is
    named after the study (no --name)."""
    from warehouse.project import init_project

    project = tmp_path / "ct1"
    init_project(shared_fixtures / "redcap" / "clinical-trial-1", project)
    serve = start(server, [sys.executable, "-m", "warehouse.cli", "serve", "--project", str(project)], "serve-ct1")
    deadline = time.monotonic() + 60
    with client_for(server["api"]) as client:
        while True:
            try:
                deployment = client.read_deployment_by_name("build-warehouse/redcapr-clinical-trial-1")
                break
            except Exception:  # noqa: BLE001 - ObjectNotFound until serve has registered it
                if serve.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((server["home"] / "serve-ct1.log").read_text()[-3000:])
                time.sleep(0.5)
    assert deployment.parameters == {"data_dir": str(project.resolve() / "data"), "only_new": True,
                                     "project": str(project.resolve())}
    stop(serve)
