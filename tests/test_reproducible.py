"""Same export, same code, same study configuration -> the same content in every table of the build.

The demo is built twice, in two processes with different string hash seeds (a set's iteration order follows the
seed, so one process would hide that kind of nondeterminism) and into two data directories at different paths.
Then every table of every schema is compared: by the lock manifests' content hashes
(`publish.table_content_hashes`), and row by row with only the documented per-build columns left out
(docs/operations.md, "Rebuilding the same export"): `src.build_info.build_id` / `built_at`, and the build ids and
times of `main.findings_history` (which builds saw a finding: history of the data directory, not content of the
export).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.publish import table_content_hashes

PER_BUILD_COLUMNS = {
    "src.build_info": {"build_id", "built_at"},
    "main.findings_history": {"first_seen_build", "first_seen_at", "last_seen_build", "last_seen_at",
                              "closed_build", "closed_at"},
}

BUILD = """
import json, sys
from pathlib import Path
from warehouse.build import BuildRequest, PublishBlocked, run_build
from warehouse.publish import BuildPaths, read_records
data_dir = Path(sys.argv[1])
try:
    run_build(BuildRequest(data_dir=data_dir, demo_subjects=24, demo_inject_rate=0.08))
except PublishBlocked:
    pass
record = read_records(BuildPaths(data_dir, True))[0]
print(json.dumps({"build_id": record.build_id, "export_id": record.export_id, "status": record.status,
                  "file": str(BuildPaths(data_dir, True).build_file(record.build_id))}))
"""


def build_in_process(data_dir: Path, seed: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.Popen([sys.executable, "-c", BUILD, str(data_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_builds_of_one_export_have_the_same_content_in_every_table(tmp_path):
    dirs = [tmp_path / "one", tmp_path / "two" / "nested" / "deeper"]
    runs = [build_in_process(d, seed) for d, seed in zip(dirs, ("1", "4242"))]
    builds = []
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        builds.append(json.loads(out.strip().splitlines()[-1]))
    a, b = builds
    assert a["export_id"] == b["export_id"] and a["status"] == b["status"]
    assert a["build_id"] != b["build_id"]

    hashes = []
    for build in builds:
        with duckdb.connect(build["file"], read_only=True) as con:
            hashes.append(table_content_hashes(con))
    assert sorted(hashes[0]) == sorted(hashes[1])
    assert len(hashes[0]) > 40  # every schema: src, staging, intermediate, main
    differ = [t for t in hashes[0] if hashes[0][t]["sha256"] != hashes[1][t]["sha256"]]
    assert differ == [], f"tables whose content differs between two builds of one export: {differ}"

    con = duckdb.connect()
    con.execute(f"attach '{a['file']}' as a (read_only)")
    con.execute(f"attach '{b['file']}' as b (read_only)")
    findings = con.execute("select count(*) from a.main.findings").fetchall()[0][0]
    assert findings > 0  # the comparison covers findings, their history and the validation results
    tables = con.execute("select schema_name, table_name from duckdb_tables() where database_name = 'a' "
                         "order by 1, 2").fetchall()
    for schema, table in tables:
        name = f"{schema}.{table}"
        columns = [c for (c,) in con.execute(
            "select column_name from duckdb_columns() where database_name = 'a' and schema_name = ? and "
            "table_name = ? order by column_index", [schema, table]).fetchall()]
        kept = [c for c in columns if c not in PER_BUILD_COLUMNS.get(name, set())]
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in kept)
        for x, y in (("a", "b"), ("b", "a")):
            extra = con.execute(f'select count(*) from (select {select} from {x}."{schema}"."{table}" except all '
                                f'select {select} from {y}."{schema}"."{table}")').fetchall()[0][0]
            assert extra == 0, f"{name}: {extra} row(s) of build {x} not in build {y} (columns {', '.join(kept)})"
        text = [c for (c,) in con.execute(
            "select column_name from duckdb_columns() where database_name = 'a' and schema_name = ? and "
            "table_name = ? and data_type = 'VARCHAR'", [schema, table]).fetchall()]
        if text:  # no table holds the data directory's path
            where = " or ".join(f'contains("{c}", ?)' for c in text)
            hits = con.execute(f'select count(*) from a."{schema}"."{table}" where {where}',
                               [str(tmp_path)] * len(text)).fetchall()[0][0]
            assert hits == 0, f"{name} holds the data directory's path ({tmp_path})"
