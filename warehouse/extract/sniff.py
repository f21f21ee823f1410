"""Recognise export files by their content: text encoding, CSV dialect, and what kind of file it is.

Nothing here reads a whole file into memory: encodings are checked chunk by chunk, so a >1 GB records
CSV costs one sequential read.
"""

from __future__ import annotations

import codecs
import csv
import io
import mmap
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ExportError

CHUNK = 16 << 20
HEAD = 1 << 16
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or an Excel .xlsx workbook)",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "an OLE2 document (e.g. an Excel .xls workbook)",
    b"\x1f\x8b": "a gzip archive",
}
DELIMITERS = (",", ";", "\t")
# words a study configuration or the command line may use for a delimiter
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}

# REDCap data-dictionary headers (as downloaded from the Dictionary page) -> API metadata names.
REDCAP_DICTIONARY_HEADERS = {
    "Variable / Field Name": "field_name",
    "Form Name": "form_name",
    "Section Header": "section_header",
    "Field Type": "field_type",
    "Field Label": "field_label",
    "Choices, Calculations, OR Slider Labels": "select_choices_or_calculations",
    "Field Note": "field_note",
    "Text Validation Type OR Show Slider Number": "text_validation_type_or_show_slider_number",
    "Text Validation Min": "text_validation_min",
    "Text Validation Max": "text_validation_max",
    "Identifier?": "identifier",
    "Branching Logic (Show field only if...)": "branching_logic",
    "Required Field?": "required_field",
    "Custom Alignment": "custom_alignment",
    "Question Number (surveys only)": "question_number",
    "Matrix Group Name": "matrix_group_name",
    "Matrix Ranking?": "matrix_ranking",
    "Field Annotation": "field_annotation",
}


@dataclass
class TextInfo:
    """What a full pass over a text file found."""

    encoding: str  # python codec name: "utf-8" or "cp1252" (or the caller's override)
    bom: bool
    lines: int  # number of physical lines (newline count, +1 if the last line is unterminated)
    quotes_odd: bool  # an odd number of '"' characters: a quoted value is not closed
    # a line break inside a quoted value (a CSV reader must then track quotes across lines: slower); True when
    # the encoding is not ASCII-compatible (not looked at)
    newline_in_quotes: bool = True


@dataclass
class FileKind:
    """What an export file is, from its first bytes."""

    name: str
    kind: str  # empty | binary | xml | csv | text
    what: str = ""  # human words for binary / unrecognised files
    delimiter: str | None = None
    header: list[str] = field(default_factory=list)
    role: str | None = None  # dictionary | metadata | events | arms | designation | repeating | None
    encoding: str | None = None  # CSV: detected from the head (the full scan's once read); XML: declared, else utf-8
    bom: bool | None = None  # CSV: a UTF-8 byte order mark (once the file is read)


def check_dialect(encoding: str | None, delimiter: str | None) -> tuple[str | None, str | None]:
    """Validate a CSV dialect override (None or "" = detect); returns (encoding, delimiter), delimiter
    names (``tab``, ``\\t``, ``semicolon``, ...) resolved. ValueError says what is wrong."""
    encoding = encoding or None
    delimiter = delimiter or None
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r} (a Python codec name: utf-8, cp1252, latin-1, ...)") \
                from None
    if delimiter is not None:
        delimiter = DELIMITER_NAMES.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter in ('"', "\r", "\n"):
            raise ValueError(f"delimiter {delimiter!r} must be one character other than a quote or a line break "
                             "(\"tab\" for a tab)")
    return encoding, delimiter


def column_at(path: Path, offset: int, delimiter: str) -> int | None:
    """The 0-based column of the CSV record holding byte ``offset`` (error path only: the bytes up to the
    offset are mapped, not read). Quotes, delimiters and newlines are ASCII: valid for UTF-8 and the
    single-byte code pages; None when the delimiter is not ASCII."""
    if not delimiter.isascii():
        return None
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = start = min(offset, len(data))
        while True:  # the record starts after the last newline that is outside quotes
            nl = data.rfind(b"\n", 0, pos)
            if nl < 0:
                start = 0
                break
            if data[:nl].count(b'"') % 2 == 0:
                start = nl + 1
                break
            pos = nl
        segment = data[start:offset]
    in_quotes, col, sep = False, 0, ord(delimiter)
    for b in segment:
        if b == 0x22:
            in_quotes = not in_quotes
        elif b == sep and not in_quotes:
            col += 1
    return col


