"""Great Expectations' two jobs in a build, done in a process of their own: checking the suites (GX's classes
judge type names and kwargs) and rendering Data Docs (GX's static site).

Why a process: GX's import is ~3-5 s of pure Python (scipy.stats, sqlalchemy, hundreds of pydantic models) and a
render ~1-1.5 s more. In the build's process they hold the interpreter lock that the build needs between its DuckDB
and Polars calls, so everything beside them ran at half speed (bench/profile_build.py). Here they run on the second
core: the build starts this worker as soon as a build is due (``gx_process.start_worker``), the worker imports GX
at once, then answers requests in order until its input closes.

This file runs as a script (``python gx_worker.py``): it imports nothing of the warehouse package (whose import
would cost Polars and DuckDB for nothing). The build's process imports the same functions for its fallbacks.

Protocol, both ways: messages of an 8-byte big-endian length and that many bytes of UTF-8 JSON.
- ``{"op": "check", "suites": [suite dict, ...]}`` -> ``{"errors": [null | "reason", ...]}``
- ``{"op": "render", "out_dir": ..., "run_name": ..., "suites": [...], "runs": [[name, suite result dict], ...]}``
  -> ``{"index": path | null, "skipped": [...]}``
- any failure -> ``{"error": "Type: message"}`` (one line), and the worker goes on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

HEADER = struct.Struct(">Q")


# GX imports these at its own import for expectations no build of ours runs (KL divergence, KS tests) and their
# charts: loaded on first use instead, ~1.1-1.4 s of the worker's ~3.7 s import (python -X importtime)
DEFERRED_IMPORTS = ("scipy.stats", "altair")


def defer_imports(names: tuple[str, ...] = DEFERRED_IMPORTS) -> None:
    """Make each module load on first attribute access (importlib.util.LazyLoader), in this process only: GX works
    as before, a module it does use is loaded the moment it is used."""
    import importlib.util

    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or spec.loader is None:
            continue
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def import_gx():
    """GX, imported once, with its analytics, progress bars and chatty logging off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def suite_to_gx(suite: dict[str, Any]):
    """A suite dict whose expectations carry GX's severity (``expectations.Suite.to_json_dict``) ->
    gx.ExpectationSuite; GX's classes raise on an unknown type or a bad kwarg."""
    gx = import_gx()
    return gx.ExpectationSuite(**{k: v for k, v in suite.items() if k in ("name", "expectations", "meta", "notes",
                                                                          "id")})


def check_suites(suites: list[dict[str, Any]]) -> list[str | None]:
    """Per suite, None when GX takes it, else GX's reason (one line, naming the expectation)."""
    import_gx()  # outside the per-suite reasons: GX missing is the worker's failure (the build falls back), not a suite's
    errors: list[str | None] = []
    for suite in suites:
        try:
            taken = suite_to_gx(suite)
        except Exception as e:  # noqa: BLE001 - every reason goes back to the build, which names the file
            errors.append(" ".join(f"{type(e).__name__}: {e}".split())[:2000])
            continue
        # GX logs an expectation type it does not know and leaves it out of the suite: a refusal here
        known = {e.expectation_type for e in taken.expectations}
        dropped = sorted({e.get("type") for e in suite.get("expectations") or []} - known)
        errors.append(f"expectation type(s) {', '.join(map(str, dropped))} not known to Great Expectations"
                      if dropped else None)
    return errors


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def suite_result_to_gx(d: dict[str, Any]):
    """A suite result dict (``expectations.SuiteResult.to_json_dict``) -> GX's ExpectationSuiteValidationResult."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    results = [ExpectationValidationResult(
        success=r["success"], result=r.get("result") or {}, meta=r.get("meta") or {},
        exception_info=r.get("exception_info"),
        expectation_config=_configuration(ExpectationConfiguration, r["expectation_config"]))
        for r in d["results"]]
    return ExpectationSuiteValidationResult(success=d["success"], results=results, suite_name=d["suite_name"],
                                            statistics=d.get("statistics"), meta=d.get("meta"))


def _configuration(cls, d: dict[str, Any] | None):
    """GX's configuration as its Expectation class normalises it (kwargs typed by its model: a bound of 18 reads
    18.0), as a run by GX itself holds it; the raw one when GX's class refuses it."""
    if not d:
        return None
    config = cls(**d)
    try:
        return config.to_domain_obj().configuration
    except Exception:  # noqa: BLE001 - shown as written
        return config


def render_site(out_dir: str, run_name: str, suites: list[dict[str, Any]],
                runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The site rendered into ``out_dir`` (absolute); {"index": its index page or None, "skipped": the suites GX
    would not take}."""
    gx = import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    ctx.add_data_docs_site("build", {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    # the suites, so the site has a page per suite a data manager can read
    seen, skipped = set(), []
    for d in suites:
        if d["name"] in seen:
            continue
        seen.add(d["name"])
        try:
            ctx.suites.add(suite_to_gx(d))
        except Exception as e:  # noqa: BLE001 - a suite page is a nicety, the results are what count
            skipped.append(f"{d['name']} ({e})")
    run_id = RunIdentifier(run_name=run_name)
    for name, result in runs:
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=_safe(name)),
            run_id=run_id,
            batch_identifier=_safe(name.rsplit(".", 1)[-1]),
        )
        ctx.validation_results_store.set(key, suite_result_to_gx(result))
    ctx.build_data_docs(site_names=["build"])
    index = folder / "index.html"
    return {"index": str(index) if index.exists() else None, "skipped": skipped}


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        if request.get("op") == "check":
            return {"errors": check_suites(request["suites"])}
        if request.get("op") == "render":
            return render_site(request["out_dir"], request["run_name"], request["suites"], request["runs"])
        return {"error": f"unknown request {request.get('op')!r}"}
    except BaseException as e:  # noqa: BLE001 - one line back to the build, which falls back
        return {"error": f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__}


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    return json.loads(body) if len(body) == size else None


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message, default=str).encode("utf-8")
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def serve() -> None:
    """Import GX at once, then answer requests on stdin until it closes."""
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")  # the answers' own descriptor; fd 1 itself goes to stderr, so that nothing
    os.dup2(2, 1)  # GX, a C extension or a child writes to standard output can get into the answers
    sys.stdout = sys.stderr
    try:
        defer_imports()
        import_gx()
    except BaseException:  # noqa: BLE001 - each request then says why
        pass
    while (request := read_message(stdin)) is not None:
        write_message(stdout, answer(request))
    os._exit(0)  # input closed: nothing left to do, and an interpreter's teardown with GX loaded takes ~1 s


if __name__ == "__main__":
    serve()
