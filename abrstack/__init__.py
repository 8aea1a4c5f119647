"""abrstack: an adaptive-bitrate streaming stack (shared command line and errors)."""

__version__ = "0.1.0"