def read_head(path: Path, n: int = HEAD) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def strip_bom(b: bytes) -> bytes:
    return b[3:] if b.startswith(codecs.BOM_UTF8) else b


def binary_kind(head: bytes) -> str | None:
    """Words for a binary file (None when the head looks like text)."""
    for magic, words in _MAGIC.items():
        if head.startswith(magic):
            return words
    if b"\x00" in head:
        return "a binary file (NUL bytes)"
    return None


def _line_at(data: bytes, offset: int, lines_before: int) -> int:
    return lines_before + data.count(b"\n", 0, offset) + 1


def scan_text(path: Path, encoding: str | None = None) -> TextInfo:
    """Check a whole file decodes as text, choosing the encoding when none is given.

    UTF-8 (with or without BOM) is tried strictly; cp1252 is accepted only when UTF-8 fails before any
    valid multi-byte UTF-8 sequence was seen (a file mixing valid UTF-8 and stray bytes is corrupt, not
    cp1252), every byte is defined in cp1252 and there are no control characters. Otherwise
    ExportError names the line of the first undecodable byte.

    Garbled text is refused too (`find_mojibake`: 'Â°', 'Ã©', 'â€™' are UTF-8 read as cp1252): decoded as UTF-8,
    the file was read with the wrong encoding and saved again before it was sent (re-export it); decoded with
    another encoding (an override), the file is UTF-8 when it is valid UTF-8 throughout (a file that is not UTF-8
    at all says what it says). The error names the line, the byte offset (``byte_offset``, for the CSV field) and
    the likely encoding (``likely_encoding``).
    """
    head = read_head(path, 4)
    bom = head.startswith(codecs.BOM_UTF8)
    if bom:  # a UTF-8 byte order mark is the file's own declaration: it wins over an override
        encoding = "utf-8"
    candidates = [encoding] if encoding else ["utf-8", "cp1252"]
    first_error: ExportError | None = None
    for enc in candidates:
        scanned = _scan_as(path, enc, encoding, bom)
        if isinstance(scanned, TextInfo):
            return scanned
        first_error = first_error or scanned
    assert first_error is not None
    raise first_error


@dataclass
class Mojibake:
    """The first place where decoded text looks like UTF-8 read as a single-byte code page."""

    line: int
    offset: int | None  # byte offset in the file (for the CSV field at that place)
    seen: str  # the garbled characters, e.g. 'Â°'
    meant: str  # what they were, e.g. '°'


@dataclass
class _TextScan:
    """What a scan of a file in one encoding has seen so far."""

    newline_in_quotes: bool
    lines: int = 0
    read: int = 0  # bytes
    quotes: int = 0
    ascii_so_far: bool = True
    last: bytes = b""  # the last byte read
    mojibake: Mojibake | None = None
    path: str = ""
    tail: str = ""  # the last characters decoded: a garbled sequence can run on into the next chunk


# UTF-8 read as cp1252 (or latin-1): each byte of a character becomes a character of its own. A lead byte shows as
# Â Ã Ä Å Î Ï (0xC2-0xC5: symbols and accented Latin letters, 0xCE-0xCF: Greek, µ as 'Î¼') or â (0xE2: punctuation,
# '’' as 'â€™', '≥' as 'â‰¥'), and each continuation byte (0x80-0xBF) as one of the characters below. Only these
# typical sequences are looked for: a lead like 'ß' or 'Ñ' before a quote mark is ordinary text.
_CONTINUATION = frozenset(bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore")) | frozenset(
    map(chr, range(0x80, 0xC0)))
_MOJIBAKE_LEADS = {"Â": 2, "Ã": 2, "Ä": 2, "Å": 2, "Î": 2, "Ï": 2, "â": 3}
_LONGEST_MOJIBAKE = max(_MOJIBAKE_LEADS.values())
_MOJIBAKE_PATTERNS = [re.compile(re.escape(lead) + ("[" + "".join(re.escape(c) for c in sorted(_CONTINUATION)) + "]")
                                 * (n - 1)) for lead, n in _MOJIBAKE_LEADS.items()]

# the same leads as UTF-8 bytes (C3 82-85, 8E, 8F, A2): one search of a UTF-8 chunk's bytes, ~8x faster than the
# seven searches of its text, says whether a lead is there at all (no lead, no garbled sequence)
_MOJIBAKE_LEAD_UTF8 = re.compile(b"|".join(re.escape(lead.encode("utf-8")) for lead in _MOJIBAKE_LEADS))


