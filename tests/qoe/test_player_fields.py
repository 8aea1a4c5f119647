"""The headless player's beacon fields (pure helpers): whatever the URL or the ids, a beacon
passes the schema the edge checks."""

from __future__ import annotations

from abrstack.beacons import validate_beacon
from player_sim.beacon import beacon_fields, default_beacon_url, last_via, name_field, title_of_url


def test_names_always_pass_the_schema() -> None:
    assert name_field("[::1]:8443", 128) == "1_:8443"
    assert name_field("..", 64) == "unknown" and name_field("a b/c", 64) == "a_b_c"
    assert title_of_url("https://e:8443/media/My Show/v2/master.m3u8?x=1") == "My_Show"
    assert title_of_url("http://e/x/manifest.mpd") == "x" and title_of_url("http://e/m.mpd") == "unknown"
    assert last_via("1.1 shield-1, 1.1 edge-a (abr)") == "edge-a" and last_via(None) is None
    assert default_beacon_url("https://127.0.0.1:8443/media/t/master.m3u8") == "https://127.0.0.1:8443/beacon"
    b = beacon_fields(None, session_id="p000.abc", title=title_of_url("http://[::1]:80/media/t/m.m3u8"),
                      abr="robustMPC", protocol="h3", edge=name_field("[::1]:8443", 128), seq=0,
                      retries=2, error="x" * 500, final=True)
    checked = validate_beacon(b)
    assert checked["errors"] == 3 and len(checked["error"]) == 200 and checked["startup_s"] is None
    assert checked["edge"] == "1_:8443" and checked["bitrate_bps"] == 0
