"""The one module that reaches into granian: it refuses other versions and does nothing
at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge import EdgeError
from edge.granian_compat import GRANIAN_VERSION, check


def test_the_installed_granian_is_the_one_written_for() -> None:
    check()


@pytest.mark.parametrize("version", ["2.8.8", "2.9.0", "3.0.0"])
def test_another_granian_is_refused_in_one_sentence(version: str) -> None:
    with pytest.raises(EdgeError) as err:
        check(version)
    msg = str(err.value)
    assert f"granian {GRANIAN_VERSION}" in msg and version in msg
    assert f"pip install granian=={GRANIAN_VERSION}" in msg and "\n" not in msg


def test_importing_it_touches_no_granian_internals() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, edge.granian_compat, edge.app, edge.server; "
                               "print(sorted(m for m in sys.modules if m.startswith('granian')))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
