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
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as DET
import polars as pl

from .errors import ExportError
from .rawzone import (
    PROVENANCE_COLUMNS,
    RESERVED_TABLE_NAMES,
    Extracted,
    TableSink,
    meta_frame,
    table_name,
    unique_table_name,
)

REDCAP_NS = "https://projectredcap.org"
MAX_DUPLICATE_NOTES = 50  # identical duplicates named one by one in export.json notes
REDCAP_DAG_ITEM = "redcap_data_access_group"  # REDCap puts the DAG in the first form: it is site_id


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag.split(":")[-1]


def attrs(el: Element) -> dict[str, str]:
    """Attributes by local name (vendor extensions included: 'redcap:FormName' -> 'FormName')."""
    out = {}
    for k, v in el.attrib.items():
        name = local(k)
        out.setdefault(name, v)
    return out


def vendor_attrs(el: Element) -> dict[str, str]:
    return {local(k): v for k, v in el.attrib.items() if k.startswith("{")}


def _q(v: str) -> str:
    return f'"{v}"' if "'" in v else f"'{v}'"


def _text(el: Element | None) -> str | None:
    """The first TranslatedText under an element (or its own text)."""
    if el is None:
        return None
    for sub in el.iter():
        if local(sub.tag) == "TranslatedText" and sub.text is not None:
            return sub.text.strip()
    return el.text.strip() if el.text and el.text.strip() else None


def _child(el: Element, name: str) -> Element | None:
    for sub in el:
        if local(sub.tag) == name:
            return sub
    return None