def find_mojibake(text: str) -> tuple[int, str, str] | None:
    """The first typical UTF-8-read-as-cp1252 sequence of a text: (index, the garbled characters, what they
    were), or None. A sequence counts only when its characters, encoded back as cp1252 (or latin-1), are one
    valid UTF-8 character. One search per lead character (a literal prefix: fast even where 'Ä' is common)."""
    best: tuple[int, str, str] | None = None
    for pattern in _MOJIBAKE_PATTERNS:
        for m in pattern.finditer(text, 0, len(text) if best is None else best[0]):
            meant = _utf8_of(m.group())
            if meant is not None:
                best = (m.start(), m.group(), meant)
                break
    return best


def _utf8_of(seq: str) -> str | None:
    for enc in ("cp1252", "latin-1"):
        try:
            return seq.encode(enc).decode("utf-8")
        except UnicodeError:
            continue
    return None


def valid_utf8(path: Path) -> bool:
    """Whether the whole file decodes as UTF-8 (a streaming check, for the error paths)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                decoder.decode(chunk, final=False)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def mojibake_error(name: str, found: Mojibake, enc: str, encoding: str | None) -> ExportError:
    """The refusal of text that is UTF-8 read with the wrong encoding, naming the likely encoding. ``enc``: the
    encoding the file was decoded with; ``encoding``: the override, if any."""
    shown = f"{found.seen!r} (the UTF-8 bytes of {found.meant!r} read as cp1252)"
    if enc == "utf-8":
        reason = (f"garbled text {shown}: the file is UTF-8 but holds text that was already read with the wrong "
                  "encoding and saved again (double-encoded, e.g. opened and re-saved in a spreadsheet); its likely "
                  "encoding was utf-8 before that: re-export it from the EDC (staging would carry the garbled "
                  "labels and values)")
    else:
        reason = (f"garbled text {shown} when read as {enc}: the file is valid UTF-8, so its likely encoding is "
                  "utf-8" + (f", not the override {encoding!r}" if encoding else ""))
    err = ExportError(name, reason, location=found.line)
    err.byte_offset = found.offset  # type: ignore[attr-defined]
    err.likely_encoding = None if enc == "utf-8" else "utf-8"  # type: ignore[attr-defined]
    err.mojibake = True  # type: ignore[attr-defined]
    return err


def _scan_as(path: Path, enc: str, encoding: str | None, bom: bool) -> TextInfo | ExportError:
    """Scan the whole file as encoding ``enc``: its TextInfo, or the error that rules ``enc`` out (raised
    instead when no other encoding could do: a control byte, an override's error, a UTF-8 file that is corrupt)."""
    name = path.name
    codec = "utf-8" if enc.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig") else enc
    try:
        decoder = codecs.getincrementaldecoder(codec)("strict")
    except LookupError as exc:
        raise ExportError(name, f"unknown encoding {enc!r}") from exc
    ascii_codec = codecs.lookup(codec).name in ("utf-8", "cp1252")
    st = _TextScan(newline_in_quotes=not ascii_codec, path=str(path))
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            err = _scan_chunk(name, chunk, st, decoder, ascii_codec, enc, codec, encoding)
            if err is not None:
                return err
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        err = ExportError(name, f"the file ends in the middle of a {enc} character (truncated?)",
                          location=st.lines + 1)
        if encoding or codec != "utf-8":
            raise err
        return err
    lines = st.lines + 1 if st.last and st.last != b"\n" else st.lines
    # garbled text decoded as UTF-8: the garbling is in the file itself; decoded otherwise: the file is UTF-8 read
    # with the wrong encoding, unless it is not UTF-8 at all (then those characters are what the file says)
    if st.mojibake is not None and (codec == "utf-8" or valid_utf8(path)):
        raise mojibake_error(name, st.mojibake, "utf-8" if codec == "utf-8" else enc, encoding)
    return TextInfo(encoding="utf-8" if codec == "utf-8" else enc, bom=bom and codec == "utf-8",
                    lines=lines, quotes_odd=bool(st.quotes % 2), newline_in_quotes=st.newline_in_quotes)


def _scan_chunk(name: str, chunk: bytes, st: _TextScan, decoder, ascii_codec: bool, enc: str, codec: str,
                encoding: str | None) -> ExportError | None:
    """One chunk: control bytes, line breaks and quotes counted, decoded; the error of an undecodable byte."""
    # control bytes (other than TAB, LF, CR) and line breaks, in one vectorised pass
    data = np.frombuffer(chunk, dtype=np.uint8)
    low = np.flatnonzero(data < 0x20)
    kind = data[low]
    control = low[(kind != 0x09) & (kind != 0x0A) & (kind != 0x0D)]
    if control.size:
        pos = int(control[0])
        raise ExportError(name, f"control byte 0x{chunk[pos]:02x} in a text export "
                          "(binary or corrupt file)", location=_line_at(chunk, pos, st.lines))
    breaks = low[kind == 0x0A]
    newlines = int(breaks.size)
    in_chunk = chunk.count(b'"')
    if not st.newline_in_quotes:
        st.newline_in_quotes = _break_inside_quotes(chunk, in_chunk, breaks, st.quotes % 2 == 1)
    del data, low, kind, control, breaks
    try:
        # ASCII is valid in both codecs tried here: decode only when a chunk is not ASCII or the
        # decoder holds the start of a character from the chunk before
        if not (ascii_codec and chunk.isascii() and not decoder.getstate()[0]):
            held = decoder.getstate()[0]
            text = decoder.decode(chunk, final=False)
            if st.mojibake is None and not (text.isascii() and st.tail.isascii()) and (
                    codec != "utf-8" or _MOJIBAKE_LEAD_UTF8.search(chunk)
                    or _MOJIBAKE_LEAD_UTF8.search(st.tail.encode(codec) + held + chunk[:2])):
                st.mojibake = _mojibake_in(text, st, len(held), codec)
            keep = _LONGEST_MOJIBAKE - 1
            st.tail = (st.tail + text[-keep:])[-keep:]  # not the whole chunk's text copied to keep two characters
        else:
            st.tail = ""  # ASCII ends the chunk: no garbled sequence runs on from it
    except UnicodeDecodeError as exc:
        line = _line_at(chunk, max(exc.start, 0), st.lines)
        seen_multibyte = not st.ascii_so_far or not chunk[: max(exc.start, 0)].isascii()
        bad = chunk[max(exc.start, 0): max(exc.start, 0) + 4]
        err = ExportError(name, f"bytes {bad!r} cannot be decoded as {enc}"
                          + (" (the file mixes UTF-8 and other bytes)" if seen_multibyte and
                             codec == "utf-8" else ""), location=line)
        err.byte_offset = st.read + max(exc.start, 0)  # type: ignore[attr-defined]
        if encoding and codec != "utf-8" and valid_utf8(Path(st.path)):
            err = ExportError(name, err.reason + f": the file is valid UTF-8, so its likely encoding is utf-8, "
                              f"not the override {encoding!r}", location=line)
            err.byte_offset = st.read + max(exc.start, 0)  # type: ignore[attr-defined]
            err.likely_encoding = "utf-8"  # type: ignore[attr-defined]
        if codec == "utf-8" and seen_multibyte and not encoding:
            raise err
        return err
    st.ascii_so_far = st.ascii_so_far and chunk.isascii()
    st.lines += newlines
    st.quotes += in_chunk
    st.read += len(chunk)
    st.last = chunk[-1:]
    return None


def _mojibake_in(text: str, st: _TextScan, pending: int, codec: str) -> Mojibake | None:
    """The first garbled sequence of a chunk's decoded text, with its line and byte offset (``pending``: bytes of
    the chunk before, decoded with this one). The search starts at ``st.tail``, the last characters of the chunk
    before, so a sequence cut by the end of a read is found where it starts."""
    found = find_mojibake(st.tail + text)
    if found is None:
        return None
    i, seen, meant = found
    i -= len(st.tail)  # negative: the sequence starts in the chunk before (on this line: it holds no line break)
    try:
        offset: int | None = st.read - pending + (len(text[:i].encode(codec)) if i >= 0 else
                                                  -len(st.tail[i:].encode(codec)))
    except (UnicodeError, LookupError):  # pragma: no cover - a codec that does not encode back
        offset = None
    return Mojibake(line=st.lines + text.count("\n", 0, max(i, 0)) + 1, offset=offset, seen=seen, meant=meant)


def _break_inside_quotes(chunk: bytes, count: int, breaks: np.ndarray, open_before: bool) -> bool:
    """Whether a line break of this chunk lies inside a quoted value: an odd number of quote characters before
    it (doubled quotes inside a value count two, so the parity holds). ``count``: the chunk's quote characters;
    ``open_before``: the chunks before left a quote open. Quotes are rare in an export (a few per 16 MB chunk):
    they are found one by one then, not by another pass over every byte."""
    if count == 0:
        return bool(open_before and breaks.size)
    if count <= 4096:
        found, at = [], chunk.find(b'"')
        while at >= 0:
            found.append(at)
            at = chunk.find(b'"', at + 1)
        quotes = np.array(found, dtype=np.int64)
    else:
        quotes = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 0x22)
    before = np.searchsorted(quotes, breaks) + int(open_before)
    return bool(np.any(before % 2 == 1))


