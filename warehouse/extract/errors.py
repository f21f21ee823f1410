"""The one error type of the extract stage: an export that cannot be read as it is."""

from __future__ import annotations


REASON_LIMIT = 600


class ExportError(Exception):
    """An eCRF export that cannot be landed, with where and why.

    Attributes:
        file: the export file's name (or the export folder) the problem is in.
        location: where in the file: the physical line number (int) for CSV, an XPath-like location
            (str) for XML, or None when the problem concerns the whole file.
        field: the field (column / ItemOID) concerned, or None.
        reason: what is wrong, in words a data manager can act on.

    ``str(e)`` is one line naming them all, e.g. ``data.csv line 17, field 'hd_map': <reason>``.
    """

    def __init__(self, file: str | None, reason: str, *, location: str | int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.location = location
        self.field = field
        reason = " ".join(str(reason).split())  # one line, always
        # bounded: a 100,000-column header quoted in full made a 75 KB "one-line" error
        self.reason = reason if len(reason) <= REASON_LIMIT else reason[:REASON_LIMIT - 40] + \
            f" ... ({len(reason) - REASON_LIMIT + 40} more characters)"
        super().__init__(self.message())

    def message(self) -> str:
        where = self.file or "export"
        if isinstance(self.location, int):
            where += f" line {self.location}"
        elif self.location:
            where += f" {self.location}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.reason}"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message()
