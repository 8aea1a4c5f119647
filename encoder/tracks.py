"""Which audio and subtitle renditions a title carries, decided from the source's streams
and the user's options (pure, no files written).

Every audio stream becomes a stereo AAC rendition (its language, name and default flag from
the stream's metadata, `--audio-lang` for missing ones); a stream of 5.1 or more channels
also becomes a 5.1 AAC rendition (6 channels; 7.1 is downmixed). Text subtitle streams and
side-loaded subtitle files become WebVTT renditions; bitmap subtitles (DVD, PGS, DVB) cannot
become text and are reported, not carried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from encoder.errors import EncoderError
from encoder.languages import UNDETERMINED, Language, LanguageError, language, source_language
from encoder.probe import SourceInfo

STEREO_BITRATE_BPS = 128_000
SURROUND_BITRATE_BPS = 384_000
SURROUND_CHANNELS = 6
SAMPLE_RATE = 48_000
SUBTITLE_EXTENSIONS = (".srt", ".vtt", ".ass", ".ssa")


class SubtitleError(EncoderError):
    """A side-loaded subtitle file is missing or does not parse."""


@dataclass(frozen=True)
class AudioRendition:
    """One audio rendition: a source audio stream encoded at one channel layout."""

    id: str
    """Rendition id and folder name: `audio` (one stereo track), else `audio-<lang>[-6ch]`."""
    source_index: int
    """The source's audio stream (`0:a:<source_index>`)."""
    channels: int
    """Output channels: 2 or 6 (5.1)."""
    bitrate_bps: int
    """Target bitrate."""
    language: str = UNDETERMINED
    """BCP 47 tag."""
    name: str = "audio"
    """Human name (HLS NAME, DASH Label)."""
    default: bool = True
    """The rendition players choose without a preference (one per title)."""
    description: bool = False
    """An audio description track (DASH Role description; HLS CHARACTERISTICS)."""
    codec: str = "aac"
    """The ffmpeg encoder."""


@dataclass(frozen=True)
class SubtitleRendition:
    """One WebVTT rendition."""

    id: str
    """Rendition id and folder name: `sub-<lang>`."""
    language: str
    """BCP 47 tag."""
    name: str
    """Human name."""
    default: bool
    """Shown without the viewer choosing (the source's default disposition)."""
    forced: bool
    """Forced subtitles (only the foreign-language parts)."""
    input: int
    """ffmpeg input that carries it: 0 the source, 1.. side-loaded files in order."""
    stream: int
    """Subtitle stream index within that input (`<input>:s:<stream>`)."""
    origin: str
    """Where it came from: `source stream N (codec)` or the side file's name."""
    captions: bool = False
    """SDH / captions for the deaf and hard of hearing."""


@dataclass(frozen=True)
class SideSubtitle:
    """A `--subtitles FILE[:LANG]` argument."""

    path: Path
    language: Language


def parse_audio_langs(spec: str | None) -> tuple[Language | None, ...]:
    """`--audio-lang en,fr` -> per audio stream in order; `-` or empty keeps the source's tag."""
    if not spec:
        return ()
    out: list[Language | None] = []
    for part in spec.split(","):
        part = part.strip()
        out.append(None if part in ("", "-") else language(part, where="--audio-lang"))
    return tuple(out)


def parse_side_subtitle(arg: str) -> SideSubtitle:
    """`FILE[:LANG]`: the language after the last colon when it looks like a language tag."""
    path, lang = arg, None
    head, sep, tail = arg.rpartition(":")
    if sep and head and "/" not in tail and "." not in tail:
        path, lang = head, tail
    p = Path(path)
    if not p.is_file():
        raise SubtitleError(f"subtitle file {path} does not exist")
    return SideSubtitle(p.resolve(), language(lang, where=f"--subtitles {arg}") if lang
                        else Language(UNDETERMINED, "Undetermined"))


