"""Storyboard planning: the interval ladder, tile geometry, WebVTT covering the duration exactly, frame picking,
and keyframe files that real ffmpeg decodes to exactly the frames put in."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from mediakit import bmff, storyboard
from mediakit.cmaf import InitSegment, Segment, Segmenter
from mediakit.stored import StoredSegment
from mediakit.storyboard import StoryboardError
from tests.unit.media.conftest import requires_ffmpeg
from tests.unit.media.support import FFPROBE, feed_tags, read_flv, run

CUE = re.compile(r"(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})")
XYWH = re.compile(r"(?P<name>[^#]+)#xywh=(?P<x>\d+),(?P<y>\d+),(?P<w>\d+),(?P<h>\d+)")

# ---------------------------------------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("duration", "interval", "tiles"),
    [
        (0.5, 1, 1),
        (20, 1, 20),
        (20.4, 1, 21),
        (500, 1, 500),
        (500.001, 2, 251),
        (1000, 2, 500),
        (1001, 5, 201),
        (3600, 10, 360),
        (4 * 3600, 30, 480),
        (8 * 3600, 60, 480),
        (10 * 3600, 120, 300),
        (24 * 3600, 180, 480),
    ],
)
def test_interval_ladder(duration: float, interval: int, tiles: int) -> None:
    """The shortest interval of 1, 2, 5, 10, 15, 30, 60 s giving ≤ 500 tiles; past that, whole minutes."""
    layout = storyboard.plan(duration, width=1280, height=720)
    assert (layout.interval, layout.tiles) == (interval, tiles)
    assert layout.tiles <= storyboard.MAX_TILES


def test_four_hours_stay_a_few_sheets() -> None:
    """A 4 h VOD: 30 s tiles on five 10×10 sheets (~500 keyframes decoded, not 14,400)."""
    layout = storyboard.plan(4 * 3600, width=1920, height=1080)
    assert (layout.columns, layout.rows, layout.sheets) == (10, 10, 5)


@pytest.mark.parametrize(
    ("source", "tile"),
    [
        ((1280, 720), (160, 90)),
        ((1920, 1080), (160, 90)),
        ((1366, 768), (160, 90)),
        ((640, 480), (160, 120)),
        ((720, 1280), (90, 160)),
        ((1000, 1000), (160, 160)),
        ((0, 0), (160, 90)),
    ],
)
def test_tile_size_keeps_the_aspect(source: tuple[int, int], tile: tuple[int, int]) -> None:
    """The longer side is 160 px, both sides even; an unknown size reads as 16:9."""
    assert storyboard.tile_size(*source) == tile


def test_short_recordings_get_a_small_grid() -> None:
    """20 tiles: one 10×2 sheet; 3 tiles: one 3×1 sheet (no acres of black)."""
    assert (lambda p: (p.columns, p.rows, p.sheets))(storyboard.plan(20, width=1280, height=720)) == (10, 2, 1)
    assert (lambda p: (p.columns, p.rows, p.sheets))(storyboard.plan(3, width=1280, height=720)) == (3, 1, 1)
    assert storyboard.plan(250, width=1280, height=720).sheets == 3


@pytest.mark.parametrize("duration", [0, -1, math.nan, math.inf, 0.0004, True, "20"])
def test_plan_refuses_a_missing_duration(duration: object) -> None:
    """No duration, no storyboard."""
    with pytest.raises(StoryboardError):
        storyboard.plan(duration, width=1280, height=720)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- WebVTT


def parse_vtt(text: str) -> list[tuple[int, int, str, tuple[int, int, int, int]]]:
    """``(start_ms, end_ms, sprite name, (x, y, w, h))`` of each cue; asserts the WebVTT shape."""
    lines = text.split("\n")
    assert lines[:2] == ["WEBVTT", ""]
    cues = []
    for block in "\n".join(lines[2:]).strip("\n").split("\n\n"):
        timing, target = block.split("\n")
        match, tile = CUE.fullmatch(timing), XYWH.fullmatch(target)
        assert match and tile, block
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(value) for value in match.groups())
        start = ((h1 * 60 + m1) * 60 + s1) * 1000 + ms1
        end = ((h2 * 60 + m2) * 60 + s2) * 1000 + ms2
        cues.append((start, end, tile["name"], (int(tile["x"]), int(tile["y"]), int(tile["w"]), int(tile["h"]))))
    return cues


@pytest.mark.parametrize("duration", [0.4, 1, 20, 20.5, 137.25, 3600, 4 * 3600 + 0.123, 30 * 3600])
def test_vtt_covers_the_duration_exactly(duration: float) -> None:
    """Cues start at 0, follow each other without a gap or overlap, and the last one ends at the duration."""
    layout = storyboard.plan(duration, width=1280, height=720)
    names = [f"storyboard_{n:03d}.jpg" for n in range(layout.sheets)]
    cues = parse_vtt(storyboard.vtt(layout, names))
    assert len(cues) == layout.tiles
    assert cues[0][0] == 0
    assert cues[-1][1] == round(duration * 1000)
    assert all(a[1] == b[0] for a, b in zip(cues, cues[1:], strict=False))
    assert all(end > start for start, end, _, _ in cues)


def test_vtt_text_is_exact() -> None:
    """The whole file for a 2.5 s recording."""
    layout = storyboard.plan(2.5, width=640, height=360)
    assert storyboard.vtt(layout, ["storyboard_000.jpg"]) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.000\nstoryboard_000.jpg#xywh=0,0,160,90\n\n"
        "00:00:01.000 --> 00:00:02.000\nstoryboard_000.jpg#xywh=160,0,160,90\n\n"
        "00:00:02.000 --> 00:00:02.500\nstoryboard_000.jpg#xywh=320,0,160,90\n"
    )


def test_xywh_geometry() -> None:
    """Tiles fill each sheet row by row; every tile lies inside its sheet; each (sheet, x, y) is used once."""
    layout = storyboard.plan(3600, width=640, height=480)  # 360 tiles of 160×120 on 4 sheets of 10×10
    names = [f"s{n}.jpg" for n in range(layout.sheets)]
    cues = parse_vtt(storyboard.vtt(layout, names))
    assert layout.sheets == 4
    seen = set()
    for index, (_, _, name, (x, y, w, h)) in enumerate(cues):
        sheet, slot = divmod(index, 100)
        assert name == names[sheet]
        assert (x, y, w, h) == ((slot % 10) * 160, (slot // 10) * 120, 160, 120)
        assert x + w <= layout.columns * w and y + h <= layout.rows * h
        seen.add((name, x, y))
    assert len(seen) == layout.tiles


def test_vtt_needs_one_safe_name_per_sheet() -> None:
    """Names are per sheet and cannot break the cue syntax."""
    layout = storyboard.plan(250, width=1280, height=720)
    with pytest.raises(StoryboardError, match="3 sprite sheets"):
        storyboard.vtt(layout, ["a.jpg"])
    with pytest.raises(StoryboardError, match="single-line"):
        storyboard.vtt(layout, ["a.jpg", "b\n.jpg", "c.jpg"])


# ---------------------------------------------------------------------------------------------- picking frames


def test_pick_sources_takes_the_segment_playing_then() -> None:
    """A time maps to the segment whose span holds it (segment starts are cumulative durations)."""
    starts = storyboard.segment_starts([1.0, 1.0, 2.0, 1.0])
    assert starts == [0.0, 1.0, 2.0, 4.0]
    assert storyboard.pick_sources(starts, [True] * 4, [0, 0.99, 1, 2.5, 3.999, 4, 60]) == [0, 0, 1, 2, 2, 3, 3]


def test_pick_sources_skips_segments_without_a_keyframe() -> None:
    """The nearest earlier segment with a keyframe stands in; at the very start, the next one."""
    starts = [0.0, 1.0, 2.0, 3.0, 4.0]
    usable = [False, True, False, False, True]
    assert storyboard.pick_sources(starts, usable, [0, 1, 2, 3, 4]) == [1, 1, 1, 1, 4]
    with pytest.raises(StoryboardError, match="no segment has a video keyframe"):
        storyboard.pick_sources(starts, [False] * 5, [0])
    with pytest.raises(StoryboardError):
        storyboard.pick_sources(starts, [True], [0])


def test_epoch_runs_and_poster_group() -> None:
    """Runs of equal epochs in order; the poster uses the epoch with most candidates, the earliest on a tie."""
    assert storyboard.epoch_runs([0, 0, 1, 1, 1, 0]) == [(0, 0, 2), (1, 2, 5), (0, 5, 6)]
    assert storyboard.epoch_runs([]) == []
    assert storyboard.poster_group([0, 0, 1, 1, 1, 2]) == [2, 3, 4]
    assert storyboard.poster_group([3, 3, 4, 4]) == [0, 1]


@pytest.mark.parametrize(("duration", "last"), [(20, 20), (60, 20), (3600, 600), (4 * 3600, 600)])
def test_poster_candidates_spread_over_the_first_part(duration: float, last: float) -> None:
    """Ten evenly spread times in the first third (at most ten minutes; all of a short broadcast)."""
    times = storyboard.poster_times(duration)
    assert len(times) == storyboard.POSTER_CANDIDATES
    assert 0 < times[0] < times[-1] < last
    steps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
    assert len(steps) == 1


# ---------------------------------------------------------------------------------------------- keyframe files


@pytest.fixture(scope="module")
def muxed(flv_720p30: Path) -> tuple[bytes, list[bytes]]:
    """The init and the six 1 s segments of the 720p30 fixture, from the in-process segmenter."""
    segmenter = Segmenter(target_duration=1.0, part_target=None)
    outputs = feed_tags(segmenter, read_flv(flv_720p30)) + segmenter.finish()
    (init,) = [o.data for o in outputs if isinstance(o, InitSegment)]
    return init, [o.data for o in outputs if isinstance(o, Segment)]


def first_keyframes(segments: list[bytes]) -> list[bytes]:
    """Each segment's first video keyframe, located the way the recording function does."""
    frames = []
    for number, data in enumerate(segments):
        stored = StoredSegment(
            sequence=number,
            epoch=0,
            discontinuity=False,
            size=len(data),
            fragments=tuple(bmff.read_fragments(data)),
        )
        position, size = stored.first_keyframe(1) or (0, 0)
        frames.append(data[position : position + size])
    return frames


