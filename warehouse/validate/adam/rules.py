"""The ADaM conformance rules: ids, families, what each checks, severity and source, and the constants the rule
families share.

Every rule has an id of this suite's scheme (``ADAM-nnn``; the CDISC conformance rule numbers are not reproduced
here, see docs/adam-conformance.md), a family, what it checks and a severity. ``RULES`` is the list, read from the
table below (one rule a line: id | family | severity | source | what; an indented line continues the ``what`` of
the line above); docs/adam-conformance.md lists the same rules and a test keeps the two equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUITE = "adam_conformance"
CONFIG_FILE = "adam_conformance.toml"
MAX_FINDINGS_PER_RULE = 1000  # finding rows kept per rule and dataset (counts stay complete), as core.py does

ADAM_TABLES = ("adsl", "adeff", "adae", "adtte")

# ADaMIG v1.3 section 3.2 (ADSL), 3.3 (BDS), OCCDS v1.1 section 3, ADaM BDS-TTE: the variables the IG marks Req
ADSL_REQUIRED = ("STUDYID", "USUBJID", "SUBJID", "SITEID", "AGE", "AGEU", "SEX", "RACE", "ARM", "ACTARM",
                 "TRT01P", "TRT01A")
BDS_REQUIRED = ("STUDYID", "USUBJID", "PARAMCD", "PARAM")
TTE_REQUIRED = ("CNSR",)
OCCDS_REQUIRED = ("STUDYID", "USUBJID")
AE_REQUIRED = ("AETERM", "AEDECOD", "AEBODSYS")

POPULATION_FLAG = re.compile(r"^(ITT|SAF|FAS|PPROT|PP|COMPL|COMP\d\d|RAND|ENRL|SCRN)FL$")
RECORD_FLAG = re.compile(r"^(ABLFL|ANL\d\dFL|ONTRTFL|TRTEMFL|AOCC\w*FL|LVOTFL)$")
SEX_TERMS = ("M", "F", "U", "UNDIFFERENTIATED")
DTF_TERMS = ("Y", "M", "D")
TMF_TERMS = ("H", "M", "S")
CHARACTER_TYPES = ("VARCHAR",)
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT")
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "REAL")
EXPORTABLE_TYPES = (*CHARACTER_TYPES, *NUMERIC_TYPES, "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE",
                    "TIME")


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    what: str
    severity: str  # error (blocks publishing) | warning (reported)
    source: str = ""  # where the IG says so


# families: metadata (names and labels, as exported (XPT v5) and as the IG requires), required (variables per
# class), identifiers (and ADSL), parameter (BDS), timing (BDS), flags, tte (time to event), dates (and study
# days), keys
RULE_TABLE = """
ADAM-001 | metadata    | error   | ADaMIG 3.1 / XPT v5     | Dataset name at most 8 characters
ADAM-002 | metadata    | error   | ADaMIG 3.1              | Dataset name starts with AD, letters and digits only
ADAM-003 | metadata    | error   | ADaMIG 3.1 / XPT v5     | Variable name at most 8 characters
ADAM-004 | metadata    | error   | ADaMIG 3.1              | Variable name upper case, starts with a letter,
                                                             letters/digits/underscore only
ADAM-005 | metadata    | error   | ADaMIG 3.1              | Dataset label (table comment) present
ADAM-006 | metadata    | error   | ADaMIG 3.1              | Variable label (column comment) present
ADAM-007 | metadata    | error   | ADaMIG 3.1 / XPT v5     | Variable label as exported (labels.py rule) at most 40
                                                             characters and unique within the dataset
ADAM-008 | metadata    | error   | ADaMIG 3.1              | Variable type exportable as character or numeric
ADAM-009 | metadata    | error   | XPT v5                  | Character value at most 200 characters
ADAM-010 | metadata    | error   | Define-XML KeySequence  | Dataset has a grain (keys) in main.catalog
ADAM-011 | metadata    | warning | ADaMIG 1.2 traceability | Every variable of the dataset has column lineage in
                                                             main.lineage
ADAM-020 | required    | error   | ADaMIG 3.2              | ADSL required variable present (or declared not
                                                             collected)
ADAM-021 | required    | warning | adam_conformance.toml   | Variable declared not collected is absent
ADAM-022 | required    | error   | ADaMIG 3.3              | BDS required variable present (STUDYID, USUBJID,
                                                             PARAMCD, PARAM)
ADAM-023 | required    | error   | ADaMIG 3.3              | BDS analysis value present (AVAL or AVALC)
ADAM-024 | required    | error   | ADaMIG 3.3.3            | BDS AVISIT and AVISITN present together
ADAM-025 | required    | error   | ADaM BDS for TTE        | BDS-TTE required variable present (CNSR)
ADAM-026 | required    | error   | OCCDS 3                 | OCCDS required variable present (STUDYID, USUBJID)
ADAM-027 | required    | error   | OCCDS 3.1               | OCCDS adverse-event required variable present (AETERM,
                                                             AEDECOD, AEBODSYS)
ADAM-028 | required    | error   | ADaMIG 3.3.2            | BDS/OCCDS carries a treatment variable (TRTP, TRTA,
                                                             TRTxxP or TRTxxA)
