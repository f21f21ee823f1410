"""CDISC ODM 1.3.2 writer (Snapshot): metadata up front, then ClinicalData streamed subject by subject."""

from __future__ import annotations

from typing import TextIO
from xml.sax.saxutils import escape

from .dictionary import EVENTS, FORMS, Field, form_columns, form_fields
from .params import DemoParameters
from .simulate import Record

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
REDCAP_NS = "https://projectredcap.org"  # REDCap's vendor extension: field types, identifiers, checkbox choices
DATATYPE = {"integer": "integer", "number": "float", "date_ymd": "date", "datetime_ymd": "datetime"}
UNIT_OIDS = {
    "mmHg": "MU.mmHg", "/min": "MU.per_min", "kg": "MU.kg", "cm": "MU.cm", "years": "MU.years",
    "mmol/L": "MU.mmol_L", "ug/kg/min": "MU.ug_kg_min", "mL/kg/h": "MU.mL_kg_h", "mL/h": "MU.mL_h", "mL": "MU.mL",
    "10^3/uL": "MU.e3_uL", "umol/L": "MU.umol_L",
}
COMPLETE_CL = "CL.form_complete"
CHECKBOX_CL = "CL.checkbox"
YESNO_CL = "CL.yesno"


def odm_file_name(study_id: str, date: str) -> str:
    return f"{study_id}_ODM_{date}.xml"


_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;",
                       "\t": "&#9;"})


def _a(v: str) -> str:
    """An XML attribute value, double-quoted and escaped."""
    return '"' + v.translate(_ATTR) + '"'


def _datatype(f: Field) -> str:
    """The ODM DataType of a field. Yes/no and checkbox items are "boolean", as REDCap's own ODM export writes
    them: a reader that knows no REDCap extension still types them as the REDCap CSV's dictionary does."""
    if f.ftype in ("yesno", "checkbox"):
        return "boolean"
    if f.ftype == "radio":
        return "integer"
    return DATATYPE.get(f.validation, "text")


def _redcap_item_attrs(f: Field | None, variable: str) -> str:
    """The `redcap:` attributes REDCap writes on an ItemDef: the field (variable), its field type and validation,
    its field note, and `redcap:Identifier="y"` for an identifier, so that a reader drops it from ODM as it does
    from the CSV dictionary's `Identifier?` column."""
    out = f" redcap:Variable={_a(variable)}"
    if f is None:  # `<form>_complete`: REDCap's form status, a select
        return out + ' redcap:FieldType="select"'
    out += f" redcap:FieldType={_a(f.ftype)}"
    if f.validation:
        out += f" redcap:TextValidationType={_a(f.validation)}"
    if f.note:
        out += f" redcap:FieldNote={_a(f.note)}"
    if f.identifier:
        out += ' redcap:Identifier="y"'
    return out


def _item_defs() -> list[tuple[str, str, str, Field | None]]:
    """(item OID, datatype, label, field) for every exported column, checkboxes expanded, then `<form>_complete`."""
    out = []
    for form in FORMS:
        for f in form_fields(form.name):
            if f.ftype == "checkbox":
                for code, _ in f.choices:
                    # the field's label, as REDCap writes it (the choice is in redcap:CheckboxChoices)
                    out.append((f"{f.name}___{code}", "boolean", f.label, f))
            else:
                out.append((f.name, _datatype(f), f.label, f))
        out.append((f"{form.name}_complete", "integer", "Complete?", None))
    return out


