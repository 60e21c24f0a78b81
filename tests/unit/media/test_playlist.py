"""Playlist rendering as golden strings (RFC 8216 + LL-HLS tags), the way owncast tests its ffmpeg command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mediakit import hls
from mediakit.cmaf import InitSegment, Part, PartInfo, Segment
from mediakit.hls import MediaPlaylist, Variant, format_date_time, render_master

T0 = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def segment(
    sequence: int,
    duration: float = 1.0,
    *,
    epoch: int = 0,
    discontinuity: bool = False,
    keyframe: bool = True,
    start: float | None = None,
) -> Segment:
    """A segment whose PDT is T0 + ``start`` (default: sequence seconds)."""
    offset = sequence if start is None else start
    return Segment(
        sequence=sequence,
        data=b"",
        duration=duration,
        epoch=epoch,
        discontinuity=discontinuity,
        program_date_time=T0 + timedelta(seconds=offset),
        keyframe=keyframe,
        parts=(PartInfo(index=0, duration=duration, independent=keyframe, offset=0, size=0),),
    )


def part(sequence: int, index: int, duration: float = 0.334, independent: bool | None = None, **kw: object) -> Part:
    """A part; the first one of a segment is independent by default."""
    independent = index == 0 if independent is None else independent
    return Part(sequence=sequence, index=index, data=b"", duration=duration, independent=independent, **kw)  # type: ignore[arg-type]


def test_live_window_slides_and_counts_media_sequence() -> None:
    """Window 3 of 4 segments: MEDIA-SEQUENCE 1, MAP once at the top, PDT and EXTINF per segment."""
    playlist = MediaPlaylist(target_duration=1.0, window=3)
    for n in range(4):
        playlist.add_segment(segment(n, 1.001 if n == 2 else 1.0), f"seg{n}.m4s", "init0.mp4")
    assert playlist.render(ended=False) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:1\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init0.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:06.678Z\n"
        "#EXTINF:1.00000,\n"
        "seg1.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:07.678Z\n"
        "#EXTINF:1.00100,\n"
        "seg2.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:08.678Z\n"
        "#EXTINF:1.00000,\n"
        "seg3.m4s\n"
    )


def test_discontinuity_with_new_init_then_endlist() -> None:
    """A reconnect with a new init: DISCONTINUITY + a second MAP; ENDLIST when ended."""
    playlist = MediaPlaylist(target_duration=1.0, window=None)
    playlist.add_segment(segment(0), "seg0.m4s", "init0.mp4")
    playlist.add_segment(segment(1, 0.5), "seg1.m4s", "init0.mp4")
    playlist.add_segment(segment(2, epoch=1, discontinuity=True, start=30), "seg2.m4s", "init1.mp4")
    playlist.add_segment(segment(3, discontinuity=True, start=40), "seg3.m4s", "init1.mp4")
    assert playlist.render(ended=True) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init0.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:05.678Z\n"
        "#EXTINF:1.00000,\n"
        "seg0.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:06.678Z\n"
        "#EXTINF:0.50000,\n"
        "seg1.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="init1.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:35.678Z\n"
        "#EXTINF:1.00000,\n"
        "seg2.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:45.678Z\n"
        "#EXTINF:1.00000,\n"
        "seg3.m4s\n"
        "#EXT-X-ENDLIST\n"
    )


def test_discontinuity_sequence_counts_tags_that_slid_out() -> None:
    """RFC 8216 §6.2.2: removing a segment with EXT-X-DISCONTINUITY increments DISCONTINUITY-SEQUENCE."""
    playlist = MediaPlaylist(target_duration=1.0, window=2)
    playlist.add_segment(segment(0), "a", "i0")
    playlist.add_segment(segment(1, discontinuity=True), "b", "i0")
    playlist.add_segment(segment(2), "c", "i0")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0\n" in playlist.render()
    playlist.add_segment(segment(3), "d", "i0")
    text = playlist.render()
    assert "#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text
    assert "#EXT-X-DISCONTINUITY\n" not in text


def test_target_duration_rounds_to_nearest_and_never_shrinks() -> None:
    """1.001 s → 1 (rounding, not ceiling); a 2.6 s force-cut segment → 3, kept after it slides out."""
    playlist = MediaPlaylist(target_duration=1.0, window=1)
    playlist.add_segment(segment(0, 1.001), "a", "i")
    assert "#EXT-X-TARGETDURATION:1\n" in playlist.render()
    playlist.add_segment(segment(1, 2.6, keyframe=False), "b", "i")
    text = playlist.render()
    assert "#EXT-X-TARGETDURATION:3\n" in text and "INDEPENDENT-SEGMENTS" not in text
    playlist.add_segment(segment(2, 1.0), "c", "i")
    assert "#EXT-X-TARGETDURATION:3\n" in playlist.render()
    assert "#EXT-X-TARGETDURATION:2\n" in MediaPlaylist(target_duration=1.5).render()


def test_low_latency_parts_preload_hint_and_server_control() -> None:
    """LL-HLS: VERSION 9, PART-TARGET = max part (0.334), PART-HOLD-BACK = 3×, parts for the last 3 segments
    plus the in-progress one, and a PRELOAD-HINT for the next part."""
    playlist = MediaPlaylist(target_duration=1.0, window=6, part_target=0.333)
    for n in range(4):
        for i in range(3):
            playlist.add_part(part(n, i), f"s{n}.p{i}.m4s")
        playlist.add_segment(segment(n), f"s{n}.m4s", "init0.mp4")
    playlist.add_part(part(4, 0), "s4.p0.m4s")
    text = playlist.render(preload_hint="s4.p1.m4s")
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:9\n"
        "#EXT-X-TARGETDURATION:1\n"
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002\n"
        "#EXT-X-PART-INF:PART-TARGET=0.334\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init0.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:05.678Z\n"
        "#EXTINF:1.00000,\n"
        "s0.m4s\n"
        + "".join(
            f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(T0 + timedelta(seconds=n))}\n"
            f'#EXT-X-PART:DURATION=0.33400,URI="s{n}.p0.m4s",INDEPENDENT=YES\n'
            f'#EXT-X-PART:DURATION=0.33400,URI="s{n}.p1.m4s"\n'
            f'#EXT-X-PART:DURATION=0.33400,URI="s{n}.p2.m4s"\n'
            f"#EXTINF:1.00000,\ns{n}.m4s\n"
            for n in (1, 2, 3)
        )
        + '#EXT-X-PART:DURATION=0.33400,URI="s4.p0.m4s",INDEPENDENT=YES\n'
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s4.p1.m4s"\n'
    )
    ended = playlist.render(ended=True, preload_hint="s4.p1.m4s")
    assert "PRELOAD-HINT" not in ended and "s4.p0.m4s" not in ended and ended.endswith("#EXT-X-ENDLIST\n")


def test_in_progress_parts_of_a_new_epoch_get_discontinuity_and_map() -> None:
    """Parts of a segment that follows a reconnect with a new init are preceded by DISCONTINUITY and the new MAP."""
    playlist = MediaPlaylist(target_duration=1.0, part_target=0.333)
    playlist.add_segment(segment(0), "s0.m4s", "init0.mp4")
    playlist.add_part(part(1, 0, epoch=1, discontinuity=True), "s1.p0.m4s", init_uri="init1.mp4")
    text = playlist.render()
    assert text.endswith(
        '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"\n#EXT-X-PART:DURATION=0.33400,URI="s1.p0.m4s",INDEPENDENT=YES\n'
    )


def test_part_target_grows_with_longer_parts() -> None:
    """At 25 fps a 0.333 s target gives 0.36 s parts: PART-TARGET follows (it must be ≥ every part)."""
    playlist = MediaPlaylist(target_duration=1.0, part_target=0.333)
    playlist.add_part(part(0, 0, 0.36), "p")
    assert "#EXT-X-PART-INF:PART-TARGET=0.360\n" in playlist.render()
    assert "PART-HOLD-BACK=1.080" in playlist.render()


def test_master_playlist() -> None:
    """CODECS and RESOLUTION from the init segment (RFC 8216 §4.3.4.2)."""
    init = InitSegment(epoch=0, data=b"", codecs="avc1.64001f,mp4a.40.2", width=1280, height=720)
    audio_only = InitSegment(epoch=0, data=b"", codecs="mp4a.40.2", width=None, height=None)
    text = render_master(
        [
            Variant.from_init(init, uri="index.m3u8", bandwidth=2_800_000, frame_rate=30),
            Variant.from_init(audio_only, uri="audio.m3u8", bandwidth=160_000),
        ]
    )
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=2800000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000\n'
        "index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="mp4a.40.2"\n'
        "audio.m3u8\n"
    )


def test_format_date_time_is_utc_with_milliseconds() -> None:
    """Any timezone renders as UTC with a Z."""
    local = datetime(2025, 1, 1, 1, 0, 0, 123456, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    assert format_date_time(local) == "2025-01-01T01:00:00.123Z"


def test_window_must_be_positive() -> None:
    """A zero window would list nothing."""
    with pytest.raises(ValueError):
        MediaPlaylist(target_duration=1.0, window=0)


def test_parser_reads_what_the_writer_wrote() -> None:
    """render → parse_media_playlist gives back sequences, durations, MAPs, discontinuities and PDTs."""
    playlist = MediaPlaylist(target_duration=1.0, window=None)
    start = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    for sequence in range(4):
        segment = Segment(
            sequence=sequence, data=b"", duration=1.001, epoch=sequence // 3, discontinuity=sequence == 3,
            program_date_time=start + timedelta(seconds=sequence), keyframe=True, parts=(),
        )  # fmt: skip
        playlist.add_segment(segment, uri=f"seg_{sequence}.m4s", init_uri=f"init_{sequence // 3}.mp4")
    parsed = hls.parse_media_playlist(playlist.render(ended=True))
    assert parsed.ended and parsed.media_sequence == 0 and parsed.target_duration == 1
    assert [(s.sequence, s.uri, s.init_uri, s.discontinuity) for s in parsed.segments] == [
        (0, "seg_0.m4s", "init_0.mp4", False),
        (1, "seg_1.m4s", "init_0.mp4", False),
        (2, "seg_2.m4s", "init_0.mp4", False),
        (3, "seg_3.m4s", "init_1.mp4", True),
    ]
    assert parsed.segments[3].program_date_time == start + timedelta(seconds=3)
    assert all(abs(s.duration - 1.001) < 1e-9 for s in parsed.segments)


def test_parser_refuses_text_that_is_no_playlist() -> None:
    """RFC 8216 §4.1: a playlist starts with #EXTM3U."""
    with pytest.raises(hls.PlaylistError):
        hls.parse_media_playlist("<html>not found</html>")
    with pytest.raises(hls.PlaylistError):
        hls.parse_media_playlist("#EXTM3U\n#EXTINF:abc,\nseg.m4s\n")
