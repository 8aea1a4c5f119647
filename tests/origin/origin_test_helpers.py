"""Helpers of the origin tests (a module of its own so that test files can import it)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def raw_request(
    base_url: str, method: str, target: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Sends one HTTP/1.1 request with the request-target exactly as given (no client
    normalises ``..`` or percent-escapes) and returns (status, lower-case headers, body)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", b"Host: " + parts.netloc.encode()]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}".encode("latin-1"))
    lines.append(b"Connection: close")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


BIG_SEGMENT_BYTES = 300_000  # above origin.server.SMALL_FILE_BYTES: goes out with sendfile
SMALL_SEGMENT_BYTES = 5_000


@dataclass(frozen=True)
class HandTitle:
    """A title folder written by the test (no encoder needed)."""

    media_dir: Path
    name: str
    big: bytes
    """Content of 360p/seg-00001.m4s."""

    @property
    def path(self) -> Path:
        return self.media_dir / self.name


def write_title(media_dir: Path, name: str, seed: int = 1) -> HandTitle:
    """Writes a small but complete title folder (contracts.md layout) with random payloads."""
    title = media_dir / name
    (title / "360p").mkdir(parents=True)
    (title / "audio").mkdir()
    big = os.urandom(BIG_SEGMENT_BYTES - seed)  # size depends on seed: ETag changes too
    (title / "360p" / "init.mp4").write_bytes(b"\x00\x00\x00\x18ftypcmfc" + os.urandom(700))
    (title / "360p" / "seg-00001.m4s").write_bytes(big)
    (title / "360p" / "seg-00002.m4s").write_bytes(os.urandom(SMALL_SEGMENT_BYTES))
    (title / "audio" / "init.mp4").write_bytes(os.urandom(600))
    (title / "audio" / "seg-00001.m4s").write_bytes(os.urandom(3_000))
    (title / "360p" / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\nseg-00001.m4s\n#EXTINF:4.0,\nseg-00002.m4s\n'
        "#EXT-X-ENDLIST\n"
    )
    (title / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=640000,RESOLUTION=640x360,"
        'CODECS="avc1.64001e"\n360p/index.m3u8\n'
    )
    (title / "manifest.mpd").write_text('<?xml version="1.0"?>\n<MPD type="static"></MPD>\n')
    segments = [
        {"uri": "360p/seg-00001.m4s", "duration_s": 4.0, "size_bytes": len(big)},
        {"uri": "360p/seg-00002.m4s", "duration_s": 4.0, "size_bytes": SMALL_SEGMENT_BYTES},
    ]
    meta = {
        "format": 1,
        "title": name,
        "duration_s": 8.0,
        "segment_s": 4.0,
        "codec": "h264",
        "created": "2026-11-24T00:00:00Z",
        "manifests": {"hls": "master.m3u8", "dash": "manifest.mpd"},
        "renditions": [
            {
                "id": "360p",
                "kind": "video",
                "width": 640,
                "height": 360,
                "frame_rate": 30.0,
                "codecs": "avc1.64001e",
                "target_bitrate_bps": 600000,
                "average_bitrate_bps": 580000,
                "peak_bitrate_bps": 640000,
                "init": "360p/init.mp4",
                "playlist": "360p/index.m3u8",
                "segments": segments,
                "quality": {"vmaf": 91.2},
            },
            {
                "id": "audio",
                "kind": "audio",
                "codecs": "mp4a.40.2",
                "channels": 2,
                "sample_rate": 48000,
                "target_bitrate_bps": 128000,
                "init": "audio/init.mp4",
                "playlist": "audio/index.m3u8",
                "segments": [{"uri": "audio/seg-00001.m4s", "duration_s": 4.0, "size_bytes": 3000}],
            },
        ],
    }
    (title / "title.json").write_text(json.dumps(meta))
    return HandTitle(media_dir, name, big)