class OdmWriter:
    def __init__(self, fh: TextIO, p: DemoParameters, seed: int):
        self.fh = fh
        self.p = p
        self.seed = seed
        self.form_cols = {form.name: [c for c in form_columns(form.name) if c != "record_id"] for form in FORMS}

    def write_header(self) -> None:
        """The ODM root, the study's metadata (MetaDataVersion), its sites, and the opening of ClinicalData."""
        p = self.p
        self._write_study_header()
        self.fh.write(f'\t<MetaDataVersion OID={_a(f"MDV.{p.study_id}.1")} Name={_a(f"{p.study_id} eCRF")}>\n')
        self._write_structure()
        code_lists, code_list_attrs = self._write_item_defs()
        self._write_code_lists(code_lists, code_list_attrs)
        self.fh.write("\t</MetaDataVersion>\n")
        self.fh.write("</Study>\n")
        self._write_admin_data()
        self.fh.write(f'<ClinicalData StudyOID={_a(p.study_id)} MetaDataVersionOID={_a(f"MDV.{p.study_id}.1")}>\n')

    def _write_study_header(self) -> None:
        """The XML declaration, the ODM root, the Study's GlobalVariables and its units (BasicDefinitions)."""
        p = self.p
        w = self.fh.write
        stamp = f"{p.export_date}T00:00:00"
        w('<?xml version="1.0" encoding="UTF-8"?>\n')
        w(f'<ODM xmlns="{ODM_NS}" xmlns:redcap="{REDCAP_NS}" ODMVersion="1.3.2" FileType="Snapshot" '
          f'FileOID={_a(f"{p.study_id}.demo.{self.seed}")} CreationDateTime="{stamp}" AsOfDateTime="{stamp}" '
          f'SourceSystem="warehouse.demo" Description={_a(p.study_name)}>\n')
        w(f'<Study OID={_a(p.study_id)}>\n')
        w("\t<GlobalVariables>\n")
        w(f"\t\t<StudyName>{escape(p.study_id)}</StudyName>\n")
        w(f"\t\t<StudyDescription>{escape(p.study_name)}</StudyDescription>\n")
        w(f"\t\t<ProtocolName>{escape(p.study_id)}</ProtocolName>\n")
        w("\t</GlobalVariables>\n")
        w("\t<BasicDefinitions>\n")
        for unit, oid in UNIT_OIDS.items():
            w(f"\t\t<MeasurementUnit OID={_a(oid)} Name={_a(unit)}><Symbol><TranslatedText>{escape(unit)}"
              f"</TranslatedText></Symbol></MeasurementUnit>\n")
        w("\t</BasicDefinitions>\n")

    def _write_structure(self) -> None:
        """The Protocol (events in order), each event's forms, each form's item group and the group's items."""
        w = self.fh.write
        w("\t\t<Protocol>\n")
        for i, e in enumerate(EVENTS, start=1):
            w(f'\t\t\t<StudyEventRef StudyEventOID={_a(e.name)} OrderNumber="{i}" Mandatory="No"/>\n')
        w("\t\t</Protocol>\n")
        for e in EVENTS:
            w(f'\t\t<StudyEventDef OID={_a(e.name)} Name={_a(e.label)} Repeating="No" Type="Scheduled">\n')
            for i, form in enumerate(e.forms, start=1):
                w(f'\t\t\t<FormRef FormOID={_a(form)} OrderNumber="{i}" Mandatory="No"/>\n')
            w("\t\t</StudyEventDef>\n")
        for form in FORMS:
            rep = "Yes" if form.repeating else "No"
            w(f'\t\t<FormDef OID={_a(form.name)} Name={_a(form.label)} Repeating="{rep}" '
              f'redcap:FormName={_a(form.name)}>\n')
            w(f'\t\t\t<ItemGroupRef ItemGroupOID={_a(form.name)} Mandatory="Yes"/>\n')
            w("\t\t</FormDef>\n")
        items = _item_defs()
        for form in FORMS:
            rep = "Yes" if form.repeating else "No"
            w(f'\t\t<ItemGroupDef OID={_a(form.name)} Name={_a(form.label)} Repeating="{rep}">\n')
            for i, col in enumerate(form_columns(form.name), start=1):
                f = next((it[3] for it in items if it[0] == col), None)
                mand = "Yes" if f is not None and f.required else "No"
                w(f'\t\t\t<ItemRef ItemOID={_a(col)} OrderNumber="{i}" Mandatory="{mand}"/>\n')
            w("\t\t</ItemGroupDef>\n")

    def _write_item_defs(self) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
        """An ItemDef per exported column; returns the code lists they refer to (OID -> choices, in order of first
        reference after the yes/no and form-status lists) and each list's extra attributes."""
        code_lists: dict[str, list[tuple[str, str]]] = {
            YESNO_CL: [("1", "Yes"), ("0", "No")],
            COMPLETE_CL: [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")],
        }
        # code list OID -> its extra attributes: REDCap writes yes/no and checkbox lists as DataType="boolean",
        # and a checkbox column's list with the field's own choices (redcap:CheckboxChoices)
        code_list_attrs: dict[str, str] = {YESNO_CL: ' DataType="boolean"', COMPLETE_CL: ' DataType="integer"'}
        for oid, dtype, label, f in _item_defs():
            self._write_item_def(oid, dtype, label, f, code_lists, code_list_attrs)
        return code_lists, code_list_attrs

    def _write_item_def(self, oid: str, dtype: str, label: str, f: Field | None,
                        code_lists: dict[str, list[tuple[str, str]]], code_list_attrs: dict[str, str]) -> None:
        """One ItemDef: question, unit, soft range checks, and its code list (added to `code_lists` if new)."""
        w = self.fh.write
        variable = f.name if f is not None else oid
        attrs = f"OID={_a(oid)} Name={_a(oid)} DataType=\"{dtype}\"" + _redcap_item_attrs(f, variable)
        if dtype == "float":
            attrs += ' SignificantDigits="2"'
        w(f"\t\t<ItemDef {attrs}>\n")
        w(f"\t\t\t<Question><TranslatedText>{escape(label)}</TranslatedText></Question>\n")
        cl = None
        if f is None:
            cl = COMPLETE_CL
        else:
            if f.units and f.units in UNIT_OIDS:
                w(f'\t\t\t<MeasurementUnitRef MeasurementUnitOID={_a(UNIT_OIDS[f.units])}/>\n')
            if f.vmin:
                w(f'\t\t\t<RangeCheck Comparator="GE" SoftHard="Soft"><CheckValue>{escape(f.vmin)}</CheckValue>'
                  f"</RangeCheck>\n")
            if f.vmax:
                w(f'\t\t\t<RangeCheck Comparator="LE" SoftHard="Soft"><CheckValue>{escape(f.vmax)}</CheckValue>'
                  f"</RangeCheck>\n")
            if f.ftype == "yesno":
                cl = YESNO_CL
            elif f.ftype == "checkbox":
                cl = f"{CHECKBOX_CL}.{f.name}"
                code_lists[cl] = [("1", "Checked"), ("0", "Unchecked")]
                choices = " | ".join(f"{code}, {text}" for code, text in f.choices)
                code_list_attrs[cl] = (f' DataType="boolean" redcap:Variable={_a(f.name)} '
                                       f'redcap:CheckboxChoices={_a(choices)}')
            elif f.ftype == "radio":
                cl = f"CL.{f.name}"
                code_lists[cl] = list(f.choices)
                code_list_attrs[cl] = f' DataType="integer" redcap:Variable={_a(f.name)}'
        if cl:
            w(f"\t\t\t<CodeListRef CodeListOID={_a(cl)}/>\n")
        w("\t\t</ItemDef>\n")

    def _write_code_lists(self, code_lists: dict[str, list[tuple[str, str]]], code_list_attrs: dict[str, str]) -> None:
        w = self.fh.write
        for oid, choices in code_lists.items():
            w(f'\t\t<CodeList OID={_a(oid)} Name={_a(oid[3:])}{code_list_attrs[oid]}>\n')
            for code, label in choices:
                w(f'\t\t\t<CodeListItem CodedValue={_a(code)}><Decode><TranslatedText>{escape(label)}'
                  f"</TranslatedText></Decode></CodeListItem>\n")
            w("\t\t</CodeList>\n")

    def _write_admin_data(self) -> None:
        """AdminData: a Location per site (the SubjectData's SiteRef)."""
        p = self.p
        w = self.fh.write
        w(f'<AdminData StudyOID={_a(p.study_id)}>\n')
        for site in p.sites:
            w(f'\t<Location OID="site_{site}" Name="Site {site}" LocationType="Site">'
              f'<MetaDataVersionRef StudyOID={_a(p.study_id)} MetaDataVersionOID={_a(f"MDV.{p.study_id}.1")} '
              f'EffectiveDate="{p.first_randomisation}"/></Location>\n')
        w("</AdminData>\n")

    def write_subject(self, record_id: str, site: str, records: list[Record]) -> None:
        parts = [f'\t<SubjectData SubjectKey={_a(record_id)}>\n', f'\t\t<SiteRef LocationOID="site_{site}"/>\n']
        current = None
        for r in records:
            if r.event != current:
                if current is not None:
                    parts.append("\t\t</StudyEventData>\n")
                parts.append(f"\t\t<StudyEventData StudyEventOID={_a(r.event)}>\n")
                current = r.event
            rep = f' FormRepeatKey="{r.instance}"' if r.instance is not None else ""
            items = []
            if r.form == "eligibility":
                items.append(f'\t\t\t\t\t<ItemData ItemOID="record_id" Value={_a(record_id)}/>\n')
            for c in self.form_cols[r.form]:
                v = r.values.get(c, "")
                if v != "":
                    items.append(f'\t\t\t\t\t<ItemData ItemOID="{c}" Value={_a(v)}/>\n')
            block = (f"\t\t\t<FormData FormOID={_a(r.form)}{rep}>\n"
                     f"\t\t\t\t<ItemGroupData ItemGroupOID={_a(r.form)}>\n" + "".join(items) +
                     "\t\t\t\t</ItemGroupData>\n\t\t\t</FormData>\n")
            parts.append(block)
            if r.duplicate:
                parts.append(block)
        if current is not None:
            parts.append("\t\t</StudyEventData>\n")
        parts.append("\t</SubjectData>\n")
        self.fh.write("".join(parts))

    def write_footer(self) -> None:
        self.fh.write("</ClinicalData>\n</ODM>\n")
