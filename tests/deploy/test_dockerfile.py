"""The Dockerfile, checked without a Docker daemon: it parses with BuildKit's own parser
(the `dockerfile` package wraps moby/buildkit's Go parser), its build context (the checkout
less .dockerignore) holds every COPY source, and that context alone builds the package."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import dockerfile

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def _ignored(rel: str) -> bool:
    """Whether .dockerignore keeps ``rel`` (a path relative to the context) out of the context.
    Enough of Docker's rules for ours: a pattern matches the path or one of its parents."""
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        for p in prefixes:
            if fnmatch.fnmatch(p, pat) or (pat.startswith("**/")
                                           and fnmatch.fnmatch(p.split("/")[-1], pat[3:])):
                return True
    return False


def _context_copies() -> list[str]:
    """Sources of every COPY that reads the build context (not another stage)."""
    out = []
    for c in _commands():
        if c.cmd == "COPY" and not any(f.startswith("--from=") for f in c.flags):
            out += list(c.value[:-1])
    return out


def test_stages_user_and_entrypoint() -> None:
    cmds = _commands()
    froms = [c.value for c in cmds if c.cmd == "FROM"]
    assert len(froms) == 3
    args = dict(v.split("=", 1) for c in cmds if c.cmd == "ARG" for v in c.value)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert froms[-1] == ("${PYTHON_IMAGE}",)
    final = cmds[max(i for i, c in enumerate(cmds) if c.cmd == "FROM"):]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [c.value for c in final if c.cmd == "ENTRYPOINT"] == [("abr",)]
    runs = " ".join(c.value[0] for c in cmds if c.cmd == "RUN")
    assert "imageio_ffmpeg" in runs and "/opt/abr/bin/ffmpeg" in runs
    assert "redis-server" not in runs and "apt-get" not in runs


def test_copy_sources_exist_in_the_context() -> None:
    sources = _context_copies()
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the checkout"
        assert not _ignored(src), f"COPY {src}: .dockerignore keeps it out of the context"
    # Every package that pyproject installs is copied into the build stage.
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in meta["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in sources, f"the Dockerfile does not COPY {pattern}"


def test_dockerignore_keeps_out_local_state() -> None:
    for rel in (".venv/bin/python", "node_modules/hls.js", "media/sample/master.m3u8",
                "edge/__pycache__/app.cpython-311.pyc", ".git/HEAD", "out/demo"):
        assert _ignored(rel), rel
    assert not _ignored("edge/app.py")


def test_the_context_alone_builds_the_package(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for src in _context_copies():
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, ctx / src,
                            ignore=lambda d, names: [n for n in names if n == "__pycache__"])
        else:
            shutil.copy2(path, ctx / src)
    out = tmp_path / "wheel"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-q", "-w", str(out), str(ctx)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("abrstack-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("abrstack/cli.py", "edge/app.py", "origin/static/player.html",
                 "encoder/languages.json", "steer/hrw.py", "qoe/__init__.py"):
        assert must in names, must
