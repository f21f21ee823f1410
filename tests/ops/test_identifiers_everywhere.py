"""Issue 15 item 4: identifier values never appear in any output beyond the raw zone, as an invariant.

Two exports of the demo study are built blinded into one data directory:

1. with injected problems (inject_rate > 0: the build is blocked) and, planted in a copy of its records CSV,
   malformed dates of birth (`DOBBAD0060`...: raw findings on an identifier field) and marker initials
   (`INIA0030`...);
2. the clean export of the same study with the dates of birth valid again and the initials changed (`INIB0030`...):
   it publishes, its findings history closes the date-of-birth findings of build 1, and the change report has
   identifier changes.

Then every file under the data directory except the raw zone (`raw/`, `landing/`, `quarantine/`) is scanned for
every identifier value of both exports (from the data dictionary's identifier flags): DuckDB files (every schema,
table, column and comment: `src` too, identifiers are dropped at staging), Parquet, HTML, CSV, JSON, XLSX and
anything else; plus the output of `warehouse changes` (screen and `--csv`), `warehouse status`,
`warehouse query` on findings, findings history, results and changes, `warehouse export`, and the Prefect
artifacts' data (`findings_rows`, `findings_markdown`) of the blocked build's validations.

Values of 6 characters or more (dates of birth, the planted markers) are looked for anywhere in a text; shorter
ones (the demo's two- and three-letter initials, which are also ordinary words such as "NE" or "ID") as a whole
cell (a DuckDB or Parquet value, an HTML cell, a CSV field, a JSON string, an XLSX cell).
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ops_support import cli, read_identifiers, scan_text_cells, walk_outputs

pytestmark = pytest.mark.slow

WITHHELD = "value withheld (identifier)"
SUBJECTS = 32
PLANTED = 4  # subjects whose identifiers are replaced by markers
RAW_ZONE = {"raw", "landing", "quarantine"}
LONG = 6
TEXT_SUFFIXES = {".html", ".htm", ".csv", ".tsv", ".json", ".txt", ".md", ".log", ".xml", ".js", ".css", ".sql",
                 ".toml", ".yaml", ".yml"}


def plant(redcap_dir: Path, dob: str | None, initials: str) -> list[str]:
    """Markers in the records CSV's first PLANTED demographics rows: dob `<dob>00<60+k>` (None: left valid),
    initials `<initials>00<30+k>`; returns the subjects changed."""
    data = next(redcap_dir.glob("*_DATA_*.csv"))
    with data.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    i_dob, i_ini, i_rec = head.index("dob"), head.index("initials"), head.index("record_id")
    subjects = []
    for row in rows[1:]:
        if row[i_dob] and row[i_ini] and len(subjects) < PLANTED:
            k = len(subjects)
            if dob is not None:
                row[i_dob] = f"{dob}00{60 + k}"
            row[i_ini] = f"{initials}00{30 + k}"
            subjects.append(row[i_rec])
    with data.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    assert len(subjects) == PLANTED
    return subjects


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> dict:
    from warehouse.demo import generate_demo
    from warehouse.build import DEMO_SEED, BuildRequest, PublishBlocked, run_build
    from warehouse.publish import BuildPaths, read_records

    root = tmp_path_factory.mktemp("identifiers")
    first = generate_demo(root / "export1", subjects=SUBJECTS, seed=DEMO_SEED, inject_rate=0.03,
                          formats=("redcap",))
    second = generate_demo(root / "export2", subjects=SUBJECTS, seed=DEMO_SEED, inject_rate=0.0,
                           formats=("redcap",))
    planted = plant(first.redcap_dir, "DOBBAD", "INIA")
    assert plant(second.redcap_dir, None, "INIB") == planted
    names, values = read_identifiers(first.redcap_dir)
    names2, values2 = read_identifiers(second.redcap_dir)
    assert names == names2 == {"initials", "dob"}
    secrets = {v for vs in [*values.values(), *values2.values()] for v in vs}
    assert {f"DOBBAD00{60 + k}" for k in range(PLANTED)} | {f"INIB00{30 + k}" for k in range(PLANTED)} <= secrets

    data_dir = root / "data"
    with pytest.raises(PublishBlocked):
        run_build(BuildRequest(data_dir=data_dir, export=first.redcap_dir))
    blocked = next(r for r in read_records(BuildPaths(data_dir, blinded=True)) if r.status == "blocked")
    published = run_build(BuildRequest(data_dir=data_dir, export=second.redcap_dir))
    assert published.published is not None
    return {"data_dir": data_dir, "secrets": secrets, "names": names, "planted": planted, "blocked": blocked,
            "published": published, "root": root}


# -- scanning --------------------------------------------------------------------------------------------------


class Scanner:
    """Identifier values looked for in outputs: long ones anywhere in a text, short ones as whole cells."""

    def __init__(self, secrets: set[str]):
        self.long = sorted((v for v in secrets if len(v.strip()) >= LONG), key=len, reverse=True)
        self.short = {v for v in secrets if len(v.strip()) < LONG} | {v.strip() for v in secrets
                                                                        if len(v.strip()) < LONG}
        self.long_re = re.compile("|".join(re.escape(v.strip()) for v in self.long))
        self.problems: list[str] = []
        self.scanned: dict[str, int] = {}

    def count(self, kind: str) -> None:
        self.scanned[kind] = self.scanned.get(kind, 0) + 1

    def cell(self, where: str, value) -> None:
        if value is None:
            return
        text = str(value)
        hit = self.long_re.search(text)
        if hit:
            self.problems.append(f"{where}: {hit.group(0)!r} in {text[:120]!r}")
        elif text.strip() in self.short:
            self.problems.append(f"{where}: cell {text!r}")

    def text(self, where: str, text: str) -> None:
        hits = sorted(set(self.long_re.findall(text)))
        if hits:
            self.problems.append(f"{where} contains {hits}")
        self.problems += scan_text_cells(where, text, self.short)

    def duckdb_file(self, path: Path, names: set[str]) -> None:
        self.count("duckdb")
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.sql("select schema_name, table_name, comment from duckdb_tables() "
                             "where database_name = current_database() union all "
                             "select schema_name, view_name, comment from duckdb_views() "
                             "where database_name = current_database() and not internal").fetchall()
            schemas = {s for s, _, _ in tables}
            assert {"main", "src", "staging"} <= schemas, (path, schemas)
            for schema, table, comment in tables:
                where = f"{path.name}:{schema}.{table}"
                self.cell(f"{where} (comment)", comment)
                columns = con.sql("select column_name, comment from duckdb_columns() where database_name = "
                                  "current_database() and schema_name = ? and table_name = ?",
                                  params=[schema, table]).fetchall()
                for column, comment in columns:
                    if column.lower() in names:
                        self.problems.append(f"{where} has identifier column {column}")
                    self.cell(f"{where}.{column} (comment)", comment)
                    for (value,) in con.sql(f'select distinct cast("{column}" as varchar) from "{schema}"."{table}" '
                                            f'where "{column}" is not null').fetchall():
                        self.cell(f"{where}.{column}", value)

    def parquet_file(self, path: Path) -> None:
        self.count("parquet")
        frame = pl.read_parquet(path)
        for column in frame.columns:
            for value in frame.get_column(column).cast(pl.Utf8).unique().to_list():
                self.cell(f"{path.name}.{column}", value)

    def xlsx_file(self, path: Path) -> None:
        self.count("xlsx")
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if member.endswith(".xml"):
                    self.text(f"{path.name}!{member}", z.read(member).decode("utf-8", errors="replace"))

    def any_file(self, path: Path, data_dir: Path, names: set[str]) -> None:
        name = str(path.relative_to(data_dir))
        suffix = path.suffix.lower()
        if suffix == ".duckdb":
            self.duckdb_file(path, names)
        elif suffix == ".parquet":
            self.parquet_file(path)
        elif suffix == ".xlsx":
            self.xlsx_file(path)
        elif suffix in TEXT_SUFFIXES:
            self.count(suffix)
            self.text(name, path.read_text(encoding="utf-8", errors="replace"))
        else:  # anything else (GX's images and fonts, a lock file...): the long values in its bytes
            self.count(suffix or "(none)")
            hits = sorted(set(self.long_re.findall(path.read_bytes().decode("latin-1"))))
            if hits:
                self.problems.append(f"{name} contains {hits}")


def test_identifier_values_nowhere_beyond_the_raw_zone(two_builds, tmp_path):
    data_dir, names = two_builds["data_dir"], two_builds["names"]
    scanner = Scanner(two_builds["secrets"])
    assert len(scanner.long) > SUBJECTS and len(scanner.short) > 10  # dates of birth, markers; initials

    files = walk_outputs(data_dir, skip_top=RAW_ZONE)
    for path in files:
        scanner.any_file(path, data_dir, names)
    assert scanner.scanned.get("duckdb", 0) >= 3  # the published file and both builds' files
    assert scanner.scanned.get(".html", 0) >= 4 and scanner.scanned.get("xlsx", 0) >= 1
    assert scanner.scanned.get(".csv", 0) >= 1 and scanner.scanned.get(".json", 0) >= 2

    # what the commands print
    outputs = {}
    changes_csv = tmp_path / "changes.csv"
    for args in (["changes", "--limit", "100000"], ["changes", "--csv", str(changes_csv)], ["status"],
                 ["query", "select * from findings", "--format", "csv"],
                 ["query", "select * from findings_history", "--format", "csv"],
                 ["query", "select * from validation_results", "--format", "csv"],
                 ["query", "select * from export_changes", "--format", "json"],
                 ["export", "--out", str(tmp_path / "export")]):
        res = cli(*args, "--data-dir", str(data_dir), timeout=300)
        assert res.returncode == 0, (args, res.stderr)
        outputs[" ".join(args[:2])] = res.stdout
        scanner.text(f"warehouse {' '.join(args[:2])} (stdout)", res.stdout)
        scanner.text(f"warehouse {' '.join(args[:2])} (stderr)", res.stderr)
    scanner.text("changes.csv", changes_csv.read_text(encoding="utf-8"))
    for path in sorted((tmp_path / "export").rglob("*")):
        if path.is_file():
            scanner.any_file(path, tmp_path, names)

    assert scanner.problems == [], "\n".join(scanner.problems)

    # the scan would have seen them: the identifier changes are reported, withheld
    changes = outputs["changes --limit"]
    for subject in two_builds["planted"]:
        assert re.search(rf"{re.escape(subject)} \S+  initials: \({re.escape(WITHHELD)}\) -> "
                         rf"\({re.escape(WITHHELD)}\)", changes), subject
        assert re.search(rf"{re.escape(subject)} \S+  dob: \({re.escape(WITHHELD)}\) -> \({re.escape(WITHHELD)}\)",
                         changes), subject
    table = pl.read_csv(changes_csv, infer_schema=False)
    withheld = table.filter(pl.col("field").is_in(["dob", "initials"]))
    assert withheld.height >= 2 * PLANTED
    assert set(withheld.get_column("old_value").to_list()) | set(withheld.get_column("new_value").to_list()) == {
        WITHHELD}


def test_findings_on_identifier_fields_name_subject_and_field_only(two_builds):
    data_dir, blocked = two_builds["data_dir"], two_builds["blocked"]
    with duckdb.connect(str(data_dir / "builds" / f"{blocked.build_id}.duckdb"), read_only=True) as con:
        dob = con.sql("select subject_id, value, message from main.findings where field = 'dob'").pl()
    assert sorted(dob.get_column("subject_id").to_list()) == sorted(two_builds["planted"])
    assert set(dob.get_column("value").to_list()) == {WITHHELD}
    for row in dob.iter_rows(named=True):
        assert row["message"].startswith(f"demographics.dob: {WITHHELD} (subject {row['subject_id']}"), row

    # the published warehouse keeps them, closed by the build that fixed them
    with duckdb.connect(str(two_builds["published"].published), read_only=True) as con:
        closed = con.sql("select status, value, message from main.findings_history where field = 'dob'").pl()
    assert closed.height == PLANTED and set(closed.get_column("status").to_list()) == {"closed"}
    assert set(closed.get_column("value").to_list()) == {WITHHELD}


def test_prefect_artifacts_of_the_blocked_build(two_builds):
    """What the flow hands to Prefect for the blocked build: the findings table rows and the markdown summary,
    made from that build's validations exactly as the flow makes them (no server needed)."""
    from warehouse.validate import steps as validate
    from warehouse.validate import findings_markdown, findings_table_rows

    try:
        from flows.build import findings_rows
    except ImportError:  # the flow module moved it: the same rows, from the validate package
        def findings_rows(validations):
            frames = [v.findings for v in validations if v.findings.height]
            return findings_table_rows(pl.concat(frames, how="diagonal_relaxed")) if frames else []

    data_dir, blocked = two_builds["data_dir"], two_builds["blocked"]
    build_file = data_dir / "builds" / f"{blocked.build_id}.duckdb"
    validations = [validate.validate_raw(data_dir, blocked.export_id),
                   validate.validate_staging(data_dir, blocked.export_id, build_file),
                   validate.validate_marts(build_file)]
    rows = findings_rows(validations)
    markdown = findings_markdown(validations, blocked.build_id)
    assert [r for r in rows if r["field"] == "dob" and r["value"] == WITHHELD]
    assert "Publishing blocked" in markdown
    scanner = Scanner(two_builds["secrets"])
    for k, row in enumerate(rows):
        for column, value in row.items():
            scanner.cell(f"findings artifact row {k}.{column}", value)
    scanner.text("findings markdown", markdown)
    from warehouse.validate.datadocs import build_data_docs  # Data Docs render the same GX results

    docs = build_data_docs(two_builds["root"] / "docs", validations, blocked.build_id)
    assert docs is not None
    for path in sorted((two_builds["root"] / "docs").rglob("*.html")):
        scanner.text(f"data docs {path.name}", path.read_text(encoding="utf-8"))
    assert scanner.problems == []
