"""Event schemas shared by the services (the envelope is `abrstack.bus.Event`)."""

from __future__ import annotations

from collections.abc import Sequence

from abrstack.bus import Event, MalformedEvent

TITLES = "titles"
"""Topic: a title was published, replaced or deleted (sent after the atomic rename)."""
TITLE_KINDS = ("title.published", "title.replaced", "title.deleted")
MAX_TITLE_CHARS = 128


def title_event(kind: str, title: str, version: str | None = None,
                renditions: Sequence[str] = (), manifests: Sequence[str] = ()) -> Event:
    """A `titles` event: `kind` is one of `TITLE_KINDS`."""
    if kind not in TITLE_KINDS:
        raise ValueError(f"unknown title event {kind!r}; known: {', '.join(TITLE_KINDS)}")
    return Event(kind, {"title": title, "version": version, "renditions": list(renditions),
                        "manifests": list(manifests)})


def title_of(event: Event) -> str:
    """The title a `titles` event names; `MalformedEvent` when it is not a usable name."""
    title = event.data.get("title")
    if event.type not in TITLE_KINDS:
        raise MalformedEvent(f"not a titles event: {event.type!r}")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_TITLE_CHARS \
            or title.startswith((".", "-")) or "/" in title or ".." in title:
        raise MalformedEvent(f"bad title name {title!r}")
    return title
