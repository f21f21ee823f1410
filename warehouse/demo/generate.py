"""`generate_demo`: the synthetic ADRESS-like study, written as REDCap and ODM exports, streamed subject by subject."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .design import build_design
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
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    if subjects < 1:
        raise ValueError(f"subjects must be >= 1, got {subjects}")
    if not 0.0 <= inject_rate <= 1.0:
        raise ValueError(f"inject_rate must be within [0, 1], got {inject_rate}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    design = build_design(p, subjects, seed)
    clock = Clock(p.first_randomisation)

    # randomisation list (restricted)
    rand_file = out_dir / "randomisation.csv"
    with open(rand_file, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["kit_no", "arm", "arm_label"])
        for kit, arm in design.kits:
            w.writerow([kit, arm, p.arm_label(arm)])

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

    files: dict[str, str] = {}
    written = [rand_file]
    if redcap_dir is not None:
        written += [redcap_dir / n for n in file_names(p.study_id, p.export_date).values()]
    if odm_path is not None:
        written.append(odm_path)
    for path in sorted(written):
        files[path.relative_to(out_dir).as_posix()] = _sha256(path)

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
    manifest_file = out_dir / "manifest.json"
    with open(manifest_file, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return DemoExport(redcap_dir, odm_path, rand_file, manifest_file, problems, files)