class OdmReader:
    def __init__(self, path: Path, out_dir: Path, *, export_id: str, sha256: str) -> None:
        self.path = path
        self.name = path.name
        self.out_dir = out_dir
        self.export_id = export_id
        self.sha256 = sha256
        self.result = Extracted("odm")
        # metadata, first definition of an OID wins (site-level MetaDataVersions Include the parent's)
        self.event_defs: dict[str, dict] = {}
        self.form_defs: dict[str, dict] = {}
        self.ig_defs: dict[str, dict] = {}
        self.item_defs: dict[str, dict] = {}
        self.codelists: dict[str, dict] = {}
        self.units: dict[str, str] = {}
        self.redcap_repeating_forms: dict[str, set[str | None]] = {}
        self.redcap_repeating_events: set[str] = set()
        self.studies: list[str] = []
        self.plan_ready = False
        self.repeated_subjects: dict[str, int] = {}  # SubjectKey given in several SubjectData -> how many
        self.duplicates_noted: set[tuple] = set()  # (subject, table, event, repeat) of identical duplicates
        self.duplicate_notes = 0

    # ------------------------------------------------------------------ metadata
    def _global_variables(self, el: Element) -> None:
        for sub in el.iter():
            n = local(sub.tag)
            a = attrs(sub)
            if n == "RepeatingInstrument":
                self.redcap_repeating_forms.setdefault(a.get("RepeatInstrument", ""), set()).add(
                    a.get("UniqueEventName"))
            elif n == "RepeatingEvent":
                self.redcap_repeating_events.add(a.get("UniqueEventName", ""))

    def _basic_definitions(self, el: Element) -> None:
        for sub in el:
            if local(sub.tag) == "MeasurementUnit":
                a = attrs(sub)
                self.units.setdefault(a.get("OID", ""), _text(_child(sub, "Symbol")) or a.get("Name", ""))

    def _metadata_version(self, el: Element) -> None:
        for sub in el:
            n, a = local(sub.tag), attrs(sub)
            oid = a.get("OID")
            if oid is None:
                continue
            if n == "StudyEventDef" and oid not in self.event_defs:
                a["forms"] = [attrs(r).get("FormOID") for r in sub if local(r.tag) == "FormRef"]
                a["order"] = len(self.event_defs) + 1
                self.event_defs[oid] = a
            elif n == "FormDef" and oid not in self.form_defs:
                a["igs"] = [attrs(r).get("ItemGroupOID") for r in sub if local(r.tag) == "ItemGroupRef"]
                a["order"] = len(self.form_defs) + 1
                self.form_defs[oid] = a
            elif n == "ItemGroupDef" and oid not in self.ig_defs:
                a["items"] = [attrs(r) for r in sub if local(r.tag) == "ItemRef"]
                self.ig_defs[oid] = a
            elif n == "ItemDef" and oid not in self.item_defs:
                a["label"] = _text(_child(sub, "Question"))
                a["description"] = _text(_child(sub, "Description"))
                mu = _child(sub, "MeasurementUnitRef")
                a["unit_oid"] = attrs(mu).get("MeasurementUnitOID") if mu is not None else None
                cl = _child(sub, "CodeListRef")
                a["codelist"] = attrs(cl).get("CodeListOID") if cl is not None else None
                for rc in sub:
                    if local(rc.tag) != "RangeCheck":
                        continue
                    ra = attrs(rc)
                    vals = [v.text for v in rc if local(v.tag) == "CheckValue" and v.text is not None]
                    if not vals:
                        continue
                    if ra.get("Comparator") in ("GE", "GT"):
                        a["min"] = vals[0]
                    elif ra.get("Comparator") in ("LE", "LT"):
                        a["max"] = vals[0]
                self.item_defs[oid] = a
            elif n == "CodeList" and oid not in self.codelists:
                items = []
                for ci in sub:
                    cn = local(ci.tag)
                    if cn in ("CodeListItem", "EnumeratedItem"):
                        items.append((attrs(ci).get("CodedValue", ""), _text(_child(ci, "Decode"))
                                      if cn == "CodeListItem" else attrs(ci).get("CodedValue", "")))
                a["items"] = items
                self.codelists[oid] = a

    def _form_name(self, oid: str) -> str:
        """The form's name as the export gives it: REDCap's ``redcap:FormName``, else the FormOID without a
        ``Form.`` prefix (its table's name is this name under `rawzone.table_name`, made unique in `_plan`)."""
        fd = self.form_defs.get(oid, {})
        return fd.get("FormName") or (oid[5:] if oid.startswith("Form.") else oid)

    def _event_name(self, oid: str) -> str:
        return self.event_defs.get(oid, {}).get("UniqueEventName") or oid

    def _plan(self) -> None:
        """Decide the tables from the metadata (before the first ClinicalData)."""
        self.plan_ready = True
        self.form_table: dict[str, str] = {}  # FormOID -> table of its merged (non-repeating) groups
        self.split: dict[tuple[str, str], str] = {}  # (FormOID, IG OID) -> table of a repeating group
        self.single_rep: set[str] = set()  # forms whose only group repeats (rows in the form table)
        columns: dict[str, list[str]] = {}
        table_info: dict[str, dict] = {}
        forms = sorted(self.form_defs.items(), key=lambda kv: kv[1]["order"])
        # every form's table is named first (in metadata order), so that a repeating group's table never takes
        # the name of a form defined after it; names are SQL- and file-safe and unique (rawzone.table_name)
        taken: set[str] = set()
        form_tables = {foid: unique_table_name(self._form_name(foid), taken) for foid, _ in forms}
        for foid, fd in forms:
            name = form_tables[foid]
            igs = [g for g in fd["igs"] if g]
            rep = [g for g in igs if self.ig_defs.get(g, {}).get("Repeating") == "Yes"]
            nonrep = [g for g in igs if g not in rep]
            self.form_table[foid] = name
            if len(rep) == 1 and not nonrep:
                self.single_rep.add(foid)
                nonrep, rep = rep, []
            columns[name] = self._items_of(nonrep)
            table_info[name] = {"form_oid": foid, "label": fd.get("Name"), "item_group": None,
                                "igs": nonrep, "order": len(table_info) + 1}
            for g in rep:
                tname = table_name(g)
                if tname in taken or tname in RESERVED_TABLE_NAMES:
                    tname = unique_table_name(f"{name}_{g}", taken)
                taken.add(tname)
                self.split[(foid, g)] = tname
                columns[tname] = self._items_of([g])
                table_info[tname] = {"form_oid": foid, "item_group": g, "igs": [g], "order": len(table_info) + 1,
                                     "label": " / ".join(x for x in (fd.get("Name"), self.ig_defs[g].get("Name")) if x)}
        self.columns = columns
        self.table_info = table_info
        coded = {oid for oid, d in self.item_defs.items() if d.get("codelist")}
        self.sinks = {t: TableSink(self.out_dir / f"{t}.parquet", cols, coded) for t, cols in columns.items()}
        self.result.tables = self.sinks
        self.allowed = {t: set(cols) for t, cols in columns.items()}
        self.table_events: dict[str, set[str]] = {t: set() for t in columns}
        self.table_repeating: set[str] = set()

    def _items_of(self, igs: list[str]) -> list[str]:
        out: dict[str, None] = {}
        for g in igs:
            for ref in self.ig_defs.get(g, {}).get("items", []):
                if ref.get("ItemOID") and ref["ItemOID"] != REDCAP_DAG_ITEM:
                    out[ref["ItemOID"]] = None
        return list(out)

    # ------------------------------------------------------------------ parsing
    def run(self) -> Extracted:
        self.result.files[self.name] = {"role": "odm"}
        stack: list[Element] = []
        ctx: dict[str, Any] = {}
        subjects_meta: dict[str, dict] = {}
        n_subjects = 0
        clinical = False
        root_checked = False
        try:
            for ev, el in DET.iterparse(str(self.path), events=("start", "end"), forbid_dtd=True,
                                        forbid_entities=True, forbid_external=True):
                n = local(el.tag)
                if ev == "start":
                    if not root_checked:
                        root_checked = True
                        if n != "ODM":
                            raise ExportError(self.name, f"not a CDISC ODM file (root element <{n}>)")
                        self.result.files[self.name].update(
                            {k: v for k, v in attrs(el).items() if k in ("ODMVersion", "FileType", "SourceSystem",
                                                                          "SourceSystemVersion", "CreationDateTime")})
                    stack.append(el)
                    a = attrs(el)
                    if n == "Study":
                        self.studies.append(a.get("OID", ""))
                    elif n == "ClinicalData":
                        clinical = True
                        if not self.plan_ready:
                            self._plan()
                        sid = a.get("StudyOID", "")
                        multi = len(self.studies) > 1
                        ctx = {"study": sid, "clinical_el": el,
                               "study_site": sid if multi and self.studies and sid != self.studies[0] else None}
                    elif n == "SubjectData" and clinical:
                        n_subjects += 1
                        key = a.get("SubjectKey")
                        if key is None:
                            raise ExportError(self.name, "SubjectData without SubjectKey", location=self._path(ctx))
                        va = vendor_attrs(el)
                        subject_path = (f"/ODM/ClinicalData[@StudyOID={_q(ctx['study'])}]"
                                        f"/SubjectData[@SubjectKey={_q(key)}]")
                        if key in subjects_meta:  # given again: its n-th SubjectData, as XPath counts
                            self.repeated_subjects[key] = self.repeated_subjects.get(key, 1) + 1
                            subject_path += f"[{self.repeated_subjects[key]}]"
                        ctx.update(subject=key, site=a.get("DataAccessGroup") or ctx.get("study_site"), pending=[],
                                   seen={}, path_counts={}, subject_path=subject_path)
                        label = va.get("StudySubjectID") or va.get("UniqueIdentifier")
                        subjects_meta.setdefault(key, {"subject_id": key, "label": label,
                                                       "attributes": json.dumps(va, ensure_ascii=False) if va else None})
                    elif n == "SiteRef" and "subject" in ctx:
                        ctx["site"] = a.get("LocationOID") or ctx.get("site")
                    elif n == "StudyEventData" and "subject" in ctx:
                        oid = a.get("StudyEventOID", "")
                        ctx.update(event_oid=oid, event=a.get("UniqueEventName") or self._event_name(oid),
                                   event_key=a.get("StudyEventRepeatKey"),
                                   event_path=self._unique_path(
                                       ctx, ctx["subject_path"] + f"/StudyEventData[@StudyEventOID={_q(oid)}]"
                                       + (f"[@StudyEventRepeatKey={_q(a['StudyEventRepeatKey'])}]"
                                          if "StudyEventRepeatKey" in a else "")))
                    elif n == "FormData" and "subject" in ctx:
                        self._start_form(ctx, a)
                    elif n == "ItemGroupData" and "form" in ctx:
                        oid = a.get("ItemGroupOID", "")
                        key = a.get("ItemGroupRepeatKey")
                        ctx.update(ig=oid, ig_key=key, ig_values={},
                                   ig_path=self._unique_path(
                                       ctx, ctx["form_path"] + f"/ItemGroupData[@ItemGroupOID={_q(oid)}]"
                                       + (f"[@ItemGroupRepeatKey={_q(key)}]" if key is not None else "")))
                    continue
                # end events
                stack.pop()
                if n.startswith("ItemData") and "ig" in ctx:
                    self._item(ctx, el, n)
                elif n == "ItemGroupData" and "ig" in ctx:
                    self._end_ig(ctx)
                    el.clear()
                elif n == "FormData" and "form" in ctx:
                    self._end_form(ctx)
                    el.clear()
                elif n == "StudyEventData":
                    for k in ("event_oid", "event", "event_key", "event_path"):
                        ctx.pop(k, None)
                    el.clear()
                elif n == "SubjectData" and "subject" in ctx:
                    subjects_meta[ctx["subject"]].setdefault("site_id", ctx.get("site"))
                    for table, row in ctx["pending"]:
                        if row["site_id"] is None:
                            row["site_id"] = ctx.get("site")
                        self.sinks[table].append(row)
                    for k in ("subject", "site", "subject_path", "pending", "seen", "path_counts"):
                        ctx.pop(k, None)
                    el.clear()
                    if stack:
                        stack[-1].remove(el)
                elif n == "ClinicalData":
                    el.clear()
                    if stack:
                        stack[-1].remove(el)
                elif n == "GlobalVariables":
                    self._global_variables(el)
                elif n == "BasicDefinitions":
                    self._basic_definitions(el)
                elif n == "MetaDataVersion":
                    self._metadata_version(el)
                    el.clear()
                elif n in ("Study", "AdminData", "ReferenceData") and stack:
                    el.clear()
                    stack[-1].remove(el)
        except ExportError:
            raise
        except defusedxml.DTDForbidden as exc:
            raise ExportError(self.name, "the XML declares a DOCTYPE/DTD, which an ODM export never needs; "
                              "refused (no DTD processing, no entity expansion)") from exc
        except defusedxml.EntitiesForbidden as exc:
            raise ExportError(self.name, f"the XML declares an entity ({exc.name!r}); refused (entity expansion "
                              "attacks)") from exc
        except defusedxml.ExternalReferenceForbidden as exc:
            raise ExportError(self.name, "the XML references an external resource; refused") from exc
        except defusedxml.DefusedXmlException as exc:
            raise ExportError(self.name, f"unsafe XML refused: {exc}") from exc
        except ParseError as exc:
            line, col = getattr(exc, "position", (None, None))
            raise ExportError(self.name, f"malformed XML ({exc.msg if hasattr(exc, 'msg') else exc})",
                              location=line) from exc
        if not root_checked:
            raise ExportError(self.name, "empty XML document")
        if not self.plan_ready:
            self._plan()
        for s in self.sinks.values():
            s.close()
        if n_subjects == 0:
            raise ExportError(self.name, "no ClinicalData/SubjectData: the ODM file holds metadata only, no records")
        if self.repeated_subjects:
            self._check_repeated_subjects()
        if self.duplicate_notes > MAX_DUPLICATE_NOTES:
            self.result.notes.append(f"{self.name}: {self.duplicate_notes - MAX_DUPLICATE_NOTES} more identical "
                                     f"duplicate records ({self.duplicate_notes} in all), all kept")
        self._write_meta(subjects_meta)
        return self.result

    def _path(self, ctx: dict) -> str:
        return ctx.get("ig_path") or ctx.get("form_path") or ctx.get("event_path") or ctx.get("subject_path") or "/ODM"

    def _start_form(self, ctx: dict, a: dict) -> None:
        foid = a.get("FormOID", "")
        if foid not in self.form_table:
            raise ExportError(self.name, f"FormOID {foid!r} is not defined in the MetaDataVersion",
                              location=ctx.get("event_path") or ctx["subject_path"])
        key = a.get("FormRepeatKey")
        base = ctx.get("event_path") or ctx["subject_path"]
        ctx.update(form=foid, form_key=key, form_values={}, form_value_paths={},
                   form_path=self._unique_path(ctx, base + f"/FormData[@FormOID={_q(foid)}]"
                                               + (f"[@FormRepeatKey={_q(key)}]" if key is not None else "")))

    @staticmethod
    def _unique_path(ctx: dict, path: str) -> str:
        """An element's path, with XPath's position ``[n]`` when an identical path came before in the
        subject (a FormData given twice with the same keys): every row keeps a location of its own."""
        counts = ctx["path_counts"]
        n = counts[path] = counts.get(path, 0) + 1
        return path if n == 1 else f"{path}[{n}]"

    def _event_part(self, ctx: dict) -> str | None:
        key = ctx.get("event_key")
        if key is None:
            return None
        oid = ctx.get("event_oid", "")
        declared = self.event_defs.get(oid, {}).get("Repeating") == "Yes" or \
            ctx.get("event") in self.redcap_repeating_events
        return key if declared or key != "1" else None

    def _form_part(self, ctx: dict) -> str | None:
        key = ctx.get("form_key")
        if key is None:
            return None
        foid = ctx["form"]
        fd = self.form_defs.get(foid, {})
        declared = fd.get("Repeating") == "Yes"
        evs = self.redcap_repeating_forms.get(fd.get("FormName") or self._form_name(foid))
        if evs is not None and (ctx.get("event") is None or ctx.get("event") in evs):
            declared = True
        return key if declared or key != "1" else None

    def _item(self, ctx: dict, el: Element, n: str) -> None:
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
                ctx["site"] = value
            return
        vals = ctx["ig_values"]
        if oid in vals:
            raise ExportError(self.name, "item given twice in one item group", location=ctx["ig_path"], field=oid)
        vals[oid] = value

    def _emit(self, table: str, ctx: dict, parts: list[str | None], values: dict, path: str) -> None:
        allowed = self.allowed[table]
        for oid in values:
            if oid not in allowed:
                raise ExportError(self.name, f"item is not declared in the metadata of table {table!r} "
                                  "(dictionary and data do not match)", location=path, field=oid)
        repeat = ".".join(p for p in parts if p is not None) or None
        # duplicate keys: checked within the subject's SubjectData (memory bounded by one subject); a
        # subject given in several SubjectData elements is checked again over the tables at the end
        key = (table, ctx.get("event"), repeat)
        given = {k: v for k, v in values.items() if v is not None}
        seen = ctx["seen"]
        if key in seen:
            first_path, first = seen[key]
            where = f"(table {table!r}, subject {ctx['subject']!r}, event {key[1]!r}, repeat {repeat!r})"
            if given != first:
                col = next(c for c in dict.fromkeys([*first, *given]) if first.get(c) != given.get(c))
                raise ExportError(self.name, f"duplicate record key {where} with different values: {col} is "
                                  f"{_shown(first.get(col))} at {first_path} and {_shown(given.get(col))} here",
                                  location=path, field=col)
            self._identical_duplicate(where, [first_path, path], (ctx["subject"],) + key)
        else:
            seen[key] = (path, given)
        if repeat is not None:
            self.table_repeating.add(table)
        if ctx.get("event") is not None:
            self.table_events[table].add(ctx["event"])
        row = dict(values)
        row.update(subject_id=ctx["subject"], event=ctx.get("event"), repeat_instance=repeat,
                   site_id=ctx.get("site"), _export_id=self.export_id, _source_file=self.name,
                   _source_row=None, _source_path=path, _file_sha256=self.sha256)
        # rows wait for the end of their SubjectData: a site given later in the subject (REDCap's DAG
        # item) applies to all of them; memory is bounded by one subject's data
        ctx["pending"].append((table, row))

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

    def _end_ig(self, ctx: dict) -> None:
        foid, ig = ctx["form"], ctx["ig"]
        values = ctx.pop("ig_values")
        path = ctx.pop("ig_path")
        key = ctx.pop("ig_key")
        ctx.pop("ig")
        split = self.split.get((foid, ig))
        if split is not None or foid in self.single_rep:
            table = split or self.form_table[foid]
            self._emit(table, ctx, [self._event_part(ctx), self._form_part(ctx), key], values, path)
            return
        merged, paths = ctx["form_values"], ctx["form_value_paths"]
        for oid, v in values.items():
            if oid in merged:
                raise ExportError(self.name, f"item given twice in one form instance (also at {paths[oid]})",
                                  location=path, field=oid)
            merged[oid] = v
            paths[oid] = path

    def _end_form(self, ctx: dict) -> None:
        values = ctx.pop("form_values")
        ctx.pop("form_value_paths")
        path = ctx.pop("form_path")
        if values:
            self._emit(self.form_table[ctx["form"]], ctx, [self._event_part(ctx), self._form_part(ctx)], values, path)
        ctx.pop("form")
        ctx.pop("form_key")

    # ------------------------------------------------------------------ metadata tables
    def _write_meta(self, subjects_meta: dict[str, dict]) -> None:
        items, choices = [], []
        order = 0
        for table, info in self.table_info.items():
            for g in info["igs"]:
                for ref in self.ig_defs.get(g, {}).get("items", []):
                    oid = ref.get("ItemOID")
                    if oid == REDCAP_DAG_ITEM:
                        continue
                    d = self.item_defs.get(oid, {})
                    order += 1
                    cl = self.codelists.get(d.get("codelist") or "", {})
                    raw = cl.get("CheckboxChoices")
                    variable = d.get("Variable") or oid
                    code = label = None
                    if raw is not None and "___" in oid:  # REDCap checkbox column: its own choice
                        suffix = oid.rsplit("___", 1)[1]
                        for c, lab in _parse_choices(raw):
                            if c.lower() == suffix or _suffix(c) == suffix:
                                code, label = c, lab
                    elif cl.get("items"):
                        raw = " | ".join(f"{c}, {lab}" for c, lab in cl["items"])
                    items.append({
                        "form": table, "item": oid, "label": d.get("label") or d.get("description") or d.get("Name"),
                        "field_type": item_field_type(d, cl), "validation": d.get("TextValidationType"),
                        "min": d.get("min"), "max": d.get("max"),
                        "units": self.units.get(d.get("unit_oid") or "") or d.get("unit_oid"),
                        "identifier": (d.get("Identifier") or "").lower() == "y",
                        "choices": raw, "required": ref.get("Mandatory") == "Yes" or d.get("RequiredField") == "y",
                        "order": order, "variable": variable, "choice_code": code, "choice_label": label,
                        "data_type": d.get("DataType"), "length": d.get("Length"), "field_note": d.get("FieldNote"),
                        "section_header": d.get("SectionHeader"), "branching_logic": d.get("BranchingLogic"),
                        "calculation": d.get("Calculation"), "annotation": d.get("FieldAnnotation"),
                        "codelist": d.get("codelist"), "item_group": g})
        done_choice_items: set[str] = set()
        for oid, cl in self.codelists.items():
            raw = cl.get("CheckboxChoices")
            if raw is not None:
                var = cl.get("Variable") or oid
                if var in done_choice_items:
                    continue
                done_choice_items.add(var)
                for k, (c, lab) in enumerate(_parse_choices(raw), 1):
                    choices.append({"item": var, "code": c, "label": lab, "order": k})
        for oid, d in self.item_defs.items():
            cl = self.codelists.get(d.get("codelist") or "")
            if cl is None or cl.get("CheckboxChoices") is not None or oid in done_choice_items:
                continue
            done_choice_items.add(oid)
            for k, (c, lab) in enumerate(cl.get("items", []), 1):
                choices.append({"item": oid, "code": c, "label": lab, "order": k})
        events = []
        for oid, d in sorted(self.event_defs.items(), key=lambda kv: kv[1]["order"]):
            name = d.get("UniqueEventName") or oid
            events.append({"event": name, "label": d.get("EventName") or d.get("Name"), "arm": d.get("ArmNum"),
                           "arm_label": d.get("ArmName"), "day_offset": d.get("DayOffset"), "order": d["order"],
                           "repeating": d.get("Repeating") == "Yes" or name in self.redcap_repeating_events,
                           "event_oid": oid})
        form_events: dict[str, set[str]] = {}
        for oid, d in self.event_defs.items():
            for f in d.get("forms", []):
                form_events.setdefault(f, set()).add(d.get("UniqueEventName") or oid)
        forms = []
        for table, info in self.table_info.items():
            foid = info["form_oid"]
            fd = self.form_defs.get(foid, {})
            declared = fd.get("Repeating") == "Yes" or self._form_name(foid) in self.redcap_repeating_forms \
                or info["item_group"] is not None or foid in self.single_rep
            evs = form_events.get(foid) or self.table_events[table]
            forms.append({"form": table, "label": info["label"], "form_oid": foid, "item_group": info["item_group"],
                          "repeating": declared or table in self.table_repeating, "events": sorted(evs),
                          "order": info["order"]})
        self.result.meta = {"items": meta_frame("items", items), "choices": meta_frame("choices", choices),
                            "events": meta_frame("events", events), "forms": meta_frame("forms", forms),
                            "subjects": meta_frame("subjects", subjects_meta.values())}


