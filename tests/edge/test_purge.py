"""POST /purge: the body's shape, the target's normalisation, and where the token comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from abrstack.cli import build_parser
from edge import EdgeError
from edge.cli import build_config
from tests.edge.conftest import Obj

GOOD = {"Authorization": "Bearer s3cret"}
SEG = "/media/t/a.m4s"


@pytest.mark.parametrize("body", [
    {"path": {"nested": {"deeper": [1, 2]}}},
    {"path": ["/media/t/a.m4s"]},
    {"path": 5},
    {"path": SEG, "prefix": "/media/"},
    {"what": SEG},
    {},
    [SEG],
    "/media/t/a.m4s",
    {"path": "/" + "a" * 5000},
    {"path": "media/t/a.m4s"},
])
def test_a_bad_body_is_a_one_line_400(origin: Any, edge_factory: Any, body: object) -> None:
    _, url = origin
    with edge_factory([url], purge_token="s3cret") as edge:
        r = httpx.post(edge.http + "/purge", json=body, headers=GOOD)
        assert r.status_code == 400
        assert r.text.count("\n") == 1 and "Traceback" not in r.text
        deep = b'{"path": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        r = httpx.post(edge.http + "/purge", content=deep, headers=GOOD)
        assert r.status_code == 400


@pytest.mark.parametrize("spelling", [
    "/media//t/a.m4s", "/media/%74/a.m4s", "//media/t/a.m4s", "/media/t/a.m4s?CMCD=bl%3D1",
])
def test_every_spelling_of_a_path_purges_its_object(origin: Any, edge_factory: Any,
                                                    spelling: str) -> None:
    state, url = origin
    state.objects[SEG] = Obj(b"1", {"Cache-Control": "max-age=600"})
    with edge_factory([url], purge_token="s3cret") as edge:
        httpx.get(edge.http + SEG)
        r = httpx.post(edge.http + "/purge", json={"path": spelling}, headers=GOOD)
        assert r.status_code == 200 and r.json()["purged"] == 1, r.text
        assert httpx.get(edge.http + SEG).headers["x-cache"] == "MISS"


@pytest.mark.parametrize("spelling", ["/media/t/../t/a.m4s", "/media/t/%2e%2e/t/a.m4s",
                                      "/media/%2E%2e/x", "/media/t/.tmp-1/"])
def test_what_requests_refuse_purge_refuses(origin: Any, edge_factory: Any, spelling: str) -> None:
    _, url = origin
    with edge_factory([url], purge_token="s3cret") as edge:
        for kind in ("path", "prefix"):
            r = httpx.post(edge.http + "/purge", json={kind: spelling}, headers=GOOD)
            assert r.status_code == 400, (kind, r.text)


def _config(argv: list[str]) -> Any:
    return build_config(build_parser().parse_args(["edge", "--origin", "http://x", *argv]))


def test_the_token_comes_from_a_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABR_EDGE_PURGE_TOKEN", raising=False)
    assert _config([]).app.purge_token is None
    monkeypatch.setenv("ABR_EDGE_PURGE_TOKEN", "from-env")
    assert _config([]).app.purge_token == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert _config(["--purge-token-file", str(f)]).app.purge_token == "from-file"
    f.write_text("")
    with pytest.raises(EdgeError, match="empty"):
        _config(["--purge-token-file", str(f)])
    with pytest.raises(SystemExit):  # no token on the command line: ps shows argv
        _config(["--purge-token", "T"])
