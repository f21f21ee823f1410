"""The validation report of a build: one self-contained HTML page a data manager can open from disk or mail.

No script, style or font is fetched from anywhere: everything the page needs is inline.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import polars as pl

FINDINGS_SHOWN = 5000

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}.error{color:#a00;font-weight:600}.warning{color:#a60}
.ok{color:#070}.filters select{margin-right:1em}
"""

_SCRIPT = """
function applyFilters(){
  var site=document.getElementById('f-site').value, form=document.getElementById('f-form').value,
      sev=document.getElementById('f-severity').value, shown=0;
  document.querySelectorAll('#findings tbody tr').forEach(function(r){
    var ok=(!site||r.dataset.site===site)&&(!form||r.dataset.form===form)&&(!sev||r.dataset.severity===sev);
    r.style.display=ok?'':'none'; if(ok){shown++;}
  });
  document.getElementById('shown').textContent=shown;
}
document.querySelectorAll('.filters select').forEach(function(s){s.addEventListener('change',applyFilters);});
applyFilters();
"""


def esc(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def options(values: list[str]) -> str:
    return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in sorted(set(values)) if v)


def summary_table(results: pl.DataFrame) -> str:
    if results.height == 0:
        return "<p>No expectations ran.</p>"
    summary = (
        results.group_by("stage", "suite")
        .agg(
            pl.len().alias("expectations"),
            (~pl.col("success") & (pl.col("severity") == "error")).sum().alias("errors"),
            (~pl.col("success") & (pl.col("severity") == "warning")).sum().alias("warnings"),
            pl.col("unexpected_count").fill_null(0).sum().alias("failing_rows"),
        )
        .sort("stage", "suite")
    )
    rows = "".join(
        f"<tr><td>{esc(r['stage'])}</td><td>{esc(r['suite'])}</td><td class=n>{r['expectations']}</td>"
        f"<td class='n{' error' if r['errors'] else ''}'>{r['errors']}</td>"
        f"<td class='n{' warning' if r['warnings'] else ''}'>{r['warnings']}</td>"
        f"<td class=n>{r['failing_rows']}</td></tr>"
        for r in summary.iter_rows(named=True)
    )
    return (
        "<table id=summary><thead><tr><th>stage</th><th>suite</th><th>expectations</th><th>failed (error)</th>"
        f"<th>failed (warning)</th><th>failing rows</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def findings_table(findings: pl.DataFrame) -> str:
    columns = ["severity", "stage", "site_id", "subject_id", "event", "repeat_instance", "form", "field", "value",
               "rule", "message"]
    shown = findings.head(FINDINGS_SHOWN)
    body = "".join(
        f"<tr data-site='{esc(r.get('site_id'))}' data-form='{esc(r.get('form'))}' "
        f"data-severity='{esc(r.get('severity'))}'>"
        + "".join(f"<td class='{esc(r.get('severity')) if c == 'severity' else ''}'>{esc(r.get(c))}</td>"
                  for c in columns)
        + "</tr>"
        for r in shown.iter_rows(named=True)
    )
    head = "".join(f"<th>{c}</th>" for c in columns)
    note = (f"<p>Showing the first {FINDINGS_SHOWN} of {findings.height} findings; all are in the warehouse "
            "table <code>findings</code>.</p>" if findings.height > FINDINGS_SHOWN else "")
    filters = (
        "<div class=filters>site <select id=f-site><option value=''>all</option>"
        f"{options([str(v) for v in findings.get_column('site_id').to_list() if v])}</select>"
        "form <select id=f-form><option value=''>all</option>"
        f"{options([str(v) for v in findings.get_column('form').to_list() if v])}</select>"
        "severity <select id=f-severity><option value=''>all</option>"
        "<option>error</option><option>warning</option></select>"
        "<span id=shown></span> shown</div>"
    )
    return f"{filters}{note}<table id=findings><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_validation_report(build_id: str, validations: list, history: pl.DataFrame) -> str:
    results = pl.concat([v.results for v in validations], how="diagonal_relaxed")
    findings = pl.concat([v.findings for v in validations], how="diagonal_relaxed")
    errors = sum(v.errors for v in validations)
    warnings = sum(v.warnings for v in validations)
    status = (f"<p class=error>Publishing blocked: {errors} error finding(s).</p>" if errors
              else "<p class=ok>No error findings: the build was published.</p>")
    closed = int((history.get_column("status") == "closed").sum()) if history.height else 0
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Validation report {esc(build_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Validation report</h1><p>Build <code>{esc(build_id)}</code></p>{status}"
        f"<p id=counts>{errors} error finding(s), {warnings} warning finding(s); "
        f"{closed} finding(s) closed since earlier builds.</p>"
        f"<h2>Summary by stage and suite</h2>{summary_table(results)}"
        f"<h2>Findings</h2>{findings_table(findings)}"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_validation_report(reports_dir: Path, build_id: str, validations: list, history: pl.DataFrame) -> Path:
    """Write the build's report, and copy it as the latest one (`reports/validation.html`)."""
    target = reports_dir / build_id / "validation.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_validation_report(build_id, validations, history), encoding="utf-8")
    latest = reports_dir / "validation.html"
    tmp = latest.with_suffix(".html.tmp")
    shutil.copyfile(target, tmp)
    tmp.replace(latest)
    return target
