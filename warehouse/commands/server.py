"""`warehouse server start|stop|status`: a local Prefect server that stays up, for people who build often.

Without a server every `warehouse build` starts a temporary one (12-25 s idle, 35 s and more on a busy machine) and
its runs vanish with it. `warehouse server start` runs Prefect's own server (`prefect server start`) in the
background on 127.0.0.1 and records its URL in the Prefect home (`$PREFECT_HOME/warehouse-server.json`); every
later `warehouse` command uses it when `PREFECT_API_URL` is not set in the environment (an explicit setting wins),
so builds skip the start-up and the Prefect UI shows every run. `prefect.yaml` deployments work against it too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

EXIT_BAD_INPUT = 2
EXIT_FAILED = 3
STATE_NAME = "warehouse-server.json"
START_TIMEOUT_SECONDS = 180  # a loaded 2-core machine took 37 s and more


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def state_file() -> Path:
    return prefect_home() / STATE_NAME


def read_state() -> dict | None:
    """The recorded local server, if its process is still alive."""
    from warehouse.publish import pid_alive

    try:
        state = json.loads(state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state.get("pid"), int) and pid_alive(state["pid"]) else None


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status == 200
    except OSError:
        return False


def use_local_server() -> str | None:
    """Point this process at the recorded local server (PREFECT_API_URL), unless the environment already names a
    server. Cheap: a file read and a signal 0, no network; called before Prefect is imported."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    state = read_state()
    if state is None:
        return None
    os.environ["PREFECT_API_URL"] = state["url"]
    return state["url"]


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def start(port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (another free one if taken).")] = 4200) -> None:
    """Start Prefect's server in the background on 127.0.0.1 and record its URL for later commands."""
    running = read_state()
    if running is not None and healthy(running["url"]):
        typer.echo(f"already running: {running['url']} (pid {running['pid']})")
        return
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    url = f"http://127.0.0.1:{port}/api"
    log = home / "warehouse-server.log"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            fail(f"the Prefect server did not come up (exit {process.poll()}); its log: {log}", EXIT_FAILED)
        time.sleep(0.5)
    state_file().write_text(json.dumps({"url": url, "pid": process.pid, "log": str(log),
                                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}), encoding="utf-8")
    typer.echo(f"Prefect server running: {url} (pid {process.pid}); UI at {url[:-4]}")
    typer.echo("Later `warehouse` commands use it while PREFECT_API_URL is not set; `warehouse server stop` ends it.")


def stop() -> None:
    """Stop the local server started by `warehouse server start`."""
    state = read_state()
    state_file().unlink(missing_ok=True)
    if state is None:
        typer.echo("no local Prefect server running")
        return
    try:
        os.killpg(state["pid"], signal.SIGTERM)  # the server and the workers it started (its own session)
    except ProcessLookupError:
        pass
    from warehouse.publish import pid_alive

    deadline = time.monotonic() + 20
    while pid_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(state["pid"]):
        os.killpg(state["pid"], signal.SIGKILL)
    typer.echo(f"stopped the Prefect server at {state['url']} (pid {state['pid']})")


def status() -> None:
    """Say whether the local server runs, where, and whether it answers."""
    state = read_state()
    if state is None:
        typer.echo("no local Prefect server running (builds start a temporary one; `warehouse server start`)")
        return
    answer = "answers" if healthy(state["url"]) else "does NOT answer"
    typer.echo(f"running: {state['url']} (pid {state['pid']}, since {state.get('started', '?')}); {answer}; "
               f"log {state.get('log')}")
    if os.environ.get("PREFECT_API_URL") not in (None, "", state["url"]):
        typer.echo(f"note: PREFECT_API_URL={os.environ['PREFECT_API_URL']} is set, so commands use that server")


def register(app: typer.Typer) -> None:
    server = typer.Typer(help="A local Prefect server that stays up (start, stop, status).", no_args_is_help=True)
    server.command("start")(start)
    server.command("stop")(stop)
    server.command("status")(status)
    app.add_typer(server, name="server")
