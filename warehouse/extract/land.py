"""Landing: copy an export once, content-hashed; extract it into a raw snapshot, or quarantine it.

``land_export`` is all-or-nothing: the landing copy and the raw snapshot are built in hidden temporary
directories and renamed into place only when complete, so ``DIR/raw`` never holds half a snapshot and an
export that fails leaves ``DIR/raw`` and ``DIR/landing`` as they were (its files go to ``DIR/quarantine``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import ExportError
from .odm import OdmReader
from .odm_files import pair_odm_files, survey
from .rawzone import Extracted, list_snapshots, read_export_json, write_json, write_meta
from .redcap import RedcapReader
from .sniff import FileKind, check_dialect, classify
from warehouse.publish import pid_alive

EXTRACT_VERSION = 1


@dataclass
class LandResult:
    export_id: str
    raw_dir: Path
    new: bool
    format: str  # "redcap" | "odm"
    forms: dict[str, tuple[int, int]] = field(default_factory=dict)  # form -> (rows, subjects)
    landing_dir: Path | None = None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


_HASHES: dict[tuple, str] = {}


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def file_hash(path: Path) -> str:
    """``file_sha256``, memoised per (path, inode, size, mtime) within the process: the flow's cache key and the
    landing of the same run read a large export once, not twice (the 2.6 GB records file of 10,000 subjects: ~3 s
    from the page cache, ~14 s read from this disk). A file whose stat changes while it is hashed is an
    ExportError."""
    key = _file_key(path)
    if key not in _HASHES:
        digest = file_sha256(path)
        if _file_key(path) != key:
            raise ExportError(path.name, "the file changed while it was being read; land it again")
        _HASHES[key] = digest
    return _HASHES[key]


def copy_landing(files: list[Path], target: Path, before: dict[str, tuple]) -> None:
    """The landing copy, by the kernel (``sendfile``: 1 s for 2.6 GB here, against 12 s read and written
    through Python). ``before``: each file's (path, inode, size, mtime) taken before it was hashed; a file whose
    stat differs once copied changed after it was hashed, and fails the landing, so the copy (from which the
    raw snapshot is then read) holds the hashed bytes."""
    for f in files:
        shutil.copyfile(f, target / f.name)
    for f in files:
        if _file_key(f) != before[f.name]:
            raise ExportError(f.name, "the file changed while it was being landed; land it again")


def export_id_of(hashes: dict[str, str]) -> str:
    """First 16 hex of SHA-256 over the sorted file-content hashes (file names do not count)."""
    return hashlib.sha256("\n".join(sorted(hashes.values())).encode()).hexdigest()[:16]


def export_files(export: Path) -> list[Path]:
    """The files of one transfer: a single file, or the regular non-hidden files at a folder's top level."""
    if not export.exists():
        raise ExportError(str(export), "no such file or folder")
    if export.is_file():
        return [export]
    if not export.is_dir():
        raise ExportError(str(export), "not a file or folder")
    entries = sorted(p for p in export.iterdir() if not p.name.startswith("."))
    links = [p.name for p in entries if p.is_symlink()]
    if links:
        # a link may point anywhere (/etc/passwd, another study's export): never followed, its target never read
        # or quoted; the export's own folder may itself be a link that the operator chose
        raise ExportError(links[0], "a symbolic link inside the export folder: export files must be regular files "
                          "(links are not followed)" + (f"; {len(links) - 1} more link(s)" if len(links) > 1 else ""))
    files = [p for p in entries if p.is_file()]
    if not files:
        raise ExportError(export.name or str(export), "empty folder: no export files")
    return files


def _now() -> datetime:
    return datetime.now(timezone.utc)


def quarantine(data_dir: Path, files: list[Path], error: ExportError, source: Path, short: str | None) -> Path:
    stamp = _now().strftime("%Y%m%dT%H%M%S%fZ")
    short = short or hashlib.sha256(f"{source}|{error}".encode()).hexdigest()[:8]
    qdir = data_dir / "quarantine" / f"{stamp}-{short[:8]}"
    qdir.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            shutil.copyfile(f, qdir / f.name)
        except OSError:  # pragma: no cover - an unreadable file is already named in REASON.txt
            pass
    (qdir / "REASON.txt").write_text(f"{error}\n\nsource: {source}\nquarantined: {stamp}\n", encoding="utf-8")
    return qdir


