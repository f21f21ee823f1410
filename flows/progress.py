"""Progress of a build for people: the flow reports stage lines here; the CLI subscribes and prints them.

Kept apart from logging so the `warehouse build` command can show concise stage lines while Prefect's own
console logs stay quiet (they still reach the Prefect API and UI).
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def report(stage: str, message: str) -> None:
    for listener in list(_listeners):
        try:
            listener(stage, message)
        except Exception:  # noqa: BLE001 - progress display must never break a build
            pass
