"""ODM exports as EDCs write them: which ODM file of an export holds what, and metadata for data that comes without.

- `survey`: what an ODM file holds (its Studies and MetaDataVersions, its ClinicalData and the MetaDataVersion each
  refers to), read as a stream that stops at the first SubjectData, so a large data file costs its head only.
- `pair_odm_files`: an export folder with several ODM files is one export when exactly one file holds ClinicalData
  and the other holds only the metadata it refers to (OpenEDC writes the study's metadata and its clinical data as
  two files): matched by StudyOID and MetaDataVersionOID; anything else is refused, naming the files and what is
  missing.
- `metadata_from_data`: ClinicalData without any MetaDataVersion (Medidata Rave, transactional exports): the forms,
  item groups, items and events seen in the data, every item text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as DET

from .errors import ExportError
from .odm_meta import OdmMetadata, attrs, local

NO_METADATA_NOTE = "no metadata: every item is text"


@dataclass
class OdmSurvey:
    """What one ODM file holds, from its start up to its first SubjectData."""

    name: str
    studies: list[str] = field(default_factory=list)  # Study OIDs
    versions: list[tuple[str, str]] = field(default_factory=list)  # (StudyOID, MetaDataVersion OID) defined
    clinical: list[tuple[str, str | None]] = field(default_factory=list)  # (StudyOID, MetaDataVersionOID) referred to

    def defines(self, study: str, version: str | None) -> bool:
        """Whether the file defines the MetaDataVersion a ClinicalData refers to (any of the study's when the
        ClinicalData names none)."""
        return any(s == study and (version is None or v == version) for s, v in self.versions)

    def what(self) -> str:
        if self.clinical and self.versions:
            return "ClinicalData and metadata"
        if self.clinical:
            return "ClinicalData only (no MetaDataVersion)"
        if self.versions:
            return "metadata only (no ClinicalData)"
        return "no ClinicalData and no MetaDataVersion"


def odm_elements(path: Path, clear: tuple[str, ...]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """An ODM file as a stream of (event "start" or "end", local name, attributes by local name; none at an end),
    DTDs, entities and external references refused (defusedxml); the elements named in `clear` are cleared once
    their end is read, so memory holds one of them at a time."""
    for ev, el in DET.iterparse(str(path), events=("start", "end"), forbid_dtd=True, forbid_entities=True,
                                forbid_external=True):
        n = local(el.tag)
        if ev == "start":
            yield ev, n, attrs(el)
        else:
            yield ev, n, {}
            if n in clear:
                el.clear()


def survey(path: Path) -> OdmSurvey:
    """What an ODM file holds (see `OdmSurvey`); ExportError for XML that cannot be read."""
    out = OdmSurvey(path.name)
    study = ""
    try:
        for ev, n, a in odm_elements(path, clear=("Study", "MetaDataVersion", "AdminData", "ReferenceData")):
            if ev == "end":
                continue
            if n == "Study":
                study = a.get("OID", "")
                out.studies.append(study)
            elif n == "MetaDataVersion":
                out.versions.append((study, a.get("OID", "")))
            elif n == "ClinicalData":
                out.clinical.append((a.get("StudyOID", ""), a.get("MetaDataVersionOID")))
            elif n == "SubjectData":
                break  # the metadata comes before the data (ODM's order): the rest is records
    except defusedxml.DefusedXmlException as exc:
        raise ExportError(path.name, f"unsafe XML refused ({type(exc).__name__})") from exc
    except ParseError as exc:
        line = getattr(exc, "position", (None, None))[0]
        raise ExportError(path.name, f"malformed XML ({exc})", location=line) from exc
    return out


def pair_odm_files(surveys: list[OdmSurvey], display: str) -> tuple[str, str]:
    """(clinical data file, metadata file) of an export of several ODM files, or ExportError saying why they are
    not one export."""
    names = ", ".join(f"{s.name} ({s.what()})" for s in surveys)
    clinical = [s for s in surveys if s.clinical]
    if len(clinical) > 1:
        raise ExportError(display, "several ODM files with ClinicalData in one export (one export is one data file, "
                          f"with at most one metadata file beside it): {names}")
    if not clinical:
        raise ExportError(display, f"no ODM file of the export holds ClinicalData: {names}")
    data = clinical[0]
    others = [s for s in surveys if s is not data]
    if len(others) > 1:
        raise ExportError(display, f"several ODM metadata files for one ClinicalData file: {names}")
    meta = others[0]
    if not meta.versions:
        raise ExportError(meta.name, "no ClinicalData and no MetaDataVersion: neither records nor the metadata of "
                          f"{data.name}")
    if data.versions:
        raise ExportError(display, f"two ODM files with metadata: {data.name} holds its own MetaDataVersion "
                          f"beside its ClinicalData, and {meta.name} another: {names}")
    for study, version in data.clinical:
        if not meta.defines(study, version):
            defined = ", ".join(f"{v!r} of study {s!r}" for s, v in meta.versions)
            raise ExportError(data.name, f"ClinicalData refers to MetaDataVersion {version!r} of study {study!r}, "
                              f"which no file of the export defines ({meta.name} defines {defined})",
                              location=f"/ODM/ClinicalData[@StudyOID='{study}']")
    return data.name, meta.name


def metadata_from_data(path: Path, name: str) -> OdmMetadata:
    """Metadata made from ClinicalData alone (no MetaDataVersion anywhere): a FormDef per FormOID, an
    ItemGroupDef per ItemGroupOID with the items seen in it, an ItemDef of DataType text per ItemOID, a
    StudyEventDef per StudyEventOID with the forms seen in it, all in the order first seen. An item group repeats
    when a form instance holds it twice or its ItemGroupRepeatKey is not "1". One streaming pass, elements cleared
    as they end."""
    m = OdmMetadata()
    form: str | None = None
    event: str | None = None
    groups_in_form: set[str] = set()
    current: dict | None = None
    try:
        for ev, n, a in odm_elements(path, clear=("SubjectData", "AdminData", "ReferenceData", "Study")):
            if ev == "end":
                if n == "FormData":
                    form = current = None
                elif n == "StudyEventData":
                    event = None
                continue
            if n == "StudyEventData":
                event = a.get("StudyEventOID", "")
                m.event_defs.setdefault(event, {"OID": event, "Name": event, "forms": [],
                                                "order": len(m.event_defs) + 1})
            elif n == "FormData":
                form = a.get("FormOID", "")
                groups_in_form = set()
                m.form_defs.setdefault(form, {"OID": form, "Name": form, "igs": [], "order": len(m.form_defs) + 1})
                if event is not None:
                    d = m.event_defs[event]
                    if form not in d["forms"]:
                        d["forms"].append(form)
            elif n == "ItemGroupData" and form is not None:
                g = a.get("ItemGroupOID", "")
                ig = m.ig_defs.setdefault(g, {"OID": g, "Name": g, "Repeating": "No", "items": [], "seen": set()})
                if g in groups_in_form or a.get("ItemGroupRepeatKey", "1") != "1":
                    ig["Repeating"] = "Yes"
                groups_in_form.add(g)
                fd = m.form_defs[form]
                if g not in fd["igs"]:
                    fd["igs"].append(g)
                current = ig
            elif n.startswith("ItemData") and current is not None:
                oid = a.get("ItemOID", "")
                if oid not in current["seen"]:
                    current["seen"].add(oid)
                    current["items"].append({"ItemOID": oid})
                m.item_defs.setdefault(oid, {"OID": oid, "Name": oid, "DataType": "text"})
    except (defusedxml.DefusedXmlException, ParseError):
        return m  # the reader's own parse names the error
    for ig in m.ig_defs.values():
        ig.pop("seen", None)
    return m
