"""Fixtures shared by every part's tests: tiny sources made by ffmpeg (lavfi) and a tiny
encoded title, both made once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from encoder.encode import EncodeConfig, encode
from encoder.sample import make_sample


@dataclass(frozen=True)
class TinyTitle:
    """A small encoded title: two H.264 rungs (360p, 240p) + AAC, 2-s segments, 8 s."""

    media_dir: Path
    """The media folder that holds the title."""
    name: str
    """The title's name."""

    @property
    def path(self) -> Path:
        return self.media_dir / self.name


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-s 640x360 30-fps test pattern with a 440 Hz tone (H.264 + AAC)."""
    out = tmp_path_factory.mktemp("sources") / "tiny.mp4"
    make_sample(out, 8.0, (640, 360), 30, True, progress="none")
    return out


@pytest.fixture(scope="session")
def tiny_title(tmp_path_factory: pytest.TempPathFactory, tiny_source: Path) -> TinyTitle:
    """`tiny_source` encoded once per session as title `tiny` (360p + 240p + audio)."""
    media = tmp_path_factory.mktemp("media")
    encode(
        EncodeConfig(source=tiny_source, title="tiny", media_dir=media, segment_s=2.0,
                     progress="none")
    )
    return TinyTitle(media, "tiny")
