"""Fixtures of the origin tests: a hand-made title folder and a real origin serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from origin_test_helpers import HandTitle, write_title

from origin.testing import running_origin


@pytest.fixture
def hand_title(tmp_path: Path) -> HandTitle:
    """A hand-made title ``show`` in a fresh media folder."""
    return write_title(tmp_path / "media", "show")


@pytest.fixture
def origin_url(hand_title: HandTitle) -> Iterator[str]:
    """Base URL of a real origin on 127.0.0.1 serving ``hand_title``'s media folder."""
    with running_origin(hand_title.media_dir) as url:
        yield url
