import os
import subprocess
import sys
from pathlib import Path

import pytest

from encoder.ffmpeg import ffmpeg_exe

ABR = [sys.executable, "-m", "abrstack"]


def lavfi(out: Path, video: str | None, audio: bool = True, seconds: float = 3.0,
          extra: tuple[str, ...] = ()) -> Path:
    """Make a tiny source with ffmpeg's lavfi test sources."""
    args = [ffmpeg_exe(), "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"{video}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds)]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    args += [*extra, str(out)]
    subprocess.run(args, check=True, timeout=120)
    return out


def run_abr(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*ABR, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("src")
    return {
        "small": lavfi(d / "small.mp4", "testsrc2=size=320x180:rate=30", seconds=3),
        "odd": lavfi(d / "odd.mp4", "testsrc2=size=853x480:rate=25", seconds=2, audio=False,
                     extra=("-vf", "scale=853:480", "-pix_fmt", "yuv444p", "-profile:v", "high444")),
        "portrait": lavfi(d / "portrait.mp4", "testsrc2=size=360x640:rate=30", seconds=2),
        "short": lavfi(d / "short.mp4", "testsrc2=size=320x180:rate=30", seconds=1.2),
        "vfr": lavfi(d / "vfr.mp4", "testsrc2=size=320x180:rate=30", seconds=3, audio=False,
                     extra=("-vf", "setpts='if(lt(N,30),N/30/TB,(N-30)/15/TB+1/TB)'", "-fps_mode", "vfr")),
        "audio_only": lavfi(d / "tone.m4a", None, seconds=2),
        "faststart": lavfi(d / "fast.mp4", "testsrc2=size=320x180:rate=30", seconds=6,
                           extra=("-movflags", "+faststart")),
    }
