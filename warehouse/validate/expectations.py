"""Suites and results as plain data, in the shapes of Great Expectations 1.x, so that a build runs without GX.

The build compiles every suite to SQL (``pushdown_sql.py``) and makes findings from counts: it reads a suite's
name, meta and expectations (type, kwargs, meta, severity) and writes results (success, result dict, exception
info). Great Expectations' own classes for these cost its import, ~3-5 s of pure Python that holds the
interpreter lock the build needs between its DuckDB and Polars calls (bench/profile_build.py). So the build keeps
them as these small classes, with the attribute names and JSON of GX's (``ExpectationSuite``,
``ExpectationConfiguration``, ``ExpectationValidationResult``, ``ExpectationSuiteValidationResult``), and GX does
its two jobs in another process (``gx_worker.py``): it checks the suite files (type names, kwargs) and renders
Data Docs. GX on pandas (``core.PolarsEngine``, the reference engine, and any expectation type not compiled to
SQL) still imports GX where it runs; its results are turned into these.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from dataclasses import dataclass, field
from typing import Any


def gx_severity(severity: str) -> str:
    """GX's FailureSeverity value for our severity: an error is ``critical``."""
    return "critical" if severity == "error" else "warning"


@dataclass
class Expectation:
    """One expectation of a suite: GX's ExpectationConfiguration and its Expectation in one (``configuration`` is
    the object itself), ``severity`` as GX writes it (critical | warning)."""

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    severity: str = "critical"

    @property
    def configuration(self) -> Expectation:
        return self

    @property
    def expectation_type(self) -> str:
        return self.type

    def to_json_dict(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": copy.deepcopy(self.kwargs), "meta": copy.deepcopy(self.meta),
                "severity": self.severity}


@dataclass
class Suite:
    """An expectation suite: ``meta`` as the file gives it (``table``, ``keys``, ``parameters`` ...)."""

    name: str
    expectations: list[Expectation]
    meta: dict[str, Any] = field(default_factory=dict)
    notes: Any = None

    def to_json_dict(self) -> dict[str, Any]:
        """The suite as GX 1.x writes it (GX adds its version to the meta)."""
        meta = {**copy.deepcopy(self.meta), "great_expectations_version": gx_version()}
        return {"name": self.name, "expectations": [e.to_json_dict() for e in self.expectations], "meta": meta,
                "notes": self.notes}


def suite_from_dict(suite: dict[str, Any]) -> Suite:
    """A suite dict (a file's JSON, or one generated from metadata) -> Suite; each expectation's GX severity follows
    its ``meta.severity`` (error -> critical). Type names and kwargs are GX's to judge: ``gx_worker.check_suites``."""
    from warehouse.validate.suites import severity_of

    if not isinstance(suite.get("name"), str):
        raise ValueError(f"a suite needs a name, not {suite.get('name')!r}")
    expectations = []
    for e in suite.get("expectations") or []:
        if not isinstance(e, dict) or not isinstance(e.get("type"), str):
            raise ValueError(f"suite {suite['name']}: an expectation without a type: {e!r}")
        meta = copy.deepcopy(e.get("meta") or {})
        expectations.append(Expectation(type=e["type"], kwargs=copy.deepcopy(e.get("kwargs") or {}), meta=meta,
                                        severity=gx_severity(severity_of(meta, e.get("severity")))))
    meta = {k: v for k, v in copy.deepcopy(suite.get("meta") or {}).items() if k != "great_expectations_version"}
    return Suite(name=suite["name"], expectations=expectations, meta=meta, notes=suite.get("notes"))


@dataclass
class Result:
    """One expectation's outcome on one table (GX's ExpectationValidationResult)."""

    success: bool | None
    expectation_config: Expectation | None
    result: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    exception_info: dict[str, Any] | None = field(default_factory=lambda: {
        "raised_exception": False, "exception_traceback": None, "exception_message": None})

    def to_json_dict(self) -> dict[str, Any]:
        cfg = self.expectation_config
        return {"success": self.success, "expectation_config": cfg.to_json_dict() if cfg is not None else None,
                "result": self.result, "meta": self.meta, "exception_info": self.exception_info}


@dataclass
class SuiteResult:
    """A suite's results on one table (GX's ExpectationSuiteValidationResult): what Data Docs render."""

    success: bool
    results: list[Result]
    suite_name: str
    statistics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {"success": self.success, "results": [r.to_json_dict() for r in self.results],
                "suite_name": self.suite_name, "statistics": self.statistics, "meta": self.meta}


def result_from_gx(r) -> Result:
    """A GX ExpectationValidationResult (from GX on pandas) as a Result."""
    cfg = r.expectation_config
    return Result(success=r.success, expectation_config=suite_expectation(cfg.to_json_dict()) if cfg else None,
                  result=dict(r.result or {}), meta=dict(r.meta or {}), exception_info=r.exception_info)


def suite_expectation(d: dict[str, Any]) -> Expectation:
    severity = d.get("severity")
    return Expectation(type=d["type"], kwargs=d.get("kwargs") or {}, meta=d.get("meta") or {},
                       severity=getattr(severity, "value", severity) or "critical")


def json_default(value: Any) -> Any:
    """Values of results (dates, decimals, ...) in JSON as GX serialises them for its stores."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False).encode("utf-8")


_VERSION: list[str] = []


def gx_version() -> str:
    """The installed Great Expectations' version, read from its metadata (no import)."""
    if not _VERSION:
        from importlib.metadata import version

        _VERSION.append(version("great_expectations"))
    return _VERSION[0]
