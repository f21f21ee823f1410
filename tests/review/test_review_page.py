"""The review page in a real headless Chromium (tests/validate/cdp.py) against a real server on 127.0.0.1 and
the injected demo's blocked build: a finding accepted with a reason from the page is accepted for
`warehouse findings`; a form posted from another page is refused; a blinded review shows no arm; the page and the
command line deciding at once lose nothing.

With REVIEW_SCREENSHOTS=DIR the screenshots the test takes are also saved there (docs/img for docs/review.md)."""

from __future__ import annotations

import base64
import http.client
import os
import re
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from cdp import browser  # noqa: F401  (the module's headless Chromium fixture)
from review_helpers import fresh_copy
from typer.testing import CliRunner

from warehouse.cli import app
from warehouse.review.source import review_source
from warehouse.review.store import read_decisions
from warehouse.review.web import ReviewServer

pytestmark = pytest.mark.slow

RULE = "weight must be within the plausible range [30, 250] kg"
REASON = "weight confirmed by the site on the source document"


def navigate(browser, page, url: str) -> None:
    page.send("Page.navigate", {"url": url})
    assert browser.pump(browser.timeout, until="Page.loadEventFired", session_id=page.session_id), url
    page.settle(0.3)


def screenshot(page, tmp_path: Path, name: str) -> Path:
    data = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    path = tmp_path / name
    path.write_bytes(data)
    if os.environ.get("REVIEW_SCREENSHOTS"):
        (Path(os.environ["REVIEW_SCREENSHOTS"]) / name).write_bytes(data)
    return path


def test_accept_from_the_page_is_seen_by_the_command_line(injected_review, tmp_path, browser):  # noqa: F811
    from warehouse.study import load_study

    data = fresh_copy(injected_review, tmp_path / "data")
    (tmp_path / "blank.html").write_text("<!doctype html><title>blank</title>", encoding="utf-8")
    with ReviewServer(data, by="dm-carol") as server:
        page = browser.open(tmp_path / "blank.html", width=1400, height=900)
        navigate(browser, page, server.url + "?" + urllib.parse.urlencode({"severity": "error", "rule": RULE}))
        ids = page.evaluate("[...document.querySelectorAll('#findings tbody tr')].map(r => r.dataset.id)")
        expected = review_source(data).findings.filter((pl.col("rule") == RULE) & (pl.col("severity") == "error"))
        assert sorted(ids) == sorted(expected["finding_id"].to_list())
        fid = sorted(ids)[0]
        page.evaluate(f"document.querySelector('input[name=finding_id][value=\"{fid}\"]').click()")
        page.evaluate("document.getElementById('action').value = 'accept'")
        page.evaluate(f"document.getElementById('text').value = {REASON!r}")
        screenshot(page, tmp_path, "review-page.png")
        page.evaluate("document.getElementById('submit').click()")
        assert browser.pump(browser.timeout, until="Page.loadEventFired", session_id=page.session_id)
        page.settle(0.3)
        # back on the filtered list: the row now reads accepted, the counts moved by one
        assert page.evaluate(f"document.querySelector('tr[data-id=\"{fid}\"] td.st-accepted').textContent") == "accepted"
        assert page.evaluate("document.getElementById('count-error-accepted').textContent") == "1"
        screenshot(page, tmp_path, "review-accepted.png")
        assert page.errors == []
        # the command line sees it, with who and why
        out = CliRunner().invoke(app, ["findings", "list", "--status", "accepted", "--data-dir", str(data)])
        assert out.exit_code == 0
        rows = [line.split("\t") for line in out.output.splitlines() if line.startswith(fid)]
        assert len(rows) == 1 and rows[0][1] == "accepted" and rows[0][-1] == "dm-carol"
        history = CliRunner().invoke(app, ["findings", "history", fid, "--data-dir", str(data)])
        assert f"accept  by dm-carol: {REASON}" in history.output
        # the finding's page shows its history
        navigate(browser, page, server.url + f"finding/{fid}")
        assert page.evaluate("document.getElementById('status').textContent") == "accepted"
        assert REASON in page.evaluate("document.getElementById('history').innerText")
        screenshot(page, tmp_path, "review-finding.png")
        # blinding: the blinded review names no arm anywhere
        navigate(browser, page, server.url)
        text = page.evaluate("document.documentElement.outerHTML")
        arms = load_study().arms
        assert arms and not [a for a in list(arms.values()) if a in text]
        # every request the page made went to this server
        assert all(u.startswith(server.url) or u.startswith("file:") for u in page.requests)


def test_a_form_from_another_page_is_refused(injected_review, tmp_path, browser):  # noqa: F811
    """Even knowing the token, a page from elsewhere (here a local file: Origin null) cannot decide."""
    data = fresh_copy(injected_review, tmp_path / "data")
    with ReviewServer(data) as server:
        html = urllib.request.urlopen(server.url).read().decode()
        token = re.search(r'name="token" value="([^"]+)"', html).group(1)
        fid = re.search(r'data-id="([0-9a-f]+)"', html).group(1)
        attack = tmp_path / "attack.html"
        attack.write_text(f"<!doctype html><form method=post action='{server.url}decide'>"
                          f"<input name=token value='{token}'><input name=finding_id value='{fid}'>"
                          "<input name=action value=accept><input name=text value=pwned></form>"
                          "<script>document.forms[0].submit()</script>", encoding="utf-8")
        page = browser.open(attack)
        browser.pump(3.0, until="Page.loadEventFired", session_id=page.session_id)
        page.settle(0.5)
        assert "refused: a form from another site (Origin)" in (page.evaluate("document.body.innerText") or "")
        # a wrong Host (DNS rebinding) and a missing token are refused too
        for headers, body in (({"Host": "evil.example"}, {"token": token}), ({}, {"token": "guess"})):
            con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            form = urllib.parse.urlencode({**body, "finding_id": fid, "action": "accept", "text": "x"})
            con.request("POST", "/decide", body=form, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                               **headers})
            assert con.getresponse().status == 403
            con.close()
    assert read_decisions(data).height == 0