def check_subtitle_file(side: SideSubtitle) -> None:
    """Raise SubtitleError unless the file is a subtitle format ffmpeg parses with at least one cue."""
    import av

    p = side.path
    if p.stat().st_size == 0:
        raise SubtitleError(f"subtitle file {p} is empty")
    try:
        with av.open(str(p)) as c:
            if not c.streams.subtitles:
                raise SubtitleError(f"subtitle file {p} is not a subtitle file ffmpeg can read "
                                    f"(SRT, WebVTT, ASS/SSA)")
            cues = sum(1 for pkt in c.demux(c.streams.subtitles[0]) if pkt.size)
    except SubtitleError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise SubtitleError(f"subtitle file {p} does not parse as SRT, WebVTT or ASS/SSA "
                            f"({type(exc).__name__})") from exc
    if cues == 0:
        raise SubtitleError(f"subtitle file {p} does not parse: no cue found (SRT, WebVTT or ASS/SSA)")


def plan_audio(info: SourceInfo, langs: tuple[Language | None, ...] = (),
               surround: bool = True) -> tuple[AudioRendition, ...]:
    """The audio renditions of `info`: default first, then the source's order."""
    tracks = info.audio_tracks
    if len(langs) > len(tracks):
        raise LanguageError(f"--audio-lang gives {len(langs)} languages but the source has "
                            f"{len(tracks)} audio track(s)")
    if not tracks:
        return ()
    if len(tracks) == 1 and (tracks[0].channels < SURROUND_CHANNELS or not surround) and not langs:
        lang = source_language(tracks[0].language)
        return (AudioRendition("audio", 0, 2, STEREO_BITRATE_BPS, lang.tag,
                               tracks[0].title or _name(lang), True, tracks[0].description),)
    default_index = next((t.index for t in tracks if t.default), tracks[0].index)
    out: list[AudioRendition] = []
    seen: set[str] = set()
    for t in tracks:
        given = langs[t.index] if t.index < len(langs) else None
        lang = given or source_language(t.language)
        base = _unique(f"audio-{lang.tag.lower()}", seen)
        name = t.title or _name(lang)
        if t.description:
            name += " (description)" if "descr" not in name.lower() else ""
        is_default = t.index == default_index
        out.append(AudioRendition(base, t.index, 2, STEREO_BITRATE_BPS, lang.tag, name,
                                  is_default, t.description))
        if surround and t.channels >= SURROUND_CHANNELS:
            out.append(AudioRendition(_unique(f"{base}-6ch", seen), t.index, SURROUND_CHANNELS,
                                      SURROUND_BITRATE_BPS, lang.tag, f"{name} (5.1)", False,
                                      t.description))
    return tuple(sorted(out, key=lambda r: not (r.default or (r.source_index == default_index))))


def plan_subtitles(info: SourceInfo, sides: tuple[SideSubtitle, ...] = ()
                   ) -> tuple[tuple[SubtitleRendition, ...], tuple[str, ...]]:
    """(WebVTT renditions, notes on subtitle streams that are not carried)."""
    out: list[SubtitleRendition] = []
    notes: list[str] = []
    seen: set[str] = set()
    for t in info.subtitle_tracks:
        if not t.text:
            notes.append(f"subtitle stream {t.index} ({t.codec}, {t.language or 'und'}) is bitmap "
                         "subtitles, which cannot become WebVTT text: not carried")
            continue
        lang = source_language(t.language)
        name = t.title or _name(lang) + (" (forced)" if t.forced else "") + (" (SDH)" if t.hearing_impaired else "")
        out.append(SubtitleRendition(_unique(f"sub-{lang.tag.lower()}", seen), lang.tag, name,
                                     t.forced, t.forced, 0, t.index,
                                     f"source subtitle stream {t.index} ({t.codec})", t.hearing_impaired))
    for i, side in enumerate(sides, start=1):
        lang = side.language
        out.append(SubtitleRendition(_unique(f"sub-{lang.tag.lower()}", seen), lang.tag, _name(lang),
                                     False, False, i, 0, os.path.basename(side.path)))
    return tuple(out), tuple(notes)


def _name(lang: Language) -> str:
    return "Unknown language" if lang.tag == UNDETERMINED else lang.name


def _unique(rid: str, seen: set[str]) -> str:
    out, n = rid, 2
    while out in seen:
        out, n = f"{rid}-{n}", n + 1
    seen.add(out)
    return out