ADAM-030 | identifiers | error   | ADaMIG 3.2              | STUDYID not null
ADAM-031 | identifiers | error   | ADaMIG 3.2              | USUBJID not null
ADAM-032 | identifiers | error   | ADaMIG 3.2              | One STUDYID across the ADaM datasets
ADAM-033 | identifiers | error   | ADaMIG 3.3, OCCDS 3     | USUBJID of a BDS/OCCDS dataset is in ADSL
ADAM-034 | identifiers | error   | ADaMIG 3.2              | ADSL SUBJID and SITEID not null
ADAM-035 | identifiers | error   | ADaMIG 3.3.1            | Variable copied from ADSL has the subject's ADSL value
ADAM-036 | identifiers | error   | ADaMIG 3.2              | AGEU populated where AGE is
ADAM-037 | identifiers | error   | SDTM CT C66731          | SEX in the CDISC SEX codelist (M, F, U,
                                                             UNDIFFERENTIATED)
ADAM-038 | identifiers | error   | ADaMIG 3.2.3            | TRTxxPN one-to-one with TRTxxP, TRTxxAN with TRTxxA
                                                             (TRTPN/TRTP, TRTAN/TRTA alike)
ADAM-040 | parameter   | error   | ADaMIG 3.3.4            | PARAMCD not null
ADAM-041 | parameter   | error   | ADaMIG 3.3.4            | PARAMCD at most 8 characters
ADAM-042 | parameter   | error   | ADaMIG 3.3.4            | PARAMCD starts with a letter, letters/digits/underscore
                                                             only
ADAM-043 | parameter   | error   | ADaMIG 3.3.4            | PARAM not null
ADAM-044 | parameter   | error   | ADaMIG 3.3.4            | One PARAM per PARAMCD
ADAM-045 | parameter   | error   | ADaMIG 3.3.4            | One PARAMCD per PARAM
ADAM-046 | parameter   | error   | ADaMIG 3.3.4            | PARAMN one-to-one with PARAMCD
ADAM-047 | parameter   | error   | ADaMIG 3.3.5            | At most one baseline record (ABLFL = 'Y') per subject
                                                             and parameter
ADAM-048 | parameter   | error   | ADaMIG 3.3.5            | BASE constant within subject and parameter
ADAM-049 | parameter   | error   | ADaMIG 3.3.5            | CHG = AVAL - BASE where all three are populated
ADAM-050 | timing      | error   | ADaMIG 3.3.3            | One AVISITN per AVISIT
ADAM-051 | timing      | error   | ADaMIG 3.3.3            | One AVISIT per AVISITN
ADAM-052 | timing      | error   | ADaMIG 3.3.3            | AVISIT populated where AVISITN is
ADAM-053 | timing      | error   | ADaMIG 3.3.3            | One ATPTN per ATPT
ADAM-054 | timing      | error   | ADaMIG 3.3.3            | AVISITN populated where AVISIT is
ADAM-060 | flags       | error   | ADaMIG 3.1.4            | Flag (*FL) is Y, N or null
ADAM-061 | flags       | error   | ADaMIG 3.1.4            | Population flag (ITTFL, SAFFL, ...) is Y or N, never
                                                             null
ADAM-062 | flags       | error   | ADaMIG 3.1.4, OCCDS 3   | Record-level flag (ABLFL, ANLzzFL, TRTEMFL, AOCCzzFL,
                                                             ...) is Y or null
ADAM-063 | flags       | error   | ADaMIG 3.1.4            | Flag (*FL) is character
ADAM-064 | flags       | error   | ADaMIG 3.1.4            | Numeric flag (*FN) is 0, 1 or null
ADAM-070 | tte         | error   | ADaM BDS for TTE        | CNSR is 0 (event) or 1 (censored), never null
ADAM-071 | tte         | error   | ADaM BDS for TTE        | TTE AVAL populated and not negative
ADAM-072 | tte         | error   | ADaM BDS for TTE        | STARTDT on or before ADT
ADAM-080 | dates       | error   | ADaMIG 3.1.5            | Study day (ADY, ASTDY, AENDY) = date - TRTSDT (+1 on or
                                                             after TRTSDT, no day 0)
ADAM-081 | dates       | error   | ADaMIG 3.1.5            | Date variable (*DT) is a date
ADAM-082 | dates       | error   | ADaMIG 3.1.5            | Date-time variable (*DTM) is a date-time
ADAM-083 | dates       | error   | ADaMIG 3.1.5            | Study day (*DY) is an integer
ADAM-084 | dates       | error   | ADaMIG 3.1.5            | *DT equals the date part of *DTM where both are
                                                             populated
ADAM-085 | dates       | error   | ADaMIG 3.1.5 (DATEFL)   | Date imputation flag (*DTF) in Y, M, D
ADAM-086 | dates       | error   | ADaMIG 3.1.5 (TIMEFL)   | Time imputation flag (*TMF) in H, M, S
ADAM-087 | dates       | warning | ADaMIG 3.1.5            | Start on or before end (TRTSDTM <= TRTEDTM, ASTDTM <=
                                                             AENDTM)
ADAM-090 | keys        | error   | Define-XML KeySequence  | Key variables (main.catalog grain) exist in the dataset
ADAM-091 | keys        | error   | ADaMIG 3.1              | No duplicate records at the dataset's key
ADAM-092 | keys        | error   | ADaMIG 3.1              | Key variables not null
ADAM-093 | keys        | error   | ADaMIG 3.2              | ADSL has one record per subject (key USUBJID)
"""


def parse_rules(table: str) -> list[Rule]:
    """The rules of a table of lines ``id | family | severity | source | what`` (indented: more of ``what``)."""
    rules: list[Rule] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            last = rules.pop()
            rules.append(Rule(last.id, last.family, f"{last.what} {line.strip()}", last.severity, last.source))
            continue
        rule_id, family, severity, source, what = (part.strip() for part in line.split(" | ", 4))
        rules.append(Rule(rule_id, family, what, severity, source))
    return rules


RULES: list[Rule] = parse_rules(RULE_TABLE)
RULE_BY_ID = {r.id: r for r in RULES}
