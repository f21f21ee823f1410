"""Labels and character values for SAS transport (XPT version 5): ASCII, at most 40 characters, unique per dataset.

The warehouse's column comments are written for people reading the catalog: a label, then often a unit and an
explanation ("Baseline norepinephrine dose as base (µg/kg/min, rate in effect at H0)"). XPT v5 allows 40
characters and no encoding, so `short_label` shortens by one rule, in this order, stopping as soon as the label fits:

1. ASCII (`ascii_text`), whitespace collapsed; a label that fits is kept as it is.
2. The unit is kept, in parentheses at the end: the first parenthesised aside whose first part (before ',' or ';')
   is a unit (`UNITS`, a compound such as mmol/L or ug/kg/min, or "<unit> from <origin>": "hours from H0").
3. Explanatory clauses after the first ':' or ';' (outside parentheses) are dropped.
4. Other parenthesised asides are dropped.
5. Clauses after the first ',' are dropped.
6. The articles (a, an, the) are dropped, then known words abbreviated one table entry at a time, in the table's
   order, until the label fits (`ABBREVIATIONS`: Treatment-emergent -> TE, Analysis -> Anl, Baseline -> BL,
   Treatment -> Trt, Date-time -> DTM ...).
7. Last resort: cut at the last word boundary that fits (before the unit), without a dangling word such as "of".

`dataset_labels` makes the labels of one dataset unique: a label equal (ignoring case) to an earlier one gets the
variable's name as a suffix ("... (AVISITN)"), the text before it shortened by the same rule to make room.
`dataset_label` is the dataset's own label: a short form per dataset (`DATASET_LABELS`, as CDISC names the
standard ones), else the first clause of the table's comment, never cut mid-phrase.

Character values (`ascii_text`) are transliterated, not dropped: `TRANSLITERATION` first (symbols NFKD leaves
alone: µ -> u, ° -> deg, ≥ -> >= ...), then Unicode NFKD with the combining marks removed (é -> e, ç -> c); a
character that is still not ASCII becomes '?', so a loss is visible rather than silent.
"""

from __future__ import annotations

import re
import unicodedata

XPT_LABEL_MAX = 40

# Characters Unicode NFKD does not turn into ASCII, spelled as a SAS programmer would.
TRANSLITERATION = {
    "µ": "u", "μ": "u", "°": " deg", "±": "+/-", "≥": ">=", "≤": "<=", "≠": "!=", "×": "x", "÷": "/",
    "–": "-", "—": "-", "−": "-", "‐": "-", "’": "'", "‘": "'", "‚": ",", "“": '"', "”": '"', "„": '"',
    "«": '"', "»": '"', "…": "...", "•": "*", "·": ".", "⁄": "/", "→": "->", "←": "<-",
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l",
    "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ı": "i", "€": "EUR", "£": "GBP", "©": "(c)", "®": "(R)",
    "™": "(TM)", "\u00a0": " ",
}

# Units recognised in a label's aside (case-sensitive; compounds with '/' are recognised by their shape).
UNITS = frozenset({
    "%", "h", "hours", "hour", "min", "minutes", "s", "seconds", "days", "day", "weeks", "months", "years",
    "kg", "g", "mg", "ug", "cm", "m", "mm", "mL", "L", "mmHg", "bpm", "kg/m2", "mmol/L", "U/L", "deg C",
})
_UNIT = re.compile(r"(?:[A-Za-z%]+(?:/[A-Za-z0-9]+)+|per [a-z]+)")

