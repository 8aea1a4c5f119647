"""What proactive fill fetches (pure): a real title's HLS playlists, init sections, first K segments."""

from __future__ import annotations

from edge.proactive import FillPlan, plan_segments, variant_paths
from steer.hrw import assign
from tests.conftest import TinyTitle


def test_plan_of_a_real_title(tiny_title: TinyTitle) -> None:
    root = tiny_title.path
    master = f"/media/{tiny_title.name}/master.m3u8"
    playlists = variant_paths(master, (root / "master.m3u8").read_text())
    assert len(playlists) >= 3  # two video rungs and the audio rendition
    for p in playlists:
        assert (root.parent / p.removeprefix("/media/")).is_file()
        segs = plan_segments(p, (root.parent / p.removeprefix("/media/")).read_text(), 2)
        assert len(segs) == 3  # the init section, then segments 1 and 2
        for s in segs:
            assert (root.parent / s.removeprefix("/media/")).is_file(), s


def test_absolute_and_escaping_uris_are_not_filled() -> None:
    text = ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttps://other.example/a.m4s\n"
            "#EXTINF:2,\n../../../etc/passwd\n#EXTINF:2,\nseg-1.m4s?x=1\n")
    assert plan_segments("/media/t/v1/r0/index.m3u8", text, 5) == ["/media/t/v1/r0/seg-1.m4s"]


def test_only_the_assigned_edges_fill() -> None:
    fleet = ("edge-1", "edge-2", "edge-3", "edge-4")
    for title in ("a", "b", "c", "movie-42"):
        owners = assign(title, fleet, replicas=2)
        mine = [e for e in fleet if FillPlan(e, fleet, 3, replicas=2).mine(title)]
        assert mine == sorted(owners, key=fleet.index)
    assert not FillPlan("edge-1", fleet, 0).mine("a")
