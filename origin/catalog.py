"""The title catalog: what ``GET /titles`` and ``GET /titles/{name}`` answer.

:func:`summarize` is pure (title.json in, catalog entry out); :func:`load_title` and
:func:`scan` read the media folder. A folder is a title when its name is a title name
(:func:`origin.media.is_title_name`) and it holds a readable ``title.json``; temporary
folders of titles being published (``.tmp-*``) are hidden names and never listed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from origin.media import is_title_name


def locate(media_dir: Path | str, name: str, segments: tuple[str, ...]) -> str:
    """The file ``media_dir/name/segments...``, or raises LookupError.

    The title folder must be a real folder (not a symlink) holding a ``title.json``; a
    symlink further down is followed only when its target lies inside the title folder,
    so nothing outside the media root is reachable. Costs one ``lstat`` per path segment
    (plus a ``realpath`` for the rare symlink), which matters at thousands of requests/s.
    """
    if not is_title_name(name):
        raise LookupError(f"{name!r} is not a title name")
    title = os.path.join(media_dir, name)
    try:
        if not stat.S_ISDIR(os.lstat(title).st_mode):
            raise LookupError(f"{name!r} is not a title folder")
        # Not (or no longer) a published title without title.json: the encoder writes it
        # into the temporary folder before the atomic rename.
        if not stat.S_ISREG(os.lstat(os.path.join(title, "title.json")).st_mode):
            raise LookupError(f"no title {name!r}")
        path = title
        for segment in segments:
            path = os.path.join(path, segment)
            if stat.S_ISLNK(os.lstat(path).st_mode):
                real_title = os.path.realpath(title)
                path = os.path.realpath(path)
                if not path.startswith(real_title + os.sep):
                    raise LookupError("path lies outside the title folder")
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise LookupError("not found") from exc
    return path


class TitleError(LookupError):
    """A title does not exist or its title.json cannot be read."""


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(meta: dict[str, Any], name: str, media_prefix: str = "/media") -> dict[str, Any]:
    """The catalog entry of one title from its title.json (contracts.md "title.json").

    URLs are absolute paths (no host) so that they stay valid through an edge that keeps
    the origin's URL space. ``bitrate_bps`` is the measured average when known, else the
    target. A rendition's ``id`` is the name the ladder gave it (title.json). Quality scores
    are copied when the encoder measured them.
    """
    base = f"{media_prefix}/{name}/"
    manifests = meta.get("manifests") or {}
    renditions = []
    for rendition in meta.get("renditions") or []:
        if not isinstance(rendition, dict):
            continue
        bitrate = _number(rendition.get("average_bitrate_bps")) or _number(
            rendition.get("target_bitrate_bps")
        )
        entry: dict[str, Any] = {
            "id": rendition.get("id"),
            "kind": rendition.get("kind"),
            "codecs": rendition.get("codecs"),
            "bitrate_bps": bitrate,
            "peak_bitrate_bps": _number(rendition.get("peak_bitrate_bps")),
            "playlist_url": base + rendition["playlist"] if rendition.get("playlist") else None,
            "segment_count": len(rendition.get("segments") or []),
        }
        if rendition.get("kind") == "video":
            width, height = rendition.get("width"), rendition.get("height")
            entry["width"], entry["height"] = width, height
            entry["resolution"] = f"{width}x{height}" if width and height else None
            entry["frame_rate"] = _number(rendition.get("frame_rate"))
            entry["codec"] = meta.get("codec")  # the title's video codec (h264, vp9, av1)
        else:
            entry["channels"] = rendition.get("channels")
            entry["sample_rate"] = rendition.get("sample_rate")
        if isinstance(rendition.get("quality"), dict):
            entry["quality"] = rendition["quality"]
        renditions.append(entry)
    return {
        "name": name,
        "duration_s": _number(meta.get("duration_s")),
        "segment_s": _number(meta.get("segment_s")),
        "codec": meta.get("codec"),
        "created": meta.get("created"),
        "renditions": renditions,
        "manifests": {
            kind: base + str(file) for kind, file in manifests.items() if isinstance(file, str)
        },
        "player": {"hls": f"/play/{name}?player=hls", "dash": f"/play/{name}?player=dash"},
    }


def load_title(media_dir: Path, name: str) -> dict[str, Any]:
    """Reads ``media_dir/name/title.json``; raises :class:`TitleError` when it is not a title."""
    try:
        path = locate(media_dir, name, ("title.json",))
        with open(path, "rb") as file:
            meta = json.load(file)
    except (LookupError, FileNotFoundError) as exc:
        raise TitleError(f"no title {name!r}") from exc
    except (OSError, ValueError) as exc:
        raise TitleError(f"title {name!r} has an unreadable title.json: {exc}") from exc
    if not isinstance(meta, dict):
        raise TitleError(f"title {name!r} has a title.json that is not an object")
    return meta


def scan(media_dir: Path, media_prefix: str = "/media") -> list[dict[str, Any]]:
    """Catalog entries of every published title in ``media_dir``, sorted by name.

    Folders that vanish or whose title.json is unreadable while scanning are skipped.
    """
    try:
        names = sorted(
            entry.name for entry in os.scandir(media_dir) if entry.is_dir(follow_symlinks=False)
        )
    except FileNotFoundError:
        return []
    titles = []
    for name in names:
        if not is_title_name(name):
            continue
        try:
            titles.append(summarize(load_title(media_dir, name), name, media_prefix))
        except TitleError:
            continue
    return titles
