"""A small Chrome DevTools Protocol client for the report-page tests: a real headless Chromium, every network
request the page makes and every console error recorded.

    with HeadlessChromium() as browser:
        page = browser.open(path)             # navigates, waits for the load event
        page.evaluate("document.title")       # Runtime.evaluate, by value
        page.requests, page.errors            # URLs requested; console errors and exceptions
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The browser binary: $CHROMIUM, else the first of CHROMIUM_NAMES on PATH, else /usr/bin/chromium."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


class CDPError(RuntimeError):
    pass


class Page:
    def __init__(self, browser: HeadlessChromium, session_id: str):
        self.browser, self.session_id = browser, session_id
        self.requests: list[str] = []
        self.errors: list[str] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 20.0) -> dict:
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def on_event(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params") or {}
        if method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails") or {}
            self.errors.append("exception: " + str((d.get("exception") or {}).get("description") or d.get("text")))
        elif method == "Log.entryAdded" and (p.get("entry") or {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log: {e.get('text')} {e.get('url') or ''}".strip())

    def evaluate(self, expression: str):
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if out.get("exceptionDetails"):
            raise CDPError(f"{expression!r} raised: {out['exceptionDetails']}")
        return (out.get("result") or {}).get("value")

    def settle(self, seconds: float = 0.3) -> None:
        """Read events for a while (late requests, errors)."""
        self.browser.pump(seconds)


class HeadlessChromium:
    def __init__(self, binary: str | None = None, timeout: float = 30.0):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise FileNotFoundError("no chromium binary")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self._id = 0
        self.pages: dict[str, Page] = {}

    def __enter__(self) -> HeadlessChromium:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        args = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                "--mute-audio", "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise CDPError("chromium did not write DevToolsActivePort")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=self.timeout)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            if self.proc is not None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)

    # protocol
    def _dispatch(self, msg: dict) -> None:
        page = self.pages.get(msg.get("sessionId", ""))
        if page is not None and "method" in msg:
            page.on_event(msg)

    def send(self, method: str, params: dict | None = None, session_id: str | None = None, timeout: float = 20.0) -> dict:
        self._id += 1
        mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no answer to {method}")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == mid:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result") or {}
            self._dispatch(reply)

    def pump(self, seconds: float, until: str | None = None, session_id: str | None = None) -> bool:
        """Dispatch events for ``seconds``, or until the event ``until`` (of ``session_id``) arrives."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                msg = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                return False
            self._dispatch(msg)
            if until and msg.get("method") == until and (session_id is None or msg.get("sessionId") == session_id):
                return True

    def open(self, path: Path, width: int | None = None, height: int = 900) -> Page:
        """A new tab with every domain we record enabled before navigating (and a `width` x `height` px viewport
        when `width` is given), then the page loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.pages[session] = page
        for domain in ("Network", "Runtime", "Log", "Page"):
            page.send(f"{domain}.enable")
        if width is not None:
            page.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        page.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        if not self.pump(self.timeout, until="Page.loadEventFired", session_id=session):
            raise CDPError(f"{path}: no load event")
        page.settle(0.3)
        return page


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (`from cdp import browser` makes the fixture available there)."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary (CI installs it: apt-get install chromium chromium-driver); set $CHROMIUM")
    with HeadlessChromium(binary) as b:
        yield b
