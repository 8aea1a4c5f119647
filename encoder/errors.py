"""Errors the encoder reports to its user, each one sentence naming the input and the cause."""

from __future__ import annotations

from abrstack.errors import AbrError


class EncoderError(AbrError):
    """Base of every encoder error."""


class SourceError(EncoderError):
    """The source file is missing, unreadable, or not a usable video."""


class LadderError(EncoderError):
    """A ladder file or option is malformed or cannot be applied to the source."""


class PublishError(EncoderError):
    """The title cannot be published (exists without --force, bad name, disk)."""


class FfmpegError(EncoderError):
    """ffmpeg exited with an error; carries the command and the tail of its log."""

    def __init__(self, message: str, cmd: list[str], stderr: str) -> None:
        super().__init__(message)
        self.cmd = cmd
        self.stderr = stderr


class Cancelled(EncoderError):
    """The encode was interrupted (Ctrl-C, SIGTERM or a cancelled job)."""

    exit_code = 130
