"""ODM metadata: events, forms, item groups, items, code lists and units, read from GlobalVariables,
BasicDefinitions and MetaDataVersion (the first definition of an OID wins: site-level MetaDataVersions Include
the parent's), and written as the raw zone's metadata rows (items, choices, events, forms).

`OdmReader` (``odm.py``) feeds it the metadata elements as the streaming parse ends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

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


@dataclass
class OdmMetadata:
    """The definitions of one ODM file, by OID (each a dict of the element's attributes by local name, plus what
    its children say: an event's forms, a form's item groups, a group's ItemRefs, an item's label, unit, code list
    and range, a code list's items)."""

    event_defs: dict[str, dict] = field(default_factory=dict)
    form_defs: dict[str, dict] = field(default_factory=dict)
    ig_defs: dict[str, dict] = field(default_factory=dict)
    item_defs: dict[str, dict] = field(default_factory=dict)
    codelists: dict[str, dict] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    redcap_repeating_forms: dict[str, set[str | None]] = field(default_factory=dict)  # form -> its events
    redcap_repeating_events: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ reading the elements
    def global_variables(self, el: Element) -> None:
        """REDCap's repeating instruments and events (its GlobalVariables extension)."""
        for sub in el.iter():
            n = local(sub.tag)
            a = attrs(sub)
            if n == "RepeatingInstrument":
                self.redcap_repeating_forms.setdefault(a.get("RepeatInstrument", ""), set()).add(
                    a.get("UniqueEventName"))
            elif n == "RepeatingEvent":
                self.redcap_repeating_events.add(a.get("UniqueEventName", ""))

    def basic_definitions(self, el: Element) -> None:
        """Measurement units: OID -> symbol (else name)."""
        for sub in el:
            if local(sub.tag) == "MeasurementUnit":
                a = attrs(sub)
                self.units.setdefault(a.get("OID", ""), _text(_child(sub, "Symbol")) or a.get("Name", ""))

    def metadata_version(self, el: Element) -> None:
        """The definitions of one MetaDataVersion not defined before."""
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
                self.item_defs[oid] = _item_def(sub, a)
            elif n == "CodeList" and oid not in self.codelists:
                self.codelists[oid] = _code_list(sub, a)

    # ------------------------------------------------------------------ names
    def form_name(self, oid: str) -> str:
        """The form's name as the export gives it: REDCap's ``redcap:FormName``, else the FormOID without a
        ``Form.`` prefix (its table's name is this name under `rawzone.table_name`, made unique in `_plan`)."""
        fd = self.form_defs.get(oid, {})
        return fd.get("FormName") or (oid[5:] if oid.startswith("Form.") else oid)

    def event_name(self, oid: str) -> str:
        return self.event_defs.get(oid, {}).get("UniqueEventName") or oid

    def items_of(self, igs: list[str]) -> list[str]:
        """The item OIDs of item groups, in order, once each (REDCap's DAG item left out: it is the site)."""
        out: dict[str, None] = {}
        for g in igs:
            for ref in self.ig_defs.get(g, {}).get("items", []):
                if ref.get("ItemOID") and ref["ItemOID"] != REDCAP_DAG_ITEM:
                    out[ref["ItemOID"]] = None
        return list(out)

    # ------------------------------------------------------------------ metadata rows
    def item_rows(self, table_info: dict[str, dict]) -> list[dict]:
        """An items row per ItemRef of each table's item groups, in table order."""
        items = []
        order = 0
        for table, info in table_info.items():
            for g in info["igs"]:
                for ref in self.ig_defs.get(g, {}).get("items", []):
                    if ref.get("ItemOID") == REDCAP_DAG_ITEM:
                        continue
                    order += 1
                    items.append(self._item_row(table, g, ref, order))
        return items

    def _item_row(self, table: str, g: str, ref: dict, order: int) -> dict:
        oid = ref.get("ItemOID")
        d = self.item_defs.get(oid, {})
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
        return {
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
            "codelist": d.get("codelist"), "item_group": g}

    def choice_rows(self) -> list[dict]:
        """A choices row per code: a REDCap checkbox's choices once per variable, then each coded item's list."""
        choices = []
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
        return choices

    def event_rows(self) -> list[dict]:
        """An events row per StudyEventDef, in metadata order."""
        events = []
        for oid, d in sorted(self.event_defs.items(), key=lambda kv: kv[1]["order"]):
            name = d.get("UniqueEventName") or oid
            events.append({"event": name, "label": d.get("EventName") or d.get("Name"), "arm": d.get("ArmNum"),
                           "arm_label": d.get("ArmName"), "day_offset": d.get("DayOffset"), "order": d["order"],
                           "repeating": d.get("Repeating") == "Yes" or name in self.redcap_repeating_events,
                           "event_oid": oid})
        return events

    def form_rows(self, table_info: dict[str, dict], table_events: dict[str, set[str]], table_repeating: set[str],
                  single_rep: set[str]) -> list[dict]:
        """A forms row per table: its events (the metadata's, else those seen in the data), repeating or not."""
        form_events: dict[str, set[str]] = {}
        for oid, d in self.event_defs.items():
            for f in d.get("forms", []):
                form_events.setdefault(f, set()).add(d.get("UniqueEventName") or oid)
        forms = []
        for table, info in table_info.items():
            foid = info["form_oid"]
            fd = self.form_defs.get(foid, {})
            declared = fd.get("Repeating") == "Yes" or self.form_name(foid) in self.redcap_repeating_forms \
                or info["item_group"] is not None or foid in single_rep
            evs = form_events.get(foid) or table_events[table]
            forms.append({"form": table, "label": info["label"], "form_oid": foid, "item_group": info["item_group"],
                          "repeating": declared or table in table_repeating, "events": sorted(evs),
                          "order": info["order"]})
        return forms


def _item_def(sub: Element, a: dict) -> dict:
    """An ItemDef's attributes, with its label, description, unit, code list and range (min/max)."""
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
    return a


def _code_list(sub: Element, a: dict) -> dict:
    """A CodeList's attributes, with its items: (coded value, decode) pairs (an EnumeratedItem decodes as itself)."""
    items = []
    for ci in sub:
        cn = local(ci.tag)
        if cn in ("CodeListItem", "EnumeratedItem"):
            items.append((attrs(ci).get("CodedValue", ""), _text(_child(ci, "Decode"))
                          if cn == "CodeListItem" else attrs(ci).get("CodedValue", "")))
    a["items"] = items
    return a


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


def _parse_choices(raw: str) -> list[tuple[str, str]]:
    from .redcap_meta import parse_choices
    return parse_choices(raw)


def _suffix(code: str) -> str:
    from .redcap_meta import checkbox_suffix
    return checkbox_suffix(code)