def decode_head(head: bytes, encoding: str) -> str:
    """Decode the first bytes of a file, tolerating a character cut at the end of the sample."""
    head = strip_bom(head) if encoding == "utf-8" else head
    return head.decode(encoding, errors="ignore" if len(head) >= HEAD else "strict")


def first_record(text: str) -> str:
    """The first CSV record of a text (a header may contain quoted newlines)."""
    in_quotes = False
    for i, ch in enumerate(text):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "\n" and not in_quotes:
            return text[:i].rstrip("\r")
    return text.rstrip("\r\n")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header record: the most frequent of , ; TAB outside quotes (ties: comma)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    for ch in header:
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best


def parse_header(header: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(header), delimiter=delimiter), [])


def csv_role(header: list[str]) -> str | None:
    """Which REDCap metadata CSV a header belongs to (None: possibly the records file)."""
    header = [c.strip() for c in header]
    cols = set(header)
    if header and header[0] == "Variable / Field Name" and "Form Name" in cols:
        return "dictionary"
    if header and header[0] == "field_name" and "form_name" in cols and "field_type" in cols:
        return "metadata"
    if {"event_name", "arm_num", "unique_event_name"} <= cols:
        return "events"
    if {"arm_num", "unique_event_name", "form"} <= cols:
        return "designation"
    if cols in ({"arm_num", "name"}, {"arm_num", "arm_name"}) or (
            header[:1] == ["arm_num"] and ("name" in cols or "arm_name" in cols) and len(cols) <= 3):
        return "arms"
    if "form_name" in cols and ("custom_form_label" in cols or "event_name" in cols) and len(cols) <= 3:
        return "repeating"
    return None


