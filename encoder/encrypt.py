"""Common encryption (CENC, ISO/IEC 23001-7 `cenc`: AES-128 CTR) with the W3C ClearKey key
system: keys, what the manifests say, where keys are kept, and the licence answer (pure
except `store_key` / `load_key`).

ffmpeg's mp4 muxer encrypts every video and audio sample (`encryption_scheme cenc-aes-ctr`;
it has no `cbcs`). The key and its KID are given (`--key`, `--kid`) or made, and kept in
``MEDIA/.keys/TITLE/VERSION.json`` (mode 0600): outside every title folder, and the origin
serves no name starting with a dot, so its media routes never serve a key. Players get the
key from the key server (``POST /keys/TITLE`` on `abr encoder serve --key-token`) with a
bearer token. Widevine, PlayReady and FairPlay need licences from their owners: the seam is
`--license-url` (written into the MPD as `dashif:Laurl` and into HLS as the key URI's
licence), where a licence server of theirs would answer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoder.errors import EncoderError

W3C_CLEARKEY = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
"""The W3C common PSSH system id (EME ClearKey, W3C "Common SystemID and PSSH Box Format")."""
KEYS_DIR = ".keys"


class EncryptionError(EncoderError):
    """A key or KID option is malformed."""


@dataclass(frozen=True)
class ClearKey:
    kid: bytes
    """16-byte key id."""
    key: bytes
    """16-byte AES-128 content key."""

    @property
    def kid_uuid(self) -> str:
        h = self.kid.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_hex16(text: str, option: str) -> bytes:
    """16 bytes from 32 hex digits (dashes of a UUID allowed); one sentence otherwise."""
    digits = text.strip().removeprefix("0x").replace("-", "")
    if len(digits) != 32:
        raise EncryptionError(f"{option} must be 32 hex digits (16 bytes, AES-128); got "
                              f"{len(digits)} characters")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise EncryptionError(f"{option} must be 32 hex digits (16 bytes); {text!r} is not hex") from None


def make_key(key_hex: str | None = None, kid_hex: str | None = None) -> ClearKey:
    """The given key/KID, or new random ones."""
    key = parse_hex16(key_hex, "--key") if key_hex else secrets.token_bytes(16)
    kid = parse_hex16(kid_hex, "--kid") if kid_hex else secrets.token_bytes(16)
    return ClearKey(kid, key)


def ffmpeg_options(key: ClearKey) -> str:
    """The mp4 muxer options (the dash muxer's `format_options`) that encrypt every sample."""
    return f"encryption_scheme=cenc-aes-ctr:encryption_key={key.key.hex()}:encryption_kid={key.kid.hex()}"


def pssh(kid: bytes) -> bytes:
    """A version-1 `pssh` box of the W3C common system listing `kid` (EME `cenc` init data)."""
    system = bytes.fromhex(W3C_CLEARKEY.replace("-", ""))
    body = struct.pack(">I", 1 << 24) + system + struct.pack(">I", 1) + kid + struct.pack(">I", 0)
    return struct.pack(">I", 8 + len(body)) + b"pssh" + body


def add_pssh(init: bytes, box: bytes) -> bytes:
    """`init` (an fMP4 init segment) with `box` appended to its `moov` (ISO/IEC 23001-7 §8.1).

    ffmpeg's mp4 muxer writes no `pssh`; without one a browser fires no `encrypted` event,
    which hls.js waits for to start its ClearKey session. An init segment has no sample
    offsets into itself (empty `stco`), so growing `moov` moves nothing that is referenced.
    """
    out, i = b"", 0
    while i + 8 <= len(init):
        size = struct.unpack(">I", init[i:i + 4])[0]
        if size < 8 or i + size > len(init):
            raise EncryptionError("ffmpeg wrote an init segment with a malformed box")
        if init[i + 4:i + 8] == b"moov":
            out += struct.pack(">I", size + len(box)) + init[i + 4:i + size] + box
        else:
            out += init[i:i + size]
        i += size
    if b"moov" not in out[:i] or i != len(init):
        raise EncryptionError("ffmpeg wrote an init segment without a moov box")
    return out


def hls_key_line(key: ClearKey, tag: str = "EXT-X-KEY") -> str:
    """`EXT-X-KEY` (or `EXT-X-SESSION-KEY`) for CENC samples with ClearKey (RFC 8216bis
    §4.4.4.4). The URI's data is the KID (hls.js reads a ClearKey key's id from it; the
    session's init data is the init segment's `pssh`)."""
    uri = "data:text/plain;base64," + base64.b64encode(key.kid).decode()
    return (f'#{tag}:METHOD=SAMPLE-AES-CTR,KEYFORMAT="org.w3.clearkey",KEYFORMATVERSIONS="1",'
            f'URI="{uri}",KEYID=0x{key.kid.hex()}')


def key_path(media: Path, title: str, version: str) -> Path:
    return media / KEYS_DIR / title / f"{version}.json"


def store_key(media: Path, title: str, version: str, key: ClearKey) -> Path:
    """Write the key beside the media (never inside a title folder), readable by its owner only."""
    path = key_path(media, title, version)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"scheme": "cenc", "system": "org.w3.clearkey", "kid": key.kid.hex(),
                   "key": key.key.hex()}, f)
    os.replace(tmp, path)
    return path


def drop_other_keys(media: Path, title: str, version: str) -> None:
    """After a re-encode is published, the old versions' keys go with their segments."""
    folder = media / KEYS_DIR / title
    for p in folder.glob("*.json"):
        if p.stem != version:
            with contextlib.suppress(OSError):
                p.unlink()


def load_key(media: Path, title: str) -> ClearKey | None:
    """The key of the title's published version, or None (no such title, not encrypted)."""
    try:
        version = json.loads((media / title / "title.json").read_text())["version"]
        data = json.loads(key_path(media, title, str(version)).read_text())
        return ClearKey(bytes.fromhex(data["kid"]), bytes.fromhex(data["key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def license_response(request: Any, key: ClearKey) -> dict[str, Any] | None:
    """The ClearKey licence (EME §9.1.4: a JWK set) for a request {"kids": [...]} naming our KID."""
    if not isinstance(request, dict) or not isinstance(request.get("kids"), list):
        raise EncryptionError('a ClearKey licence request is {"kids": ["<base64url KID>"], "type": "temporary"}')
    try:
        kids = {_unb64url(k) for k in request["kids"] if isinstance(k, str)}
    except ValueError as exc:
        raise EncryptionError("a KID in the licence request is not base64url") from exc
    if key.kid not in kids:
        return None
    return {"keys": [{"kty": "oct", "kid": _b64url(key.kid), "k": _b64url(key.key)}],
            "type": str(request.get("type", "temporary"))}
