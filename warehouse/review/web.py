"""`warehouse review`: the review on a local page, for data managers who do not live in a terminal.

FastAPI served by uvicorn on 127.0.0.1 only (the page is for the person at this machine). It reads what
`warehouse findings` reads (review.source) and records through the same function (review.actions.decide), so the
page, the command line and a build can work at once.

Any web page open in the same browser can send a form to 127.0.0.1, so every POST must carry the token this
server drew at start (in the page's forms, never in a cookie), must come with a Host of this server (DNS
rebinding) and, when the browser says where it comes from (Origin, else Referer), from this server. The pages set
a Content-Security-Policy (no script, forms only to this server) and refuse framing. A blinded review reads the
blinded builds, which hold no arm.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from warehouse.review.source import FILTERS, ReviewError, filter_findings, history, review_source
from warehouse.review.status import STATUSES, review_counts
from warehouse.review.store import ACTIONS

ROWS_SHOWN = 1000
PAGE_COLUMNS = ["review_status", "severity", "stage", "site_id", "subject_id", "event", "repeat_instance", "form",
                "field", "value", "rule", "query_id", "accepted_by", "accepted_reason"]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _filters_of(params) -> dict[str, str]:
    return {k: params.get(k) or "" for k in FILTERS}


def _choices(findings: pl.DataFrame) -> dict[str, list[str]]:
    def values(c: str) -> list[str]:
        return sorted({str(v) for v in findings.get_column(c).to_list() if v}) if findings.height else []

    return {"site_id": values("site_id"), "form": values("form"), "severity": ["error", "warning"],
            "review_status": list(STATUSES)}


@dataclass(frozen=True)
class ReviewContext:
    """What every route of one server needs: whose decisions, which builds, the acting person, the token."""

    data_dir: Path
    blinded: bool
    by: str | None
    token: str


def _problem(message: str, status: int = 400) -> HTMLResponse:
    """A refused request as a page: the one-line reason, nothing recorded."""
    from warehouse.templates import render

    return HTMLResponse(render("review_error.html.j2", message=message), status_code=status)


def make_app(data_dir: Path, *, blinded: bool = True, by: str | None = None, port: int, token: str | None = None):
    """The review application for ``data_dir``, answering only as 127.0.0.1:``port`` / localhost:``port``."""
    ctx = ReviewContext(Path(data_dir), blinded, by, token or secrets.token_urlsafe(32))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = ctx.token
    _add_guard(app, port)
    _add_pages(app, ctx)
    _add_decide(app, ctx)
    _add_sheets(app, ctx)
    return app


def _add_guard(app: FastAPI, port: int) -> None:
    """Refuse any request not addressed to this server (Host) and any POST from another origin; set the pages'
    security headers."""
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    origins = {f"http://{h}" for h in hosts}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.headers.get("host") not in hosts:
            return PlainTextResponse("refused: this server answers only as 127.0.0.1 (Host header)", 403)
        if request.method not in ("GET", "HEAD"):
            source = request.headers.get("origin") or request.headers.get("referer")
            if source is not None and f"{urlsplit(source).scheme}://{urlsplit(source).netloc}" not in origins:
                return PlainTextResponse("refused: a form from another site (Origin)", 403)
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers[key] = value
        return response


def _add_pages(app: FastAPI, ctx: ReviewContext) -> None:
    """GET /: the findings, filtered; GET /finding/ID: one finding and its history."""
    from warehouse.review.actions import person
    from warehouse.review.sheets import query_sites
    from warehouse.templates import render

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        try:
            source = review_source(ctx.data_dir, ctx.blinded)
            wanted = _filters_of(request.query_params)
            rows = filter_findings(source.findings, **wanted)
        except ReviewError as err:
            return _problem(str(err))
        if rows.height:
            rows = rows.with_columns(_o=pl.col("severity").replace_strict({"error": 0, "warning": 1}, default=2)).sort(
                ["_o", "site_id", "subject_id", "form", "event", "field"], nulls_last=True)
        return HTMLResponse(render(
            "review.html.j2", source=source, blinded=ctx.blinded, counts=review_counts(source.findings),
            filters=wanted, choices=_choices(source.findings), columns=PAGE_COLUMNS, total=rows.height,
            rows=rows.head(ROWS_SHOWN).to_dicts() if rows.height else [], shown=min(rows.height, ROWS_SHOWN),
            sites=query_sites(source), token=ctx.token, actions=ACTIONS, person=person(ctx.by),
            return_to="/?" + urlencode({k: v for k, v in wanted.items() if v})))

    @app.get("/finding/{finding_id}", response_class=HTMLResponse)
    def finding(finding_id: str) -> HTMLResponse:
        try:
            source = review_source(ctx.data_dir, ctx.blinded)
            row, decisions = history(source, finding_id)
        except ReviewError as err:
            return _problem(str(err), 404)
        return HTMLResponse(render(
            "review_finding.html.j2", source=source, finding=row, columns=PAGE_COLUMNS,
            decisions=decisions.to_dicts(), token=ctx.token, actions=ACTIONS, person=person(ctx.by),
            return_to=f"/finding/{finding_id}"))

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # no icon: a browser's request for one is not an error


def _add_decide(app: FastAPI, ctx: ReviewContext) -> None:
    """POST /decide: a decision on the ticked findings (or all the filter shows), with the server's token."""
    from warehouse.review.actions import decide

    @app.post("/decide")
    async def decide_endpoint(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        one = {k: (v[0] if v else "") for k, v in form.items()}
        if not secrets.compare_digest(one.get("token", ""), ctx.token):
            return _problem("refused: the form's token is not this server's (reload the page)", 403)
        ids = form.get("finding_id", [])
        if one.get("all_shown") == "1":  # every finding the filter shows, as the server sees them now
            try:
                source = await run_in_threadpool(review_source, ctx.data_dir, ctx.blinded)
                shown = filter_findings(source.findings, **_filters_of(one))
            except ReviewError as err:
                return _problem(str(err))
            ids = shown.get_column("finding_id").to_list() if shown.height else []
        try:
            await run_in_threadpool(decide, ctx.data_dir, one.get("action", ""), ids, one.get("text"),
                                    one.get("by") or ctx.by, ctx.blinded)
        except ReviewError as err:
            return _problem(str(err))
        back = one.get("return_to", "/")
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/", 303)


def _add_sheets(app: FastAPI, ctx: ReviewContext) -> None:
    """GET /sheets/SITE.csv|xlsx: a site's query sheet, to send."""
    from warehouse.review.sheets import query_sheet, query_sites, sheet_csv, sheet_xlsx

    @app.get("/sheets/{name}")
    def sheet(name: str) -> Response:
        site, _, ext = name.rpartition(".")
        if ext not in ("csv", "xlsx") or not site:
            return _problem(f"no such sheet {name}: <site>.csv or <site>.xlsx", 404)
        try:
            source = review_source(ctx.data_dir, ctx.blinded)
        except ReviewError as err:
            return _problem(str(err))
        if site not in query_sites(source):
            return _problem(f"no queried finding at site {site}", 404)
        frame = query_sheet(source, site)
        body, kind = ((sheet_csv(frame), "text/csv; charset=utf-8") if ext == "csv" else
                      (sheet_xlsx(frame, site, source.build_id),
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        return Response(body, media_type=kind,
                        headers={"Content-Disposition": f'attachment; filename="queries-{site}.{ext}"'})


class ReviewServer:
    """The review page served by uvicorn from a thread (tests) or in the foreground (`warehouse review`), on a
    socket bound to 127.0.0.1 first, so port 0 (any free one) gives the real port to the Host check."""

    def __init__(self, data_dir: Path, port: int = 0, by: str | None = None, blinded: bool = True) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError as err:
            self.sock.close()
            raise ReviewError(f"cannot listen on 127.0.0.1:{port}: {err.strerror}") from None
        self.sock.listen(128)  # connections wait in the backlog until uvicorn accepts: the URL works once said
        self.port = self.sock.getsockname()[1]
        self.app = make_app(Path(data_dir), blinded=blinded, by=by, port=self.port)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> "ReviewServer":
        import time

        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> "ReviewServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(data_dir: Path, port: int = 8765, by: str | None = None, blinded: bool = True, open_browser: bool = False,
          say: Callable[[str], None] = print) -> None:
    """Serve the page until interrupted (Ctrl-C)."""
    review_source(data_dir, blinded)  # no build to review: one clear line before anything listens
    server = ReviewServer(data_dir, port, by, blinded)
    say(f"Review page: {server.url} (127.0.0.1 only; Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.run()