@requires_ffmpeg
@pytest.mark.parametrize("repeat", [1, 3])
def test_keyframe_fmp4_decodes_to_exactly_the_frames(
    muxed: tuple[bytes, list[bytes]], tmp_path: Path, repeat: int
) -> None:
    """ffprobe counts one decoded frame per keyframe put in (repeats included), with no complaint."""
    init, segments = muxed
    frames = first_keyframes(segments) * repeat
    data = storyboard.keyframe_fmp4(init, frames, video_track_id=1, timescale=90_000, interval_ticks=90_000)
    path = tmp_path / "keyframes.mp4"
    path.write_bytes(data)
    result = run(
        [FFPROBE or "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0"]
        + ["-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", str(path)]
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == f"1280,720,{len(frames)}"
    fragments = bmff.read_fragments(data[len(init) :], position=len(init))
    assert [run.flags for fragment in fragments for run in fragment.runs] == [[0x02000000]] * len(frames)
    assert [fragment.runs[0].base_time for fragment in fragments] == [n * 90_000 for n in range(len(frames))]


def test_keyframe_fmp4_refuses_bad_input(muxed: tuple[bytes, list[bytes]]) -> None:
    """No frames, an audio or unknown track, a wrong timescale or interval are refused."""
    init, _ = muxed
    frame = [b"\x00\x00\x00\x01\x65"]
    cases = [
        ({"frames": []}, "at least one frame"),
        ({"video_track_id": 2}, "no video track 2"),
        ({"video_track_id": 7}, "no video track 7"),
        ({"timescale": 1000}, "timescale 90000"),
        ({"interval_ticks": 0}, "interval_ticks"),
        ({"interval_ticks": 1 << 32}, "interval_ticks"),
        ({"frames": [b""]}, "frame 0 is empty"),
    ]
    for changes, message in cases:
        arguments = {"frames": frame, "video_track_id": 1, "timescale": 90_000, "interval_ticks": 3000} | changes
        with pytest.raises(StoryboardError, match=message):
            storyboard.keyframe_fmp4(init, **arguments)  # type: ignore[arg-type]
    with pytest.raises(bmff.MalformedBox):
        storyboard.keyframe_fmp4(b"junk" * 4, frame, video_track_id=1, timescale=90_000, interval_ticks=1)
