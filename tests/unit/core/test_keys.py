"""The S3 key layout: encode/decode round trips, name validation, prefixes, and the one-module rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from capturestream import keys
from capturestream.errors import InvalidKey, InvalidName

P, S = "pb1", "20261125T153527Z-abc123"

ROUND_TRIPS = [
    (keys.LiveInit(playback_id=P, session_id=S), f"live/{P}/{S}/init_0.mp4"),
    (keys.LiveInit(playback_id=P, session_id=S, epoch=3), f"live/{P}/{S}/init_3.mp4"),
    (keys.LiveSegment(playback_id=P, session_id=S, sequence=0), f"live/{P}/{S}/seg_00000000.m4s"),
    (keys.LiveSegment(playback_id=P, session_id=S, sequence=99_999_999), f"live/{P}/{S}/seg_99999999.m4s"),
    (keys.LivePlaylist(playback_id=P, session_id=S), f"live/{P}/{S}/index.m3u8"),
    (keys.SessionManifest(playback_id=P, session_id=S, kind="started"), f"sessions/{P}/{S}/started.json"),
    (keys.SessionManifest(playback_id=P, session_id=S, kind=keys.ManifestKind.ENDED), f"sessions/{P}/{S}/ended.json"),
    (keys.HealthManifest(playback_id=P, session_id=S), f"sessions/{P}/{S}/health.json"),
    (keys.VodRecording(playback_id=P, session_id=S), f"vod/{P}/{S}/recording.mp4"),
    (keys.VodPlaylist(playback_id=P, session_id=S), f"vod/{P}/{S}/index.m3u8"),
    (keys.LiveThumbnail(playback_id=P, session_id=S, sequence=7), f"thumbs/{P}/{S}/live_00000007.jpg"),
    (keys.SessionImage(playback_id=P, session_id=S, kind="poster.jpg"), f"thumbs/{P}/{S}/poster.jpg"),
    (keys.SessionImage(playback_id=P, session_id=S, kind="storyboard.vtt"), f"thumbs/{P}/{S}/storyboard.vtt"),
    (
        keys.LiveThumbnail(playback_id=P, session_id=S, sequence=7, image_format="webp"),
        f"thumbs/{P}/{S}/live_00000007.webp",
    ),
    (keys.StoryboardSprite(playback_id=P, session_id=S, index=2), f"thumbs/{P}/{S}/storyboard_002.jpg"),
]


@pytest.mark.parametrize(("typed", "key"), ROUND_TRIPS, ids=[k for _, k in ROUND_TRIPS])
def test_encode_decode_round_trip(typed: keys.MediaKey, key: str) -> None:
    """Each typed key spells exactly one string, and decoding that string gives the typed key back."""
    assert typed.key == key
    assert keys.decode(key) == typed
    assert str(typed) == key


INVALID_KEYS = [
    "",
    "live/",
    f"live/{P}/{S}/seg_1.m4s",  # sequence not zero-padded
    f"live/{P}/{S}/seg_000000001.m4s",  # nine digits
    f"live/{P}/{S}/init_007.mp4",  # same number, different spelling
    f"live/{P}/{S}/index.m3u8.tmp",
    f"live/../{S}/index.m3u8",
    f"live/{P}/../index.m3u8",
    f"live/{P}/{S}/../../sessions/x/y/started.json",
    f"/live/{P}/{S}/index.m3u8",
    f"live/{P}/{S}/sub/index.m3u8",
    f"sessions/{P}/{S}/paused.json",
    f"sessions/{P}/{S}/health.json.tmp",
    f"sessions/{P}/health.json",
    f"vod/{P}/{S}/recording.MP4",
    f"thumbs/{P}/{S}/other.jpg",
    f"other/{P}/{S}/index.m3u8",
    f"live/.hidden/{S}/index.m3u8",
    f"live/{'a' * 65}/{S}/index.m3u8",
]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_decode_rejects_keys_outside_the_layout(key: str) -> None:
    """Anything not spelled by this module is refused with InvalidKey."""
    with pytest.raises(InvalidKey):
        keys.decode(key)


@pytest.mark.parametrize(("typed", "key"), ROUND_TRIPS, ids=[k for _, k in ROUND_TRIPS])
def test_classify_names_the_class_decode_builds(typed: keys.MediaKey, key: str) -> None:
    assert keys.classify(key) is type(typed)


@pytest.mark.parametrize("key", [k for k in INVALID_KEYS if "init_007" not in k])
def test_classify_knows_no_key_outside_the_layout(key: str) -> None:
    """(``init_007.mp4`` matches the layout's pattern: classify does not check the canonical spelling.)"""
    assert keys.classify(key) is None


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a.b", "-lead", "_lead", "a b", "é", "a" * 65, "a\n", "a%2F"])
def test_invalid_names_are_refused(name: str) -> None:
    """Names are one regex: no separators, dots, spaces, non-ASCII, or overlong ids."""
    with pytest.raises(InvalidName):
        keys.validate_name(name)
    with pytest.raises(InvalidName):
        keys.LivePlaylist(playback_id=name, session_id=S)
    with pytest.raises(InvalidName):
        keys.LivePlaylist(playback_id=P, session_id=name)


@pytest.mark.parametrize("name", ["a", "A9", "x" * 64, "20261125T153527Z-abc123", "with_underscore"])
def test_valid_names_are_accepted(name: str) -> None:
    assert keys.validate_name(name) == name


@pytest.mark.parametrize("sequence", [-1, 100_000_000, 1.5, True, "1"])
def test_sequence_bounds(sequence: object) -> None:
    """Sequences are integers that fit the zero-padded width (so keys sort in media order)."""
    with pytest.raises(InvalidName):
        keys.LiveSegment(playback_id=P, session_id=S, sequence=sequence)  # type: ignore[arg-type]


def test_segment_keys_sort_in_media_order() -> None:
    """Listing a session's segments returns them in sequence order."""
    seqs = [0, 1, 9, 10, 99, 100, 12345]
    listed = sorted(keys.LiveSegment(playback_id=P, session_id=S, sequence=n).key for n in seqs)
    assert [keys.decode(k).sequence for k in listed] == seqs  # type: ignore[union-attr]


def test_listing_prefixes_end_in_slash_and_do_not_overlap() -> None:
    """``live/abc/`` must not list ``live/abcd/...`` (owncast's listing-prefix rule)."""
    assert keys.playback_prefix(keys.LIVE_PREFIX, "abc") == "live/abc/"
    assert keys.session_prefix(keys.VOD_PREFIX, "abc", S) == f"vod/abc/{S}/"
    assert not keys.LivePlaylist(playback_id="abcd", session_id=S).key.startswith(
        keys.playback_prefix(keys.LIVE_PREFIX, "abc")
    )
    with pytest.raises(InvalidKey):
        keys.session_prefix("elsewhere/", "abc", S)


def test_derived_prefixes_are_never_trigger_prefixes() -> None:
    """Thumbnails live where no trigger looks, so a function can't trigger itself."""
    assert not set(keys.DERIVED_PREFIXES) & set(keys.TRIGGER_PREFIXES)
    assert keys.is_derived(keys.LiveThumbnail(playback_id=P, session_id=S, sequence=1).key)
    assert not keys.is_derived(keys.LiveSegment(playback_id=P, session_id=S, sequence=1).key)


ROOT = Path(__file__).resolve().parents[3]
SOURCE_DIRS = ["core", "functions", "ingest_node", "devstack", "web"]
# A key literal: one of our top-level prefixes opening a string, followed by something that builds a path.
KEY_LITERAL = re.compile(r"""["'`](?:live|sessions|vod|thumbs)/(?:\{|\$\{|[A-Za-z0-9_-]+/)""")


def test_no_key_literals_outside_keys_module() -> None:
    """STYLE rule 6: keys.py is the only place that spells an S3 key."""
    offenders = []
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".js", ".html"} or path == ROOT / "core/capturestream/keys.py":
                continue
            if "node_modules" in path.parts or "vendor" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if KEY_LITERAL.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_key_literal_pattern_catches_f_strings() -> None:
    """The grep above would catch the usual ways of spelling a key by hand."""
    assert KEY_LITERAL.search('key = f"live/{pid}/{sid}/index.m3u8"')
    assert KEY_LITERAL.search("'sessions/abc/def/started.json'")
    assert KEY_LITERAL.search("`thumbs/${id}/poster.jpg`")
    assert not KEY_LITERAL.search('prefix = "live/"')


def test_segment_metadata_round_trips() -> None:
    """A segment's metadata survives S3 (names lower-cased); a segment without it reads as None."""
    meta = keys.SegmentMetadata(epoch=2, discontinuity=True, program_date_time="2026-12-03T12:00:00.000Z")
    stored = {name.title(): value for name, value in meta.headers().items()}
    assert keys.SegmentMetadata.parse(stored) == meta
    assert keys.SegmentMetadata.parse({}) is None
    assert keys.SegmentMetadata.parse({"init-epoch": "x"}) is None