# Word (or phrase) -> abbreviation, applied whole-word and case-insensitively, in this order, only while a label is
# too long. An abbreviation written as a capitalised word (Anl, Trt) follows the case of the word it replaces
# (analysis -> anl); one with other capitals (BL, TE, AEs, 1st) is written as it stands.
ABBREVIATIONS = {
    "treatment-emergent": "TE",
    "treatment-emergence": "TE",
    "date-time": "DTM",
    "date/time": "DTM",
    "analysis": "Anl",
    "baseline": "BL",
    "treatment": "Trt",
    "adverse events": "AEs",
    "adverse event": "AE",
    "confidence interval": "CI",
    "standard deviation": "SD",
    "norepinephrine": "NE",
    "identifier": "ID",
    "number": "No.",
    "percentage": "Pct",
    "difference": "Diff",
    "population": "Pop",
    "parameter": "Param",
    "subjects": "Subjs",
    "subject": "Subj",
    "first": "1st",
    "occurrence": "Occ",
    "imputation": "Imput",
    "description": "Desc",
    "characteristic": "Char",
    "kaplan-meier": "KM",
    "two-sided": "2-sided",
    " or ": "/",
}
_ARTICLES = re.compile(r"\b(?:the|a|an)\s+", re.IGNORECASE)
_DANGLING = {"a", "an", "the", "of", "and", "or", "in", "at", "to", "for", "by", "with", "within", "from", "on",
             "as", "per", "when", "if", "is", "&"}


def ascii_text(text: str) -> str:
    """`text` in ASCII: TRANSLITERATION first, then NFKD with combining marks removed; '?' for what is left."""
    spelled = "".join(TRANSLITERATION.get(ch, ch) for ch in text)
    decomposed = unicodedata.normalize("NFKD", spelled)  # again the table: NFKD makes U+2044 of '½'
    kept = "".join(TRANSLITERATION.get(ch, ch) for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch if ord(ch) < 128 else "?" for ch in kept)


def _top_level(text: str, chars: str) -> int:
    """The index of the first of `chars` outside parentheses, -1 when none."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0 and ch in chars:
            return i
    return -1


def _asides(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level parenthesised aside, brackets included; an unclosed one runs to the end."""
    spans, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    if depth:
        spans.append((start, len(text)))
    return spans


def is_unit(text: str) -> bool:
    """Whether `text` (the first part of an aside) names a unit: in UNITS, a compound (mmol/L, mmHg per ug/kg/min),
    or a unit counted from an origin ("hours from H0")."""
    text = text.strip()
    if text in UNITS or _UNIT.fullmatch(text):
        return True
    parts = text.split(" ")
    if len(parts) == 3 and parts[1] == "from" and parts[0] in UNITS:
        return True
    return len(parts) == 3 and parts[1] == "per" and all(is_unit(p) for p in (parts[0], parts[2]))


def _split_unit(text: str) -> tuple[str, str]:
    """(the text without its unit aside, the unit) for the first aside that starts with a unit; (text, '')."""
    for start, end in _asides(text):
        inner = text[start + 1: end - 1] if text[end - 1] == ")" else text[start + 1:]
        first = re.split(r"[,;]", inner, maxsplit=1)[0].strip()
        if first and is_unit(first):
            return _tidy(text[:start] + " " + text[end:]), first
    return text, ""


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\s+([,;:)])", r"\1", text)
    return text.strip(" ,;:-/")


def _drop_asides(text: str) -> str:
    for start, end in reversed(_asides(text)):
        text = text[:start] + " " + text[end:]
    return _tidy(text)


def _abbreviations(text: str):
    """`text` without its articles, then with each ABBREVIATIONS entry applied in turn (each step yielded)."""
    text = _ARTICLES.sub("", text)
    yield _tidy(text)
    for word, short in ABBREVIATIONS.items():
        def repl(match: re.Match, short: str = short) -> str:
            # 'Occ' for 'occurrence' reads 'occ'; 'BL', 'AEs', '1st' stay as written
            if short[:1].isupper() and short[1:].islower() and match.group(0)[0].islower():
                return short.lower()
            return short

        before = r"(?<![\w-])" if word[0].isalnum() else ""  # whole words; " or " brings its own spaces
        after = r"(?![\w-])" if word[-1].isalnum() else ""
        changed = re.sub(before + re.escape(word) + after, repl, text, flags=re.IGNORECASE)
        if changed != text:
            text = changed
            yield _tidy(text)


