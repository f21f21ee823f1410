"""The HTML pages' Jinja2 templates (`*.html.j2` in this folder) and the one environment that renders them.

Autoescape is on: a value reaches a page escaped unless the code marks it `Markup` (the SVG figures it made
itself). `None` renders as nothing, as the pages always showed a missing value; an undefined name is an error.
Templates keep a table row on one line: the tests and the browser filters read rows, not the page's layout.
"""

from __future__ import annotations

from functools import cache

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "environment", "render"]


def _blank_none(value: object) -> object:
    return "" if value is None else value


@cache
def environment() -> jinja2.Environment:
    """The one environment (made on first use): templates loaded from this package's folder."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("warehouse", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_blank_none,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: object) -> str:
    """Render the template ``name`` (e.g. ``validation.html.j2``) with ``context``."""
    return environment().get_template(name).render(**context)
