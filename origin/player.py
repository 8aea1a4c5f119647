"""The player page: one HTML page that plays a title with hls.js or dash.js.

:func:`render_page` is pure. Every URL in the page is relative to ``/play/{name}``
(``../media/...``, ``../static/...``) so that the same page works when an edge serves the
origin's URL space, under any host or path prefix.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any, Final

PLAYERS: Final[dict[str, str]] = {
    # player name: (library file under /static/vendor/)
    "hls": "hls.min.js",
    "dash": "dash.all.min.js",
}
"""Player names accepted by ``?player=`` and the library each page loads."""

VENDOR_FILES: Final[dict[str, str]] = {
    # served name -> path inside node_modules (dash.js 5 ships UMD builds under dist/modern)
    "hls.min.js": "hls.js/dist/hls.min.js",
    "dash.all.min.js": "dashjs/dist/modern/umd/dash.all.min.js",
}
"""Files served under ``/static/vendor/`` and where npm installs them."""


def _template(name: str) -> str:
    return resources.files("origin").joinpath("static", name).read_text(encoding="utf-8")


def render_page(name: str, player: str, manifests: dict[str, str], renditions: list[Any],
                codec: str | None = None) -> str:
    """The player page for title ``name`` with ``player`` ("hls" or "dash").

    ``manifests`` maps "hls"/"dash" to file names inside the title folder; ``renditions``
    are catalog entries (shown before the player knows its own list, and the source of
    the renditions' names); ``codec`` is the title's video codec.
    """
    if codec is None:
        codec = next((r.get("codec") for r in renditions if isinstance(r, dict) and r.get("codec")), None)
    manifest = manifests.get(player, "master.m3u8" if player == "hls" else "manifest.mpd")
    library = f"../static/vendor/{PLAYERS[player]}"
    config = {
        "title": name,
        "player": player,
        "manifestUrl": f"../media/{name}/{manifest}",
        "library": library,
        "renditions": renditions,
        # QoE beacons (README "QoE beacons"): /beacon of the host that serves the page, an
        # edge; a host that takes none (this origin, an edge without --redis) turns them off.
        "beaconUrl": "../beacon",
        "beaconIntervalS": 10,
    }
    # Inside <script>, "</" would end the element: escape it (HTML §4.12.1.3).
    config_json = json.dumps(config).replace("</", "<\\/")
    page = _template("player.html")
    return (
        page.replace("{{TITLE}}", html.escape(name))
        .replace("{{PLAYER}}", html.escape(player))
        .replace("{{CODEC}}", html.escape(codec or "–"))
        .replace("{{OTHER_PLAYER}}", "dash" if player == "hls" else "hls")
        .replace("{{LIBRARY}}", html.escape(library))
        .replace("{{CONFIG_JSON}}", config_json)
    )


def render_error_page(status: int, heading: str, detail: str, home: str = "../") -> str:
    """A small HTML error page (missing title, player libraries not installed…).

    ``home`` is the catalog page relative to the page's URL (error pages are served at
    ``/play/{name}``, so ``../`` is ``/``, through an edge too).
    """
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{status} {html.escape(heading)}</title>"
        "<body style='font-family:sans-serif;max-width:50em;margin:2em auto'>"
        f"<h1>{html.escape(heading)}</h1><p>{html.escape(detail)}</p>"
        f"<p><a id=home href='{html.escape(home, quote=True)}'>all titles</a></p></body></html>\n"
    )


def render_index(titles: list[dict[str, Any]]) -> str:
    """The home page: every title with links to its two player pages and its manifests."""
    rows = []
    for title in titles:
        name = html.escape(title["name"])
        ladder = ", ".join(
            html.escape(str(r.get("id"))) for r in title["renditions"] if r.get("kind") == "video"
        )
        duration = title.get("duration_s")
        codec = html.escape(str(title.get("codec") or ""))
        rows.append(
            f"<tr><td>{name}</td><td>{'' if duration is None else f'{duration:.1f} s'}</td>"
            f"<td>{codec}</td><td>{ladder}</td>"
            f"<td><a href='play/{name}?player=hls'>hls.js</a> · "
            f"<a href='play/{name}?player=dash'>dash.js</a></td>"
            f"<td><a href='media/{name}/master.m3u8'>m3u8</a> · "
            f"<a href='media/{name}/manifest.mpd'>mpd</a></td></tr>"
        )
    body = (
        "".join(rows) or "<tr><td colspan=6>No titles yet: run <code>abr encode</code>.</td></tr>"
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>abrstack origin</title>"
        "<link rel=stylesheet href='static/player.css'><body><h1>Titles</h1>"
        "<table><thead><tr><th>title</th><th>duration</th><th>codec</th><th>renditions</th><th>play</th>"
        f"<th>manifests</th></tr></thead><tbody id=titles>{body}</tbody></table>"
        "<p><a href='titles'>catalog (JSON)</a> · <a href='metrics'>metrics</a></p></body></html>\n"
    )