def _cut(text: str, room: int) -> str:
    """At most `room` characters, cut at the last word boundary, without dangling small words or punctuation."""
    if len(text) <= room:
        return text
    words = text[: room + 1].split(" ")
    words = words[:-1] if len(words) > 1 else [text[:room]]
    while len(words) > 1 and words[-1].lower().strip(",;:") in _DANGLING:
        words.pop()
    short = _tidy(" ".join(words))
    if short.count("(") > short.count(")"):
        short = _tidy(short[: short.rfind("(")]) or short
    return short[:room]


def short_label(text: str, limit: int = XPT_LABEL_MAX, suffix: str = "") -> str:
    """`text` as an XPT v5 label of at most `limit` characters, by the module's rule (unit kept at the end,
    explanations dropped first, then known words abbreviated). `suffix` is appended and counts in the limit."""
    label = " ".join(ascii_text(text).split())
    if len(label) + len(suffix) <= limit:
        return label + suffix
    body, unit = _split_unit(label)
    end = (f" ({unit})" if unit else "") + suffix

    def fits(candidate: str) -> bool:
        return bool(candidate) and len(candidate) + len(end) <= limit

    def capital(candidate: str) -> str:  # "The raw eCRF item" without its article is "Raw eCRF item"
        return candidate[:1].upper() + candidate[1:] if label[:1].isupper() else candidate

    steps = (
        lambda s: s,
        lambda s: _tidy(s[: _top_level(s, ":;")]) if _top_level(s, ":;") > 0 else s,
        _drop_asides,
        lambda s: _tidy(s[: _top_level(s, ",")]) if _top_level(s, ",") > 0 else s,
    )
    for step in steps:
        body = step(body) or body
        if fits(body):
            return body + end
    for shorter in _abbreviations(body):
        body = capital(shorter) or body
        if fits(body):
            return body + end
    room = limit - len(end)
    if room < 8:  # a unit or suffix that leaves no room for words: drop the unit
        end, room = suffix, limit - len(suffix)
    return _cut(body, room) + end


def dataset_labels(labels: dict[str, str], limit: int = XPT_LABEL_MAX) -> dict[str, str]:
    """The labels of one dataset (variable name -> text; an empty text labels by the name): each shortened by
    `short_label`, then made unique: a label already taken (ignoring case) gets the variable's name as a suffix."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name, text in labels.items():
        label = short_label(text or name, limit)
        if label.lower() in taken:
            label = short_label(text or name, limit, suffix=f" ({name})")
            i = 2
            while label.lower() in taken:  # the name itself was taken: number it
                label = short_label(text or name, limit, suffix=f" ({name} {i})")
                i += 1
        taken.add(label.lower())
        out[name] = label
    return out


# The dataset label of each exported table: CDISC's names for the standard ADaM datasets, short forms for the rest.
DATASET_LABELS = {
    "adsl": "Subject-Level Analysis Dataset",
    "adae": "Adverse Events Analysis Dataset",
    "adtte": "Time-to-Event Analysis Dataset",
    "adeff": "Efficacy Analysis Dataset",
    "hemodynamics": "Hourly Hemodynamics, First 24 Hours",
    "ar_baseline": "Baseline Characteristics by Arm",
    "ar_km": "Kaplan-Meier Survival Estimates by Arm",
    "ar_mortality": "Mortality at Day 3, 28 and 90 by Arm",
    "ar_primary": "Primary Endpoint Results by Arm",
    "ar_secondary": "Secondary Endpoint Results by Arm",
    "ar_teae": "Treatment-Emergent AEs by Arm",
    "findings": "Validation Findings",
}


def dataset_label(table: str, comment: str = "", limit: int = XPT_LABEL_MAX) -> str:
    """The dataset's label: its short form in DATASET_LABELS, else the first sentence of its comment without a
    leading 'NAME, ' (the comments of the ADaM marts start so), shortened by `short_label`."""
    if table in DATASET_LABELS:
        return DATASET_LABELS[table][:limit]
    text = " ".join(ascii_text(comment or table).split())
    text = re.sub(rf"^{re.escape(table)}\s*,\s*", "", text, flags=re.IGNORECASE)
    first = re.split(r"(?<=[a-z0-9)])\.\s", text + " ", maxsplit=1)[0].strip().rstrip(".")
    first = first[:1].upper() + first[1:]
    return short_label(first, limit)
