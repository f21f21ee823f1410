"""Validation at every stage with Great Expectations: suites from expectations/ (and generated from the export's
metadata), severities (error gates the build, warning informs), row-level findings with a history across builds.

Great Expectations is imported lazily, on the first validate_stage call.

    v = validate_stage("raw", tables, metadata)        # -> StageValidation(.success, .errors, .warnings, .results,
                                                       #                    .findings, .suites)
    history = update_findings_history(previous, v.findings, build_id, built_at)
"""

from warehouse.validate.core import DEFAULT_MAX_FINDINGS_PER_EXPECTATION, StageValidation, validate_stage
from warehouse.validate.findings import (
    FINDINGS_COLUMNS,
    HISTORY_COLUMNS,
    finding_id,
    update_findings_history,
)
from warehouse.validate.suites import (
    GENERATED_SEVERITY,
    expectations_dir,
    generate_raw_suites,
    generate_staging_range_suites,
    load_suites,
    save_suites,
)

__all__ = [
    "DEFAULT_MAX_FINDINGS_PER_EXPECTATION",
    "FINDINGS_COLUMNS",
    "GENERATED_SEVERITY",
    "HISTORY_COLUMNS",
    "StageValidation",
    "expectations_dir",
    "finding_id",
    "generate_raw_suites",
    "generate_staging_range_suites",
    "load_suites",
    "save_suites",
    "update_findings_history",
    "validate_stage",
]