def _detect(folder: Path, names: list[str], single: bool, encoding: str | None,
            delimiter: str | None, display: str) -> tuple[str, dict[str, FileKind], list[dict]]:
    kinds = {n: classify(folder / n, encoding, delimiter) for n in names}
    for k in kinds.values():
        if k.kind == "empty":
            raise ExportError(k.name, "empty file (no header, no records): an incomplete transfer?")
    csvs = [k for k in kinds.values() if k.kind == "csv"]
    xmls = [k for k in kinds.values() if k.kind == "xml"]
    roles = [k for k in csvs if k.role in ("dictionary", "metadata")]
    if roles:
        return "redcap", kinds, []
    odms = [k for k in xmls if k.what.startswith("an ODM")]
    if len(odms) == 1:
        odms[0].role = "odm data"
        return "odm", kinds, []
    if len(odms) > 1:  # one data file and the metadata file it refers to (OpenEDC), or refused
        data, meta = pair_odm_files([survey(folder / k.name) for k in odms], display)
        kinds[data].role, kinds[meta].role = "odm data", "odm metadata"
        return "odm", kinds, []
    if single:
        k = next(iter(kinds.values()))
        what = k.what or ("a CSV file without the REDCap data dictionary" if k.kind == "csv" and len(k.header) > 1
                          else "a text file")
        raise ExportError(k.name, f"not an eCRF export: {what}")
    described = []
    for k in kinds.values():
        described.append(f"{k.name} ({k.what or ('CSV, first column ' + repr(k.header[0][:40])) if k.header else k.kind})")
    raise ExportError(display, "no export found (need a REDCap data dictionary with its records CSV, "
                      "or one ODM XML file, or an ODM data file with its metadata file); files: "
                      + "; ".join(described))


def recognise_export(export: Path, data_dir: Path, *, encoding: str | None = None,
                     delimiter: str | None = None) -> str:
    """The export's format ('redcap' or 'odm') from the first 64 KiB of each file, before anything is landed;
    what is not an export raises ExportError after its files are quarantined with the reason, as landing does."""
    export, data_dir = Path(export), Path(data_dir)
    try:
        encoding, delimiter = check_dialect(encoding, delimiter)
    except ValueError as exc:
        raise ExportError(None, f"CSV dialect override: {exc}") from None
    files: list[Path] = []
    try:
        files = export_files(export)
        folder = export if export.is_dir() else export.parent
        fmt, _, _ = _detect(folder, [f.name for f in files], export.is_file(), encoding, delimiter,
                            export.name or str(export))
        return fmt
    except ExportError as err:
        quarantine(data_dir, files, err, export, None)
        raise


def remove_killed_landings(data_dir: Path) -> list[Path]:
    """Remove the hidden `.tmp-<export id>-<pid>-...` folders of landings whose process is gone (killed): they are
    never visible as snapshots, but would otherwise stay forever."""
    removed = []
    for parent in (data_dir / "landing", data_dir / "raw"):
        for path in parent.glob(".tmp-*") if parent.is_dir() else ():
            parts = path.name.split("-")
            pid = parts[2] if len(parts) > 3 else ""
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def land_export(export: Path, data_dir: Path, *, encoding: str | None = None, delimiter: str | None = None,
                decimal_comma: bool | None = None) -> LandResult:
    """Land one export (a folder of one transfer's files, or a single ODM .xml file) into ``data_dir``.

    CSV dialect overrides (None = detected; ``StudyConfig.export_options()`` gives a study's):
    ``encoding`` for every CSV file of the export (a file with a UTF-8 BOM is UTF-8 whatever it says);
    ``delimiter`` for the records file (the REDCap metadata CSVs are recognised by their headers);
    ``decimal_comma`` the declared decimal mark, recorded in export.json (values stay as exported; numeric
    values written with the other mark are noted). They apply when an export first lands: the same content
    again is a no-op whatever they say. Raises ExportError (after quarantining the input) when the export
    cannot be read, and before reading anything when an override is not valid.
    """
    export, data_dir = Path(export), Path(data_dir)
    try:
        encoding, delimiter = check_dialect(encoding, delimiter)
    except ValueError as exc:
        raise ExportError(None, f"CSV dialect override: {exc}") from None
    overrides = {k: v for k, v in (("encoding", encoding), ("delimiter", delimiter),
                                   ("decimal_comma", decimal_comma)) if v is not None}
    files: list[Path] = []
    export_id: str | None = None
    tmp_dirs: list[Path] = []
    try:
        files = export_files(export)
        before = {f.name: _file_key(f) for f in files}
        hashes = {f.name: file_hash(f) for f in files}
        export_id = export_id_of(hashes)
        if (data_dir / "raw" / export_id / "_meta" / "export.json").is_file():
            return _landed(data_dir, export_id)
        raw_final = data_dir / "raw" / export_id
        landing_final = data_dir / "landing" / export_id
        remove_killed_landings(data_dir)
        token = f".tmp-{export_id}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        landing_tmp = data_dir / "landing" / token
        raw_tmp = data_dir / "raw" / token
        tmp_dirs = [landing_tmp, raw_tmp]
        landing_tmp.mkdir(parents=True)
        (raw_tmp / "_meta").mkdir(parents=True)
        copy_landing(files, landing_tmp, before)
        # read from the landing copy: the raw snapshot is of the very bytes kept
        res, fmt, kinds = _extract(landing_tmp, [f.name for f in files], export, raw_tmp, export_id, hashes,
                                   encoding, delimiter, decimal_comma, overrides)
        landed_at = _now().isoformat(timespec="microseconds")
        write_meta(raw_tmp / "_meta", res.meta)
        write_json(raw_tmp / "_meta" / "export.json", _export_json(export_id, fmt, landed_at, export, files, hashes,
                                                                  kinds, res, overrides if fmt == "redcap" else {}))
        landing_final.parent.mkdir(parents=True, exist_ok=True)
        if landing_final.exists():
            shutil.rmtree(landing_tmp)
        else:
            os.rename(landing_tmp, landing_final)
        try:
            os.rename(raw_tmp, raw_final)
        except OSError:
            if (raw_final / "_meta" / "export.json").is_file():  # landed concurrently by someone else
                shutil.rmtree(raw_tmp, ignore_errors=True)
                return land_export(export, data_dir, encoding=encoding, delimiter=delimiter,
                                   decimal_comma=decimal_comma)
            raise
        return LandResult(export_id=export_id, raw_dir=raw_final, new=True, format=fmt, forms=res.counts(),
                          landing_dir=landing_final)
    except ExportError as err:
        for d in tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        quarantine(data_dir, files, err, export, export_id)
        raise
    except BaseException:
        for d in tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        raise