def post(port: int, token: str, fid: str, text: str) -> int:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    form = urllib.parse.urlencode({"token": token, "finding_id": fid, "action": "query", "text": text,
                                   "by": "page", "return_to": "/"})
    con.request("POST", "/decide", body=form, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                       "Origin": f"http://127.0.0.1:{port}"})
    status = con.getresponse().status
    con.close()
    return status


def test_the_page_and_the_command_line_deciding_at_once_lose_nothing(injected_review, tmp_path):
    """4 threads post 10 queries each to the page while 2 processes run `warehouse findings query` twice on 5
    findings each: 60 decisions, on exactly the findings sent, ids unique."""
    data = fresh_copy(injected_review, tmp_path / "data")
    ids = review_source(data).findings.filter(pl.col("severity") == "error")["finding_id"].to_list()[:60]
    web_ids, cli_ids = [ids[i * 10:(i + 1) * 10] for i in range(4)], [ids[40 + i * 5:45 + i * 5] for i in range(4)]
    statuses: list[int] = []
    with ReviewServer(data) as server:
        html = urllib.request.urlopen(server.url + "?severity=warning").read().decode()
        token = re.search(r'name="token" value="([^"]+)"', html).group(1)
        threads = [threading.Thread(target=lambda chunk=chunk: statuses.extend(
            post(server.port, token, fid, "from the page") for fid in chunk)) for chunk in web_ids]
        env = {**os.environ, "WAREHOUSE_DATA_DIR": str(data)}
        procs = [subprocess.Popen([sys.executable, "-c", "import sys; from warehouse.cli import main; "
                                   "sys.argv = ['warehouse', 'findings', 'query', *sys.argv[1:], '--text', 'from the "
                                   "CLI', '--by', 'cli']; main()", *chunk], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for chunk in cli_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    assert statuses == [303] * 40
    stored = read_decisions(data)
    assert stored.height == 60 and stored["decision_id"].n_unique() == 60 and stored["query_id"].n_unique() == 60
    assert sorted(stored["finding_id"].to_list()) == sorted(ids)
    assert stored.filter(pl.col("decided_by") == "cli").height == 20


def test_query_all_a_filter_shows_then_send_each_site_its_sheet(injected_review, tmp_path):
    """Query every error of one rule with one form (all the filter shows); the sheets of the sites hold exactly
    their queried findings, a query id per row (the demo's 4 implausible weights: one at site_02, two at
    site_04, one at site_05)."""
    import csv
    import io
    import zipfile

    data = fresh_copy(injected_review, tmp_path / "data")
    with ReviewServer(data, by="dm-erin") as server:
        html = urllib.request.urlopen(server.url).read().decode()
        token = re.search(r'name="token" value="([^"]+)"', html).group(1)
        con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        form = urllib.parse.urlencode({"token": token, "all_shown": "1", "severity": "error", "rule": RULE,
                                       "action": "query", "text": "weight above 250 kg: please check",
                                       "return_to": "/"})
        con.request("POST", "/decide", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert con.getresponse().status == 303
        con.close()
        stored = read_decisions(data)
        assert stored.height == 4 and set(stored["decided_by"].to_list()) == {"dm-erin"}
        html = urllib.request.urlopen(server.url).read().decode()
        assert re.findall(r'href="/sheets/([^"]+)\.csv"', html) == ["site_02", "site_04", "site_05"]
        sheet = urllib.request.urlopen(server.url + "sheets/site_04.csv").read().decode()
        rows = list(csv.DictReader(io.StringIO(sheet)))
        assert [(r["subject"], r["field"], r["value"]) for r in rows] == [("04-002", "weight", "1269.3"),
                                                                         ("04-005", "weight", "758.4")]
        by_finding = dict(zip(stored["finding_id"].to_list(), stored["query_id"].to_list()))
        assert [r["query id"] for r in rows] == [by_finding[r["finding id"]] for r in rows]
        assert all(r["query"] == "weight above 250 kg: please check" for r in rows)
        xlsx = urllib.request.urlopen(server.url + "sheets/site_04.xlsx").read()
        with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
            strings = z.read("xl/sharedStrings.xml").decode()
        assert all(r["query id"] in strings and r["finding id"] in strings for r in rows)
        try:
            urllib.request.urlopen(server.url + "sheets/site_01.csv")
            pytest.fail("site_01 has no query: no sheet")
        except urllib.error.HTTPError as err:
            assert err.code == 404


def test_warehouse_review_serves_the_page_on_127_0_0_1(injected_review, tmp_path):
    """The command as a person runs it: `warehouse review --port 0` says where the page is, serves it there, and
    stops on SIGTERM."""
    import signal

    data = fresh_copy(injected_review, tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-m", "warehouse.cli", "review", "--port", "0", "--by", "dm-frank",
                             "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.match(r"Review page: (http://127\.0\.0\.1:\d+/) \(127\.0\.0\.1 only; Ctrl-C stops it\)", line)
        assert url, line + proc.stderr.read() if proc.poll() is not None else line
        html = urllib.request.urlopen(url.group(1)).read().decode()
        assert "Review of findings" in html and 'id="person">dm-frank<' in html
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
