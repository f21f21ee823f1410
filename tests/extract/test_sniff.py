"""The full-file text scan: line count, open quotes, and whether a quoted value holds a line break (which
decides whether the records parse must track quotes across lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from warehouse.extract.sniff import _break_inside_quotes, scan_text

CASES = [
    ("no quotes", b"id,x\n1,2\n2,3\n", False, 3),
    ("quoted comma, no break", b'id,x\n1,"a, b"\n2,"c"\n', False, 3),
    ("doubled quotes on one line", b'id,x\n1,"he said ""no"""\n2,3\n', False, 3),
    ("a break inside a value", b'id,x\n1,"line one\nline two"\n2,3\n', True, 4),
    ("a break after a doubled quote inside a value", b'id,x\n1,"say ""hi""\nthere"\n', True, 3),
    ("CRLF, quoted comma", b'id,x\r\n1,"a,b"\r\n', False, 2),
]


@pytest.mark.parametrize("name,data,inside,lines", CASES, ids=[c[0] for c in CASES])
def test_line_breaks_inside_quoted_values_are_found(tmp_path: Path, name: str, data: bytes, inside: bool,
                                                    lines: int) -> None:
    f = tmp_path / "r.csv"
    f.write_bytes(data)
    info = scan_text(f)
    assert info.newline_in_quotes is inside
    assert info.lines == lines


def test_a_quote_left_open_by_the_chunk_before_carries_over() -> None:
    """Chunks are scanned one by one: the parity of the quotes before a chunk decides for its first breaks."""
    chunk = np.frombuffer(b'rest of value"\n2,3\n', dtype=np.uint8)
    breaks = np.flatnonzero(chunk == 0x0A)
    assert _break_inside_quotes(chunk, breaks, open_before=True) is False  # the quote closes the value
    assert _break_inside_quotes(chunk, breaks, open_before=False) is True  # the quote opens one
    chunk = np.frombuffer(b'still inside\nclosed"\n', dtype=np.uint8)
    breaks = np.flatnonzero(chunk == 0x0A)
    assert _break_inside_quotes(chunk, breaks, open_before=True) is True  # the first break is inside
    assert _break_inside_quotes(chunk, breaks, open_before=False) is True  # the quote opens: the last one is
    chunk = np.frombuffer(b'a\n"b,c"\n', dtype=np.uint8)
    assert _break_inside_quotes(chunk, np.flatnonzero(chunk == 0x0A), open_before=False) is False
    chunk = np.frombuffer(b"no quotes here\n", dtype=np.uint8)
    assert _break_inside_quotes(chunk, np.flatnonzero(chunk == 0x0A), open_before=True) is True
