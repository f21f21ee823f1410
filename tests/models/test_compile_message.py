"""Issue 14 item 4: a compile failure's first line is the first error itself (file:line:column: message), so a
caller that shows one line (the build's error line, a build record) still shows something actionable."""

from pathlib import Path

import pytest

from model_fixtures import SRC, small_project, write
from warehouse.transform.compile import CompileError, compile_sql
from warehouse.transform.problems import Problem


def test_first_line_is_the_first_error_and_counts_the_others(tmp_path: Path):
    small_project(tmp_path)
    path = write(tmp_path, "intermediate", "int_map_mean",
                 "select subject_id,\n       avg(mapp) as map_mean\nfrom stg_vitals group by 1")
    with pytest.raises(CompileError) as err:
        compile_sql(SRC, tmp_path)
    problems = err.value.problems
    lines = str(err.value).splitlines()
    assert len(problems) == 2  # the unknown column, and the mart after it not compiled
    assert lines[0].startswith(f"{path}:2:12: unknown column 'mapp'")
    assert lines[0].endswith("(and 1 more)")
    # the lines after it list every problem, the first included
    assert [line.strip() for line in lines[1:]] == [str(p) for p in problems]
    assert "vitals_mart (after int_map_mean)" in lines[2]


def test_a_single_error_has_no_count():
    err = CompileError([Problem(Path("sql/staging/stg_x.sql"), 32, 5, "Binder Error: cannot mix types")])
    assert str(err).splitlines() == ["sql/staging/stg_x.sql:32:5: Binder Error: cannot mix types",
                                     "  sql/staging/stg_x.sql:32:5: Binder Error: cannot mix types"]
    assert "more" not in str(err).splitlines()[0]
