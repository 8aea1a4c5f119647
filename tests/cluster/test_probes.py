"""Per-title probes as tasks on a LocalCluster (`abr encode --ladder per-title --scheduler`)."""

from __future__ import annotations

from pathlib import Path

from encoder.encode import EncodeConfig, encode
from tests.encoder.conftest import lavfi


def test_per_title_probes_run_on_the_cluster(tmp_path: Path) -> None:
    src = lavfi(tmp_path / "src.mp4", "testsrc2=size=320x180:rate=30", seconds=3, audio=False)
    media = tmp_path / "media"
    doc = encode(EncodeConfig(source=src, title="pt", media_dir=media, ladder="per-title",
                              scheduler="local", workers=2, segment_s=1.0, progress="none"))
    record = doc["per_title"]
    assert len(record["probes"]) == 2 * 6  # heights 144 and 180, six CRFs each
    assert all(p["kbps"] > 0 and 0 < p["vmaf"] <= 100 for p in record["probes"])
    assert [p.name for p in media.iterdir()] == ["pt"]  # the shared probe folder is gone
    assert not any("chunks" in n for n in doc["notes"])  # probes only: one ffmpeg encode
