"""`warehouse server start|stop|status`: Prefect's own server kept up on 127.0.0.1; later commands use it without
PREFECT_API_URL, and the runs they make are in its API (what the Prefect UI shows)."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from ops_support import cli, free_port

pytestmark = pytest.mark.slow


def test_a_local_server_serves_later_builds_until_it_is_stopped(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    port = free_port()
    try:
        started = cli("server", "start", "--port", str(port), env=env, timeout=300)
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{port}/api"
        assert url in started.stdout
        state = json.loads((tmp_path / "prefect-home" / "warehouse-server.json").read_text(encoding="utf-8"))
        assert state["url"] == url

        status = cli("server", "status", env=env)
        assert status.returncode == 0 and "running" in status.stdout and "answers" in status.stdout

        build = cli("build", "--data-dir", str(tmp_path / "data"), env=env, timeout=600)
        assert build.returncode == 0, build.stderr[-2000:]
        assert "temporary Prefect server" not in build.stderr  # it used the running server
        request = urllib.request.Request(f"{url}/flow_runs/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            runs = json.loads(response.read())
        assert [r["state_type"] for r in runs if r["name"]] and any(r["state_type"] == "COMPLETED" for r in runs)
    finally:
        stopped = cli("server", "stop", env=env, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    after = cli("server", "status", env=env)
    assert "no local Prefect server running" in after.stdout
    assert not (tmp_path / "prefect-home" / "warehouse-server.json").exists()


def test_a_temporary_server_leaves_a_prefect_home_a_local_server_completes(tmp_path):
    """The temporary server starts without registering Prefect's block types (warehouse.cli.TEMPORARY_SERVER_SETTINGS):
    the run is in its database all the same, and a server started later on the same Prefect home registers them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    build = cli("build", "--data-dir", str(tmp_path / "data"), env=env, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "temporary Prefect server" in build.stderr
    assert not (tmp_path / "prefect-home" / "memo_store.toml").exists()  # nothing says the block types are there
    port = free_port()
    try:
        assert cli("server", "start", "--port", str(port), env=env, timeout=300).returncode == 0
        url = f"http://127.0.0.1:{port}/api"

        def post(path: str) -> list:
            request = urllib.request.Request(f"{url}/{path}", data=b"{}", method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        assert [r["state_type"] for r in post("flow_runs/filter")] == ["COMPLETED"]
        assert len(post("block_types/filter")) > 10
    finally:
        cli("server", "stop", env=env, timeout=60)