_XML_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def xml_encoding(head: bytes) -> str:
    """The encoding an XML parser reads a file with: the declaration's (``<?xml ... encoding="..."?>``, as a Python
    codec name when it is one), else UTF-8 (XML's default; a UTF-8 byte order mark says the same)."""
    m = _XML_DECLARED_ENCODING.match(strip_bom(head).lstrip())
    if m is None:
        return "utf-8"
    declared = m.group(1).decode("ascii")
    try:
        return codecs.lookup(declared).name
    except LookupError:
        return declared.lower()


def classify(path: Path, encoding: str | None = None, delimiter: str | None = None) -> FileKind:
    """Recognise one file from its first 64 KiB (no full read)."""
    head = read_head(path)
    kind = FileKind(name=path.name, kind="text")
    if not head.strip():
        kind.kind = "empty"
        return kind
    words = binary_kind(head)
    if words:
        kind.kind, kind.what = "binary", words
        return kind
    body = strip_bom(head).lstrip()
    if body.startswith(b"<"):
        kind.kind = "xml"
        kind.what = "an ODM XML file" if b"<ODM" in head or b":ODM" in head else "an XML file (not ODM)"
        kind.encoding = xml_encoding(head)
        return kind
    enc = "utf-8" if head.startswith(codecs.BOM_UTF8) else encoding  # a BOM wins over an override
    if enc is None:
        try:
            strip_bom(head).decode("utf-8", errors="strict")
            enc = "utf-8"
        except UnicodeDecodeError as exc:
            enc = "utf-8" if exc.start >= len(head) - 4 and len(head) >= HEAD else "cp1252"
    try:
        text = decode_head(head, enc)
    except UnicodeDecodeError:
        text = decode_head(head, "latin-1")
    kind.encoding = enc
    rec = first_record(text)
    kind.delimiter = sniff_delimiter(rec)
    kind.header = parse_header(rec, kind.delimiter)
    kind.kind = "csv"
    kind.role = csv_role(kind.header)
    if delimiter and kind.role is None:  # the override is for the records file; metadata CSVs are known
        kind.delimiter = delimiter
        kind.header = parse_header(rec, delimiter)
    return kind
