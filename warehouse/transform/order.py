"""Transform order: which models a model reads, the order they run in, and the selection syntax (dbt's: `name`,
`name+`, `+name`, `+name+`, `tag:<tag>`, `layer:<layer>`)."""

from __future__ import annotations

import difflib
import graphlib
import re

from warehouse.transform.models import Model, ModelError


def resolve_dependency(reference: str, models: dict[str, Model], sources: set[str]) -> str | None:
    """The model a reference names, "" for a staged source, None when nothing has that name.

    `src.x` is always a source; `staging.x` (or another layer's schema) is always a model; a bare name is a
    model first, as DuckDB's search path resolves it.
    """
    schema, _, name = reference.rpartition(".")
    if schema == "src":
        return "" if name in sources else None
    if schema:
        model = models.get(name)
        return name if model is not None and model.schema == schema else None
    if name in models:
        return name
    return "" if name in sources else None


def model_dependencies(model: Model, models: dict[str, Model], sources: set[str]) -> set[str]:
    """The models `model` reads; an unknown table is an error naming the model's file."""
    resolved = {ref: resolve_dependency(ref, models, sources) for ref in model.depends_on}
    unknown = sorted(ref for ref, target in resolved.items() if target is None)
    if unknown:
        where = [model.reference_positions.get(ref, (0, 0)) for ref in unknown]
        line = f":{where[0][0]}:{where[0][1]}" if where[0][0] else ""
        raise ModelError(f"{model.path}{line}: reads unknown table(s) {', '.join(unknown)}")
    return {target for target in resolved.values() if target}


def model_graph(models: dict[str, Model], sources: set[str]) -> dict[str, set[str]]:
    """Each model's upstream models (also stored on `Model.upstream`); an unknown table is an error."""
    graph = {}
    for model in models.values():
        model.upstream = model_dependencies(model, models, sources)
        graph[model.name] = model.upstream
    return graph


def execution_order(models: dict[str, Model], sources: set[str]) -> list[str]:
    """Models in dependency order; an unknown table or a cycle is an error naming the files involved."""
    graph = model_graph(models, sources)
    try:
        # sorted predecessors: the same order in every process (a set's order depends on the string hash seed)
        return list(graphlib.TopologicalSorter({n: sorted(up) for n, up in graph.items()}).static_order())
    except graphlib.CycleError as err:
        cycle = err.args[1]
        files = " -> ".join(str(models[name].path) for name in cycle)
        raise ModelError(f"dependency cycle: {files}") from err


# -- selection ----------------------------------------------------------------------------------------------


def descendants(models: dict[str, Model], name: str) -> set[str]:
    """Every model that reads `name`, directly or through others (needs `Model.upstream`, see model_graph)."""
    children: dict[str, set[str]] = {n: set() for n in models}
    for model in models.values():
        for parent in model.upstream:
            children[parent].add(model.name)
    found: set[str] = set()
    stack = [name]
    while stack:
        for child in children[stack.pop()] - found:
            found.add(child)
            stack.append(child)
    return found


def ancestors(models: dict[str, Model], name: str) -> set[str]:
    """Every model `name` reads, directly or through others."""
    found: set[str] = set()
    stack = [name]
    while stack:
        for parent in models[stack.pop()].upstream - found:
            found.add(parent)
            stack.append(parent)
    return found


def select_models(models: dict[str, Model], selector: str | list[str] | None) -> set[str]:
    """The models a selector names (dbt's syntax): `name`, `name+` (and its descendants), `+name` (and its
    ancestors), `+name+`, `tag:<tag>`, `layer:<staging|intermediate|marts>`; several selectors, separated by
    spaces or commas or given as a list, are a union. None or empty selects everything.

    Needs the graph (`execution_order` or `model_graph` fills `Model.upstream`). An unknown name is a ModelError.
    """
    if selector is None:
        return set(models)
    parts = selector if isinstance(selector, list) else [selector]
    terms = [term for part in parts for term in re.split(r"[\s,]+", part.strip()) if term]
    if not terms:
        return set(models)
    chosen: set[str] = set()
    for term in terms:
        up, down = term.startswith("+"), term.endswith("+")
        body = term.strip("+").lower()
        if body.startswith("tag:"):
            base = {m.name for m in models.values() if body[4:] in {t.lower() for t in m.tags}}
        elif body.startswith("layer:"):
            base = {m.name for m in models.values() if m.layer == body[6:] or m.schema == body[6:]}
        else:
            name = body.rpartition(".")[2]
            if name not in models:
                close = difflib.get_close_matches(name, list(models), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ModelError(f"--select {term}: no model named '{name}'{hint}")
            base = {name}
        if not base:
            raise ModelError(f"--select {term}: selects no model")
        chosen |= base
        for name in base:
            if up:
                chosen |= ancestors(models, name)
            if down:
                chosen |= descendants(models, name)
    return chosen
