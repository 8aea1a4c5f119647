"""The root of every error that abrstack reports to a user as one sentence."""


class AbrError(Exception):
    """An error whose message is a complete sentence for the user (no traceback)."""

    exit_code: int = 1