def item_field_type(item_def: dict, codelist: dict) -> str | None:
    """The field type staging types an ODM item by: REDCap's own (``redcap:FieldType``) when the file says, else
    ``boolean`` for a yes/no item, else the ODM DataType.

    A yes/no item is one whose DataType is ``boolean`` or whose CodeList is (REDCap writes its yesno and truefalse
    code lists with DataType="boolean"): without this the item would be a coded text '0'/'1' from ODM where the
    REDCap CSV of the same study gives a boolean, and the same study would stage differently by format. A REDCap
    checkbox column's code list (``redcap:CheckboxChoices``) is a checkbox, not a yes/no item."""
    if item_def.get("FieldType"):
        return item_def["FieldType"]
    if codelist.get("CheckboxChoices") is not None:
        return "checkbox"
    data_type = item_def.get("DataType")
    if (data_type or "").lower() == "boolean" or (codelist.get("DataType") or "").lower() == "boolean":
        return "boolean"
    return data_type


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


def _parse_choices(raw: str) -> list[tuple[str, str]]:
    from .redcap import parse_choices
    return parse_choices(raw)


def _suffix(code: str) -> str:
    from .redcap import checkbox_suffix
    return checkbox_suffix(code)


def read_odm(path: Path, out_dir: Path, *, export_id: str = "", sha256: str = "") -> Extracted:
    """Read one ODM file into ``out_dir`` (one Parquet per table); metadata frames in the result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return OdmReader(Path(path), out_dir, export_id=export_id, sha256=sha256).run()


def odm_frames(path: Path, out_dir: Path) -> dict[str, pl.DataFrame]:
    """Convenience for tests and comparisons: read an ODM file and return its raw tables as frames."""
    res = read_odm(path, out_dir)
    return {t: pl.read_parquet(out_dir / f"{t}.parquet") for t in res.tables}
