"""The ClearKey key server: ``POST /keys/{title}`` answers an EME ClearKey licence request
({"kids": [...]}) with the title's key as a JWK set, to a bearer token only (RFC 6750).

Mounted on `abr encoder serve` when it is given `--key-token`. Browsers call it from the
player page's origin, so it answers CORS preflights; the token travels in `Authorization`,
never in the URL (where logs and caches would keep it). dash.js: protData
``{"org.w3.clearkey": {"serverURL": URL, "httpRequestHeaders": {"Authorization": "Bearer T"}}}``;
hls.js: ``drmSystems: {"org.w3.clearkey": {licenseUrl: URL}}`` with a `licenseXhrSetup` that
sets the header.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from aiohttp import web

from encoder.encrypt import EncryptionError, license_response, load_key
from encoder.publish import TITLE_NAME

CORS = {"Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"}


def _cors(request: web.Request) -> dict[str, str]:
    """CORS for any page origin (the bearer token is the authorisation). dash.js sends licence
    requests with credentials, which a wildcard origin does not allow (Fetch §3.2.5): the
    request's Origin is echoed, with Vary."""
    origin = request.headers.get("Origin")
    if not origin:
        return {**CORS, "Access-Control-Allow-Origin": "*"}
    return {**CORS, "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin"}
MAX_REQUEST_BYTES = 4096
"""A licence request names a few KIDs: a few hundred bytes."""


def _error(request: web.Request, status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={**_cors(request), "Cache-Control": "no-store", **headers})


def add_routes(app: web.Application, media: Path, token: str) -> None:
    """`POST /keys/{title}` (and its preflight) on `app`, serving keys of titles in `media`."""
    if len(token) < 16:
        raise EncryptionError("--key-token must be at least 16 characters")
    expected = f"Bearer {token}".encode()

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_cors(request))

    async def licence(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(request, 401, "a bearer token is required (Authorization: Bearer TOKEN)",
                          **{"WWW-Authenticate": 'Bearer realm="keys"'})
        title = request.match_info["title"]
        key = load_key(media, title) if TITLE_NAME.fullmatch(title) else None
        if key is None:
            return _error(request, 404, f"no encrypted title {title!r}")
        body = await request.content.read(MAX_REQUEST_BYTES + 1)
        if len(body) > MAX_REQUEST_BYTES:
            return _error(request, 413, f"a licence request is at most {MAX_REQUEST_BYTES} bytes")
        try:
            answer = license_response(json.loads(body or b"null"), key)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(request, 400, "the licence request is not JSON")
        except EncryptionError as exc:
            return _error(request, 400, str(exc))
        if answer is None:
            return _error(request, 404, f"title {title!r} has no key with the requested KID")
        return web.json_response(answer, headers={**_cors(request), "Cache-Control": "no-store"})

    app.router.add_route("OPTIONS", "/keys/{title}", preflight)
    app.router.add_post("/keys/{title}", licence)
