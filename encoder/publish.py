"""Atomic publishing: a title is built in a hidden temporary folder inside the media
folder and renamed into place only when complete and verified (rename(2) is atomic on
one file system). A failure leaves no partial title and keeps an existing one."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from abrstack.procs import pid_alive
from encoder.errors import PublishError

TITLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TMP_PREFIX = ".tmp-"
DIR_MODE = 0o755
FILE_MODE = 0o644


def make_readable(folder: Path) -> None:
    """Published titles are world-readable: folders 0755, files 0644 (whatever the umask)."""
    folder.chmod(DIR_MODE)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), DIR_MODE)
        for f in files:
            os.chmod(os.path.join(root, f), FILE_MODE)


def check_title_name(name: str) -> None:
    if not TITLE_NAME.fullmatch(name) or ".." in name:
        raise PublishError(
            f"title name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 128, not starting with '.' or '-')"
        )


def staging_dir(media: Path, title: str) -> Path:
    """A new temporary folder for `title` inside `media`; stale ones of dead encodes are removed."""
    try:
        media.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(f"cannot create the media folder {media}: {exc.strerror}") from exc
    remove_stale(media)
    staged = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{title}-{os.getpid()}-", dir=media))
    staged.chmod(DIR_MODE)  # mkdtemp makes it 0700; an origin running as another user reads it
    return staged


def remove_stale(media: Path) -> None:
    """Remove temporary folders left by encodes whose process is gone (killed, crashed)."""
    for entry in media.glob(f"{TMP_PREFIX}*"):
        m = re.fullmatch(rf"{re.escape(TMP_PREFIX)}(?:old-)?.*-(\d+)-[^-]+", entry.name)
        if m and not pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)



def publish(staged: Path, media: Path, title: str, *, force: bool) -> Path:
    """Rename `staged` to `media/title`; replace an existing title only with `force`."""
    dest = media / title
    make_readable(staged)
    if not dest.exists():
        try:
            os.rename(staged, dest)
        except OSError as exc:
            raise PublishError(f"cannot publish {dest}: {exc.strerror}") from exc
        return dest
    if not force:
        raise PublishError(f"title {title!r} already exists in {media} (use --force to replace it)")
    old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}old-{title}-{os.getpid()}-", dir=media))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(staged, dest)
    except OSError as exc:
        os.rename(old, dest)
        raise PublishError(f"cannot publish {dest}: {exc.strerror}") from exc
    shutil.rmtree(old, ignore_errors=True)
    return dest


def discard(staged: Path, *files: Path | None) -> None:
    """Remove a failed encode's temporary folder (and files it wrote elsewhere, e.g. its key)."""
    with contextlib.suppress(OSError):
        shutil.rmtree(staged)
    for f in files:
        if f is not None:
            with contextlib.suppress(OSError):
                f.unlink()