def _extract(source_dir: Path, names: list[str], export: Path, raw_tmp: Path, export_id: str,
             hashes: dict[str, str], encoding: str | None, delimiter: str | None, decimal_comma: bool | None,
             overrides: dict) -> tuple[Extracted, str, dict[str, FileKind]]:
    """Recognise the export's format and read it into the raw snapshot being built in ``raw_tmp``."""
    fmt, kinds, _ = _detect(source_dir, names, export.is_file(), encoding, delimiter,
                            display=export.name or str(export))
    if fmt == "redcap":
        res = RedcapReader(source_dir, kinds, raw_tmp, export_id=export_id, hashes=hashes, encoding=encoding,
                           delimiter=delimiter, decimal_comma=decimal_comma, display=export.name or str(export)).run()
    else:
        odm = next(k for k in kinds.values() if k.role == "odm data")
        meta = next((k for k in kinds.values() if k.role == "odm metadata"), None)
        res = OdmReader(source_dir / odm.name, raw_tmp, export_id=export_id, sha256=hashes[odm.name],
                        metadata=source_dir / meta.name if meta is not None else None).run()
        if overrides:
            res.notes.append(f"CSV dialect overrides not used (an ODM export is XML): {overrides}")
    return res, fmt, kinds


def _landed(data_dir: Path, export_id: str) -> LandResult:
    """The result for content that has landed before (nothing is written)."""
    info = read_export_json(data_dir, export_id)
    return LandResult(export_id=export_id, raw_dir=data_dir / "raw" / export_id, new=False, format=info["format"],
                      forms={k: (v["rows"], v["subjects"]) for k, v in info["records"].items()},
                      landing_dir=data_dir / "landing" / export_id)


def _export_json(export_id: str, fmt: str, landed_at: str, source: Path, files: list[Path],
                 hashes: dict[str, str], kinds: dict[str, FileKind], res: Extracted,
                 overrides: dict | None = None) -> dict:
    file_rows = []
    for f in files:
        k = kinds.get(f.name)
        info = {"name": f.name, "sha256": hashes[f.name], "bytes": f.stat().st_size}
        role = res.files.get(f.name)
        if role:
            info.update(role)
        else:
            info["role"] = "ignored"
            if k is not None:
                info["what"] = k.what or (f"{k.kind}" + (" (REDCap's ODM of the same project: the CSV export is "
                                                         "the export)" if k.kind == "xml" else ""))
        if k is not None:  # the encoding of every text file: as read (CSV), declared (XML), detected (ignored)
            if k.encoding is not None:
                info.setdefault("encoding", k.encoding)
            if k.kind == "csv" and info["role"] != "ignored":
                info.setdefault("bom", bool(k.bom))
                info.setdefault("delimiter", k.delimiter)
        file_rows.append(info)
    return {
        "export_id": export_id,
        "format": fmt,
        "landed_at": landed_at,
        "source": str(source),
        "extract_version": EXTRACT_VERSION,
        "files": file_rows,
        "records": {t: {"rows": r, "subjects": s} for t, (r, s) in res.counts().items()},
        "decimal_comma": bool(res.decimal_comma_fields) if (overrides or {}).get("decimal_comma") is None
        else overrides["decimal_comma"],
        "decimal_comma_fields": res.decimal_comma_fields,
        "overrides": overrides or {},
        "notes": res.notes,
    }


__all__ = ["LandResult", "land_export", "list_snapshots", "export_id_of", "file_hash", "file_sha256"]
