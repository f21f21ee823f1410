"""Extract: land eCRF exports (REDCap CSV + dictionary, CDISC ODM XML) into a lossless, versioned
Parquet raw zone. The contract is ``docs/contracts.md`` ("Raw zone contract")."""

from .errors import ExportError
from .land import LandResult, land_export
from .odm import read_odm
from .rawzone import list_snapshots, read_raw_form, read_raw_meta

__all__ = ["ExportError", "LandResult", "land_export", "list_snapshots", "read_odm", "read_raw_form",
           "read_raw_meta"]
