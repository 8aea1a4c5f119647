"""hyperframe_compat: the same repr text, and another hyperframe version refused in one sentence."""

from __future__ import annotations

import binascii

import hyperframe.frame as frame
import pytest

from player_sim import hyperframe_compat
from player_sim.errors import PlayerError


@pytest.mark.parametrize("size", [0, 1, 10, 11, 12, 100_000])
def test_reprs_are_unchanged(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    hexed = binascii.hexlify(data).decode()        # what hyperframe 6.1.0 shows, written out
    shown = "None" if not data else f"<hex:{hexed[:20]}{'...' if len(hexed) > 20 else ''}>"
    hyperframe_compat.apply()
    hyperframe_compat.apply()
    assert repr(frame.DataFrame(1, data=data)) == f"DataFrame(stream_id=1, flags=[]): {shown}"


def test_another_version_is_refused() -> None:
    with pytest.raises(PlayerError, match=r"needs hyperframe 6\.1\.0 .* but 6\.2\.0 is installed"):
        hyperframe_compat.check("6.2.0")
    hyperframe_compat.check()
