"""`generate_demo`: the synthetic ADRESS-like study, written as REDCap and ODM exports, streamed subject by subject."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .design import Design, build_design
from .inject import KINDS, inject_problems
from .odm import OdmWriter, odm_file_name
from .params import DemoParameters
from .redcap import RedcapDataWriter, file_names, write_metadata
from .simulate import Clock, simulate_subject

FORMATS = ("redcap", "odm")


@dataclass
class DemoExport:
    """What `generate_demo` wrote."""

    redcap_dir: Path | None
    odm_file: Path | None
    randomisation_file: Path
    manifest_file: Path
    problems: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path relative to out_dir -> SHA-256


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate_demo(out_dir: Path, subjects: int = 32, seed: int = 20190515, inject_rate: float = 0.0,
                  formats: tuple[str, ...] = FORMATS, params: DemoParameters | None = None) -> DemoExport:
    """Write the demo study's exports under `out_dir`; deterministic for (seed, subjects, inject_rate, params).

    `out_dir/redcap/` (REDCap project export), `out_dir/odm/<study>_ODM_<date>.xml`, `out_dir/randomisation.csv`
    (restricted) and `out_dir/manifest.json` (seed, N, file hashes, injected problems).
    """
    p = params or DemoParameters()
    formats = tuple(formats)
    _check_request(subjects, inject_rate, formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    design = build_design(p, subjects, seed)
    rand_file = write_randomisation_list(out_dir / "randomisation.csv", design, p)
    redcap_dir, odm_path, problems = write_subjects(out_dir, design, p, seed, inject_rate, formats)

    written = [rand_file]
    if redcap_dir is not None:
        written += [redcap_dir / n for n in file_names(p.study_id, p.export_date).values()]
    if odm_path is not None:
        written.append(odm_path)
    files = {path.relative_to(out_dir).as_posix(): _sha256(path) for path in sorted(written)}
    manifest_file = write_manifest(out_dir / "manifest.json", p, seed, subjects, inject_rate, formats, files,
                                   problems)
    return DemoExport(redcap_dir, odm_path, rand_file, manifest_file, problems, files)


def _check_request(subjects: int, inject_rate: float, formats: tuple[str, ...]) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    if subjects < 1:
        raise ValueError(f"subjects must be >= 1, got {subjects}")
    if not 0.0 <= inject_rate <= 1.0:
        raise ValueError(f"inject_rate must be within [0, 1], got {inject_rate}")


def write_randomisation_list(path: Path, design: Design, p: DemoParameters) -> Path:
    """The randomisation list (restricted): every kit of every allocated block, with its arm."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["kit_no", "arm", "arm_label"])
        for kit, arm in design.kits:
            w.writerow([kit, arm, p.arm_label(arm)])
    return path


def write_subjects(out_dir: Path, design: Design, p: DemoParameters, seed: int, inject_rate: float,
                   formats: tuple[str, ...]) -> tuple[Path | None, Path | None, list[dict]]:
    """Simulate each subject in record-id order, inject its problems, and stream it to each format's writer.

    Returns the REDCap folder and the ODM file written (None for a format not asked for) and the injected problems.
    """
    clock = Clock(p.first_randomisation)
    redcap_dir = odm_path = None
    rc_fh = odm_fh = None
    rc_writer = odm_writer = None
    try:
        if "redcap" in formats:
            redcap_dir = out_dir / "redcap"
            redcap_dir.mkdir(exist_ok=True)
            names = file_names(p.study_id, p.export_date)
            write_metadata(redcap_dir, names)
            rc_fh = open(redcap_dir / names["data"], "w", encoding="utf-8", newline="")
            rc_writer = RedcapDataWriter(rc_fh)
        if "odm" in formats:
            (out_dir / "odm").mkdir(exist_ok=True)
            odm_path = out_dir / "odm" / odm_file_name(p.study_id, p.export_date)
            odm_fh = open(odm_path, "w", encoding="utf-8", newline="")
            odm_writer = OdmWriter(odm_fh, p, seed)
            odm_writer.write_header()
        problems: list[dict] = []
        for subj in sorted(design.subjects, key=lambda s: s.record_id):
            records = simulate_subject(subj, p, seed, clock)
            problems.extend(inject_problems(subj, records, inject_rate, seed, clock))
            if rc_writer is not None:
                rc_writer.write_subject(subj.record_id, subj.site, records)
            if odm_writer is not None:
                odm_writer.write_subject(subj.record_id, subj.site, records)
        if odm_writer is not None:
            odm_writer.write_footer()
    finally:
        for fh in (rc_fh, odm_fh):
            if fh is not None:
                fh.close()
    return redcap_dir, odm_path, problems


def write_manifest(path: Path, p: DemoParameters, seed: int, subjects: int, inject_rate: float,
                   formats: tuple[str, ...], files: dict[str, str], problems: list[dict]) -> Path:
    """manifest.json: the request, each file's SHA-256, the injected problems (counted by kind), the parameters."""
    manifest = {
        "study_id": p.study_id,
        "generator": "warehouse.demo",
        "seed": seed,
        "subjects": subjects,
        "screen_failures": p.screen_failures,
        "inject_rate": inject_rate,
        "formats": list(formats),
        "export_date": p.export_date,
        "files": files,
        "problem_counts": {k: Counter(pr["kind"] for pr in problems).get(k, 0) for k in KINDS},
        "problems": problems,
        "parameters": p.as_dict(),
    }
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return path
