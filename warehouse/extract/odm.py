"""CDISC ODM 1.3 / 1.3.1 / 1.3.2 XML: a streaming reader (iterparse, elements cleared as they are used).

Tables: one per FormDef. A form's non-repeating item groups are merged into one row per form instance.
A form whose only item group repeats keeps those rows in the form's table; a form with several repeating
item groups, or repeating and non-repeating ones, gets one extra table per repeating item group, named
after the ItemGroupOID (``<form>_<ItemGroupOID>`` if that name is taken), so that every table has one grain.
Every table name is the export's name made SQL- and file-safe by `rawzone.table_name` (lowercase snake_case:
``IG.AE.AE_ARRAY1`` -> ``ig_ae_ae_array1``), made unique with "_2", "_3"... when two names meet; the OIDs stay in
``forms.parquet`` (form_oid, item_group).

Keys: ``subject_id`` = SubjectKey; ``event`` = the event's REDCap unique event name when the file says
(``redcap:UniqueEventName``), else the StudyEventOID; ``site_id`` = SiteRef/@LocationOID, else REDCap's
``redcap:DataAccessGroup``, else, in a multi-study file (OpenClinica site-level studies), the
ClinicalData/@StudyOID when it is not the first (parent) study.
``repeat_instance`` joins with "." the repeat keys of the levels that repeat, outermost first: the
StudyEventRepeatKey when the event repeats, the FormRepeatKey when the form repeats, and the
ItemGroupRepeatKey for rows of a repeating item group. A level "repeats" when the metadata says so
(StudyEventDef/FormDef/ItemGroupDef Repeating="Yes", or REDCap's RepeatingInstrument/RepeatingEvent
declarations) or when its key is not "1". So a REDCap repeating instrument gives "3", an OpenClinica
repeating event with a repeating group gives "2.1", and a non-repeating form gives null.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as DET
import polars as pl

from .errors import ExportError
from .odm_files import NO_METADATA_NOTE, metadata_from_data
from .odm_meta import REDCAP_DAG_ITEM, OdmMetadata, attrs, item_field_type, local, vendor_attrs
from .odm_state import ParseState, Position, xpath_literal as _q
from .rawzone import (
    PROVENANCE_COLUMNS,
    RESERVED_TABLE_NAMES,
    Extracted,
    TableSink,
    meta_frame,
    table_name,
    unique_table_name,
)

__all__ = ["OdmReader", "item_field_type", "local", "attrs", "vendor_attrs", "read_odm", "odm_frames"]

REDCAP_NS = "https://projectredcap.org"
MAX_DUPLICATE_NOTES = 50  # identical duplicates named one by one in export.json notes
ODM_FILE_ATTRIBUTES = ("ODMVersion", "FileType", "SourceSystem", "SourceSystemVersion", "CreationDateTime")


class OdmReader:
    """Reads one ODM file (``path``) into a raw snapshot; ``metadata``: a second file of the same export holding the
    study's metadata only (OpenEDC writes metadata and clinical data as two files), read first. Without any
    MetaDataVersion (Medidata Rave's ClinicalData-only files) the tables come from the data, every item text."""

    def __init__(self, path: Path, out_dir: Path, *, export_id: str, sha256: str,
                 metadata: Path | None = None) -> None:
        self.path = path
        self.name = path.name
        self.metadata_path = metadata
        self.versions: list[tuple[str, str]] = []  # (StudyOID, MetaDataVersion OID) defined in the export
        self.no_metadata = False
        self.out_dir = out_dir
        self.export_id = export_id
        self.sha256 = sha256
        self.result = Extracted("odm")
        self.meta = OdmMetadata()  # first definition of an OID wins (site-level MetaDataVersions Include the parent's)
        self.studies: list[str] = []
        self.plan_ready = False
        self.repeated_subjects: dict[str, int] = {}  # SubjectKey given in several SubjectData -> how many
        self.duplicates_noted: set[tuple] = set()  # (subject, table, event, repeat) of identical duplicates
        self.duplicate_notes = 0

    # ------------------------------------------------------------------ tables
    def _plan(self) -> None:
        """Decide the tables from the metadata (before the first ClinicalData)."""
        self.plan_ready = True
        self.form_table: dict[str, str] = {}  # FormOID -> table of its merged (non-repeating) groups
        self.split: dict[tuple[str, str], str] = {}  # (FormOID, IG OID) -> table of a repeating group
        self.single_rep: set[str] = set()  # forms whose only group repeats (rows in the form table)
        columns: dict[str, list[str]] = {}
        table_info: dict[str, dict] = {}
        m = self.meta
        forms = sorted(m.form_defs.items(), key=lambda kv: kv[1]["order"])
        # every form's table is named first (in metadata order), so that a repeating group's table never takes
        # the name of a form defined after it; names are SQL- and file-safe and unique (rawzone.table_name)
        taken: set[str] = set()
        form_tables = {foid: unique_table_name(m.form_name(foid), taken) for foid, _ in forms}
        for foid, fd in forms:
            name = form_tables[foid]
            igs = [g for g in fd["igs"] if g]
            rep = [g for g in igs if m.ig_defs.get(g, {}).get("Repeating") == "Yes"]
            nonrep = [g for g in igs if g not in rep]
            self.form_table[foid] = name
            if len(rep) == 1 and not nonrep:
                self.single_rep.add(foid)
                nonrep, rep = rep, []
            columns[name] = m.items_of(nonrep)
            table_info[name] = {"form_oid": foid, "label": fd.get("Name"), "item_group": None,
                                "igs": nonrep, "order": len(table_info) + 1}
            for g in rep:
                tname = table_name(g)
                if tname in taken or tname in RESERVED_TABLE_NAMES:
                    tname = unique_table_name(f"{name}_{g}", taken)
                taken.add(tname)
                self.split[(foid, g)] = tname
                columns[tname] = m.items_of([g])
                table_info[tname] = {"form_oid": foid, "item_group": g, "igs": [g], "order": len(table_info) + 1,
                                     "label": " / ".join(x for x in (fd.get("Name"), m.ig_defs[g].get("Name")) if x)}
        self.columns = columns
        self.table_info = table_info
        coded = {oid for oid, d in m.item_defs.items() if d.get("codelist")}
        self.sinks = {t: TableSink(self.out_dir / f"{t}.parquet", cols, coded) for t, cols in columns.items()}
        self.result.tables = self.sinks
        self.allowed = {t: set(cols) for t, cols in columns.items()}
        self.table_events: dict[str, set[str]] = {t: set() for t in columns}
        self.table_repeating: set[str] = set()

    # ------------------------------------------------------------------ parsing
    def run(self) -> Extracted:
        if self.metadata_path is not None:
            self._read_metadata_file(self.metadata_path)
        self.result.files[self.name] = {"role": "odm"}
        st = self._read(self.path)
        if not self.plan_ready:
            self._plan()
        for s in self.sinks.values():
            s.close()
        if st.n_subjects == 0:
            if not st.clinical and not self.versions:
                raise ExportError(self.name, "no ClinicalData and no MetaDataVersion: the ODM file holds neither "
                                  "records nor metadata")
            if not st.clinical:
                raise ExportError(self.name, "no ClinicalData/SubjectData: the ODM file holds metadata only, no "
                                  "records")
            raise ExportError(self.name, "ClinicalData without SubjectData: the export holds no records")
        if self.repeated_subjects:
            self._check_repeated_subjects()
        if self.duplicate_notes > MAX_DUPLICATE_NOTES:
            self.result.notes.append(f"{self.name}: {self.duplicate_notes - MAX_DUPLICATE_NOTES} more identical "
                                     f"duplicate records ({self.duplicate_notes} in all), all kept")
        self._write_meta(st.subjects_meta)
        return self.result

    def _read(self, path: Path) -> ParseState:
        """Stream one file of the export (``self.name`` is its name meanwhile: errors name it)."""
        st = ParseState()
        try:
            self._parse(st, path)
        except ExportError:
            raise
        except (defusedxml.DefusedXmlException, ParseError) as exc:
            raise self._xml_error(exc) from exc
        if not st.root_checked:
            raise ExportError(self.name, "empty XML document")
        return st

    def _read_metadata_file(self, path: Path) -> None:
        """The export's metadata file, before its data file: its Studies and MetaDataVersions."""
        data_name, self.name = self.name, path.name
        self.result.files[self.name] = {"role": "metadata"}
        st = self._read(path)
        if st.clinical:  # pragma: no cover - land.py pairs a metadata-only file with the data file
            raise ExportError(self.name, "the metadata file of the export holds ClinicalData too")
        if not self.versions:
            raise ExportError(self.name, "no MetaDataVersion: the file holds no metadata for "
                              f"{data_name}")
        self.name = data_name

    def _clinical_data(self, a: dict, location: str) -> None:
        """At a ClinicalData: the tables, planned from the metadata (made from the data when the export has none),
        and the MetaDataVersion it refers to, which a file of the export must define when any defines one."""
        if not self.plan_ready:
            if not self.versions:
                self.meta = metadata_from_data(self.path, self.name)
                self.no_metadata = True
                self.result.notes.append(f"{self.name}: {NO_METADATA_NOTE} (ClinicalData without a MetaDataVersion "
                                         "in the export: forms, item groups and items are those seen in the data)")
            self._plan()
        version = a.get("MetaDataVersionOID")
        defined = [v for _, v in self.versions]
        if defined and version is not None and version not in defined:
            raise ExportError(self.name, f"ClinicalData refers to MetaDataVersion {version!r}, which no file of the "
                              f"export defines (defined: {', '.join(repr(v) for v in defined)})", location=location)

    def _xml_error(self, exc: Exception) -> ExportError:
        """The ExportError for XML that cannot be read, or that defusedxml refuses."""
        if isinstance(exc, defusedxml.DTDForbidden):
            return ExportError(self.name, "the XML declares a DOCTYPE/DTD, which an ODM export never needs; "
                               "refused (no DTD processing, no entity expansion)")
        if isinstance(exc, defusedxml.EntitiesForbidden):
            return ExportError(self.name, f"the XML declares an entity ({exc.name!r}); refused (entity expansion "
                               "attacks)")
        if isinstance(exc, defusedxml.ExternalReferenceForbidden):
            return ExportError(self.name, "the XML references an external resource; refused")
        if isinstance(exc, defusedxml.DefusedXmlException):
            return ExportError(self.name, f"unsafe XML refused: {exc}")
        line, col = getattr(exc, "position", (None, None))
        return ExportError(self.name, f"malformed XML ({exc.msg if hasattr(exc, 'msg') else exc})", location=line)

    def _parse(self, st: ParseState, path: Path) -> None:
        """Stream a file: metadata elements are read when they end, ClinicalData as it goes (elements cleared
        once used, so memory holds one subject)."""
        for ev, el in DET.iterparse(str(path), events=("start", "end"), forbid_dtd=True,
                                    forbid_entities=True, forbid_external=True):
            n = local(el.tag)
            if ev == "start":
                if not st.root_checked:
                    self._check_root(st, el, n)
                st.stack.append(el)
                self._start(st, el, n)
            else:
                st.stack.pop()
                self._end(st, el, n)

    def _check_root(self, st: ParseState, el: Element, n: str) -> None:
        st.root_checked = True
        if n != "ODM":
            raise ExportError(self.name, f"not a CDISC ODM file (root element <{n}>)")
        self.result.files[self.name].update({k: v for k, v in attrs(el).items() if k in ODM_FILE_ATTRIBUTES})

    def _start(self, st: ParseState, el: Element, n: str) -> None:
        a = attrs(el)
        pos = st.pos
        if n == "Study":
            self.studies.append(a.get("OID", ""))
        elif n == "MetaDataVersion":
            self.versions.append((self.studies[-1] if self.studies else "", a.get("OID", "")))
        elif n == "ClinicalData":
            st.clinical = True
            sid = a.get("StudyOID", "")
            self._clinical_data(a, f"/ODM/ClinicalData[@StudyOID={_q(sid)}]")
            multi = len(self.studies) > 1
            st.pos = Position(study=sid, study_site=sid if multi and self.studies and sid != self.studies[0] else None)
        elif n == "SubjectData" and st.clinical:
            self._start_subject(st, el, a)
        elif n == "SiteRef" and pos.subject is not None:
            pos.site = a.get("LocationOID") or pos.site
        elif n == "StudyEventData" and pos.subject is not None:
            oid = a.get("StudyEventOID", "")
            pos.event_oid = oid
            pos.event = a.get("UniqueEventName") or self.meta.event_name(oid)
            pos.event_key = a.get("StudyEventRepeatKey")
            pos.event_path = pos.unique_path(
                pos.subject_path + f"/StudyEventData[@StudyEventOID={_q(oid)}]"
                + (f"[@StudyEventRepeatKey={_q(a['StudyEventRepeatKey'])}]" if "StudyEventRepeatKey" in a else ""))
        elif n == "FormData" and pos.subject is not None:
            self._start_form(pos, a)
        elif n == "ItemGroupData" and pos.form is not None:
            oid = a.get("ItemGroupOID", "")
            key = a.get("ItemGroupRepeatKey")
            pos.ig, pos.ig_key, pos.ig_values = oid, key, {}
            pos.ig_path = pos.unique_path(pos.form_path + f"/ItemGroupData[@ItemGroupOID={_q(oid)}]"
                                          + (f"[@ItemGroupRepeatKey={_q(key)}]" if key is not None else ""))

    def _start_subject(self, st: ParseState, el: Element, a: dict) -> None:
        pos = st.pos
        st.n_subjects += 1
        key = a.get("SubjectKey")
        if key is None:
            raise ExportError(self.name, "SubjectData without SubjectKey", location=pos.path())
        va = vendor_attrs(el)
        subject_path = f"/ODM/ClinicalData[@StudyOID={_q(pos.study)}]/SubjectData[@SubjectKey={_q(key)}]"
        if key in st.subjects_meta:  # given again: its n-th SubjectData, as XPath counts
            self.repeated_subjects[key] = self.repeated_subjects.get(key, 1) + 1
            subject_path += f"[{self.repeated_subjects[key]}]"
        pos.subject, pos.site = key, a.get("DataAccessGroup") or pos.study_site
        pos.pending, pos.seen, pos.path_counts, pos.subject_path = [], {}, {}, subject_path
        label = va.get("StudySubjectID") or va.get("UniqueIdentifier")
        st.subjects_meta.setdefault(key, {"subject_id": key, "label": label,
                                          "attributes": json.dumps(va, ensure_ascii=False) if va else None})

    def _end(self, st: ParseState, el: Element, n: str) -> None:
        pos, stack = st.pos, st.stack
        if n.startswith("ItemData") and pos.ig is not None:
            self._item(pos, el, n)
        elif n == "ItemGroupData" and pos.ig is not None:
            self._end_ig(pos)
            el.clear()
        elif n == "FormData" and pos.form is not None:
            self._end_form(pos)
            el.clear()
        elif n == "StudyEventData":
            pos.end_event()
            el.clear()
        elif n == "SubjectData" and pos.subject is not None:
            self._end_subject(st)
            el.clear()
            if stack:
                stack[-1].remove(el)
        elif n == "ClinicalData":
            el.clear()
            if stack:
                stack[-1].remove(el)
        elif n == "GlobalVariables":
            self.meta.global_variables(el)
        elif n == "BasicDefinitions":
            self.meta.basic_definitions(el)
        elif n == "MetaDataVersion":
            self.meta.metadata_version(el)
            el.clear()
        elif n in ("Study", "AdminData", "ReferenceData") and stack:
            el.clear()
            stack[-1].remove(el)

    def _end_subject(self, st: ParseState) -> None:
        """The subject's rows go to their tables, with the site given anywhere in the subject."""
        pos = st.pos
        st.subjects_meta[pos.subject].setdefault("site_id", pos.site)
        for table, row in pos.pending:
            if row["site_id"] is None:
                row["site_id"] = pos.site
            self.sinks[table].append(row)
        pos.end_subject()

    def _start_form(self, pos: Position, a: dict) -> None:
        foid = a.get("FormOID", "")
        if foid not in self.form_table:
            raise ExportError(self.name, f"FormOID {foid!r} is not defined in the MetaDataVersion",
                              location=pos.event_path or pos.subject_path)
        key = a.get("FormRepeatKey")
        base = pos.event_path or pos.subject_path
        pos.form, pos.form_key, pos.form_values, pos.form_value_paths = foid, key, {}, {}
        pos.form_path = pos.unique_path(base + f"/FormData[@FormOID={_q(foid)}]"
                                        + (f"[@FormRepeatKey={_q(key)}]" if key is not None else ""))

    def _event_part(self, pos: Position) -> str | None:
        key = pos.event_key
        if key is None:
            return None
        oid = pos.event_oid if pos.event_oid is not None else ""
        declared = self.meta.event_defs.get(oid, {}).get("Repeating") == "Yes" or \
            pos.event in self.meta.redcap_repeating_events
        return key if declared or key != "1" else None

    def _form_part(self, pos: Position) -> str | None:
        key = pos.form_key
        if key is None:
            return None
        foid = pos.form
        fd = self.meta.form_defs.get(foid, {})
        declared = fd.get("Repeating") == "Yes"
        evs = self.meta.redcap_repeating_forms.get(fd.get("FormName") or self.meta.form_name(foid))
        if evs is not None and (pos.event is None or pos.event in evs):
            declared = True
        return key if declared or key != "1" else None

    def _item(self, pos: Position, el: Element, n: str) -> None:
        a = attrs(el)
        oid = a.get("ItemOID", "")
        if a.get("IsNull") == "Yes":
            value = None
        elif n == "ItemData":
            value = a.get("Value")
            if value is None and el.text is not None and el.text.strip():
                value = el.text
        elif n == "ItemDataBase64Binary":
            value = a.get("DocName") or el.text
        else:  # ODM 1.3.2 typed ItemData (ItemDataString, ItemDataInteger, ...)
            value = el.text
        el.clear()
        if value == "":
            value = None
        if oid == REDCAP_DAG_ITEM:
            if value is not None:
                pos.site = value
            return
        vals = pos.ig_values
        if oid in vals:
            raise ExportError(self.name, "item given twice in one item group", location=pos.ig_path, field=oid)
        vals[oid] = value

    def _emit(self, table: str, pos: Position, parts: list[str | None], values: dict, path: str) -> None:
        allowed = self.allowed[table]
        for oid in values:
            if oid not in allowed:
                raise ExportError(self.name, f"item is not declared in the metadata of table {table!r} "
                                  "(dictionary and data do not match)", location=path, field=oid)
        repeat = ".".join(p for p in parts if p is not None) or None
        # duplicate keys: checked within the subject's SubjectData (memory bounded by one subject); a
        # subject given in several SubjectData elements is checked again over the tables at the end
        key = (table, pos.event, repeat)
        given = {k: v for k, v in values.items() if v is not None}
        seen = pos.seen
        if key in seen:
            first_path, first = seen[key]
            where = f"(table {table!r}, subject {pos.subject!r}, event {key[1]!r}, repeat {repeat!r})"
            if given != first:
                col = next(c for c in dict.fromkeys([*first, *given]) if first.get(c) != given.get(c))
                raise ExportError(self.name, f"duplicate record key {where} with different values: {col} is "
                                  f"{_shown(first.get(col))} at {first_path} and {_shown(given.get(col))} here",
                                  location=path, field=col)
            self._identical_duplicate(where, [first_path, path], (pos.subject,) + key)
        else:
            seen[key] = (path, given)
        if repeat is not None:
            self.table_repeating.add(table)
        if pos.event is not None:
            self.table_events[table].add(pos.event)
        row = dict(values)
        row.update(subject_id=pos.subject, event=pos.event, repeat_instance=repeat,
                   site_id=pos.site, _export_id=self.export_id, _source_file=self.name,
                   _source_row=None, _source_path=path, _file_sha256=self.sha256)
        # rows wait for the end of their SubjectData: a site given later in the subject (REDCap's DAG
        # item) applies to all of them; memory is bounded by one subject's data
        pos.pending.append((table, row))

    def _identical_duplicate(self, where: str, paths: list[str], key: tuple) -> None:
        """Rows with the same key and the same values (only the XML path differs): all kept, and noted."""
        if key in self.duplicates_noted:
            return
        self.duplicates_noted.add(key)
        self.duplicate_notes += 1
        if self.duplicate_notes <= MAX_DUPLICATE_NOTES:
            self.result.notes.append(f"{self.name}: identical duplicate record {where} at " + " and ".join(paths)
                                     + ": every value is the same, all kept")

    def _check_repeated_subjects(self) -> None:
        """Duplicate keys across the SubjectData elements of a subject given more than once (read back
        from the tables written, for those subjects only)."""
        subjects = sorted(self.repeated_subjects)
        keys = ["subject_id", "event", "repeat_instance"]
        for table, sink in self.sinks.items():
            df = pl.scan_parquet(sink.path).filter(pl.col("subject_id").is_in(subjects)).collect()
            if df.height < 2:
                continue
            dup = df.filter(pl.struct(keys).is_duplicated())
            values = [c for c in df.columns if c not in PROVENANCE_COLUMNS and c not in keys]
            for (sid, event, repeat), rows in dup.group_by(keys, maintain_order=True):
                first = {c: v for c, v in rows.row(0, named=True).items() if c in values and v is not None}
                where = f"(table {table!r}, subject {sid!r}, event {event!r}, repeat {repeat!r})"
                paths = rows.get_column("_source_path").to_list()
                for k in range(1, rows.height):
                    given = {c: v for c, v in rows.row(k, named=True).items() if c in values and v is not None}
                    if given != first:
                        col = next(c for c in dict.fromkeys([*first, *given]) if first.get(c) != given.get(c))
                        raise ExportError(self.name, f"duplicate record key {where} with different values: {col} "
                                          f"is {_shown(first.get(col))} at {paths[0]} and {_shown(given.get(col))} here",
                                          location=paths[k], field=col)
                self._identical_duplicate(where, paths, (sid, table, event, repeat))

    def _end_ig(self, pos: Position) -> None:
        foid, ig = pos.form, pos.ig
        values, path, key = pos.ig_values, pos.ig_path, pos.ig_key
        pos.ig = pos.ig_key = pos.ig_path = None
        pos.ig_values = {}
        split = self.split.get((foid, ig))
        if split is not None or foid in self.single_rep:
            table = split or self.form_table[foid]
            self._emit(table, pos, [self._event_part(pos), self._form_part(pos), key], values, path)
            return
        merged, paths = pos.form_values, pos.form_value_paths
        for oid, v in values.items():
            if oid in merged:
                raise ExportError(self.name, f"item given twice in one form instance (also at {paths[oid]})",
                                  location=path, field=oid)
            merged[oid] = v
            paths[oid] = path

    def _end_form(self, pos: Position) -> None:
        values, path = pos.form_values, pos.form_path
        pos.form_values, pos.form_value_paths, pos.form_path = {}, {}, None
        if values:
            self._emit(self.form_table[pos.form], pos, [self._event_part(pos), self._form_part(pos)], values, path)
        pos.form = pos.form_key = None

    # ------------------------------------------------------------------ metadata tables
    def _write_meta(self, subjects_meta: dict[str, dict]) -> None:
        m = self.meta
        self.result.meta = {
            "items": meta_frame("items", m.item_rows(self.table_info)),
            "choices": meta_frame("choices", m.choice_rows()),
            "events": meta_frame("events", m.event_rows()),
            "forms": meta_frame("forms", m.form_rows(self.table_info, self.table_events, self.table_repeating,
                                                     self.single_rep)),
            "subjects": meta_frame("subjects", subjects_meta.values()),
        }


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


def read_odm(path: Path, out_dir: Path, *, export_id: str = "", sha256: str = "",
             metadata: Path | None = None) -> Extracted:
    """Read one ODM file (with the export's metadata file, if separate) into ``out_dir`` (one Parquet per table);
    metadata frames in the result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return OdmReader(Path(path), out_dir, export_id=export_id, sha256=sha256,
                     metadata=Path(metadata) if metadata is not None else None).run()


def odm_frames(path: Path, out_dir: Path) -> dict[str, pl.DataFrame]:
    """Convenience for tests and comparisons: read an ODM file and return its raw tables as frames."""
    res = read_odm(path, out_dir)
    return {t: pl.read_parquet(out_dir / f"{t}.parquet") for t in res.tables}
