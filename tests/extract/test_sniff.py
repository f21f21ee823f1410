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


def inside(data: bytes, open_before: bool) -> bool:
    breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
    return _break_inside_quotes(data, data.count(b'"'), breaks, open_before)


def test_a_quote_left_open_by_the_chunk_before_carries_over() -> None:
    """Chunks are scanned one by one: the parity of the quotes before a chunk decides for its first breaks."""
    assert inside(b'rest of value"\n2,3\n', open_before=True) is False  # the quote closes the value
    assert inside(b'rest of value"\n2,3\n', open_before=False) is True  # the quote opens one
    assert inside(b'still inside\nclosed"\n', open_before=True) is True  # the first break is inside
    assert inside(b'still inside\nclosed"\n', open_before=False) is True  # the quote opens: the last one is
    assert inside(b'a\n"b,c"\n', open_before=False) is False
    assert inside(b"no quotes here\n", open_before=True) is True
    assert inside(b"no quotes here\n", open_before=False) is False


def test_many_quotes_in_a_chunk_give_the_same_answer_as_few() -> None:
    """Above 4,096 quotes a chunk's quotes are found by a pass over its bytes: same parity rule."""
    closed = b'1,"a ""b"" c"\n' * 2000  # 8,000 quotes, every value closed on its line
    assert inside(closed, open_before=False) is False
    assert inside(closed + b'2,"x\ny"\n', open_before=False) is True
