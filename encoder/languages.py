"""Language codes: what a source's track metadata or the user gives (ISO 639-2 `eng`/`fre`,
ISO 639-1 `en`, a BCP 47 tag `en-US`) becomes the BCP 47 tag manifests carry (RFC 8216
§4.3.4.1 LANGUAGE, ISO/IEC 23009-1 `lang`): the two-letter code where one exists, else the
three-letter one (RFC 5646 §2.2.1), with any region or script subtags kept.

The table (languages.json) is the ISO 639-2 list of Debian's iso-codes package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from encoder.errors import EncoderError

UNDETERMINED = "und"
_TAG = re.compile(r"([A-Za-z]{2,3})((?:-[A-Za-z0-9]{1,8})*)")


class LanguageError(EncoderError):
    """A language code that is not ISO 639 / BCP 47."""


@dataclass(frozen=True)
class Language:
    tag: str
    """BCP 47 tag for the manifests: `en`, `fr-CA`, `und`."""
    name: str
    """English name, for NAME / Label: `English`."""


@cache
def _table() -> dict[str, tuple[str, str]]:
    """Every ISO 639-1 / 639-2 (T and B) code -> (shortest code, English name)."""
    raw = resources.files("encoder").joinpath("languages.json").read_text(encoding="utf-8")
    out: dict[str, tuple[str, str]] = {}
    for alpha2, alpha3, biblio, name in json.loads(raw)["languages"]:
        entry = (alpha2 or alpha3, name)
        for code in (alpha2, alpha3, biblio):
            if code:
                out[code] = entry
    return out


def language(code: str, *, where: str) -> Language:
    """The language of `code` (case-insensitive); LanguageError naming `where` if unknown."""
    m = _TAG.fullmatch(code.strip())
    found = _table().get(m.group(1).lower()) if m else None
    if m is None or found is None:
        raise LanguageError(
            f"unknown language code {code!r} in {where}; use an ISO 639 code such as en, fr, "
            "deu or pt-BR"
        )
    tag, name = found
    rest = m.group(2)
    if rest:  # region/script subtags: `-br` -> `-BR`, `-latn` -> `-Latn` (RFC 5646 §2.1.1)
        parts = [p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in rest[1:].split("-")]
        tag = "-".join([tag, *parts])
    return Language(tag, name)


def source_language(tag: str | None) -> Language:
    """A source track's language tag, `und` when missing or not a language code."""
    if not tag:
        return Language(UNDETERMINED, "Undetermined")
    try:
        return language(tag, where="the source")
    except LanguageError:
        return Language(UNDETERMINED, "Undetermined")


def alpha3(tag: str) -> str:
    """The ISO 639-2/T code of a BCP 47 tag's language (`fr-CA` -> `fra`), `und` if none."""
    primary = tag.split("-")[0].lower()
    if len(primary) == 3:
        return primary
    for code, (short, _) in _table().items():  # alpha-2, then /T, then /B per language
        if short == primary and len(code) == 3:
            return code
    return UNDETERMINED
