"""LL-HLS from memory: playlist contents (parts, preload hint, server control) and blocking reload semantics
(draft-pantos-hls-rfc8216bis §6.2.5.2), fed with the real CMAF segmenter's outputs for a real ffmpeg stream.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ingest_node.playback.ll_hls import DirectiveError, Gone, LlHlsStream, NotYet
from mediakit.cmaf import Output, Part, Segment, Segmenter
from mediakit.hls import parse_media_playlist
from tests.unit.ingest.playback_media import publisher_tags
from tests.unit.media.support import Tag, feed_tags

PART = 0.25


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[Tag]:
    return publisher_tags(tmp_path_factory.mktemp("flv"))


def _outputs(tags: list[Tag], segmenter: Segmenter | None = None) -> list[Output]:
    segmenter = segmenter or Segmenter(target_duration=1.0, part_target=PART, anchor=datetime.now(UTC))
    return feed_tags(segmenter, tags)


def _stream(**kwargs: object) -> LlHlsStream:
    return LlHlsStream(session_id="S", segment_seconds=1.0, part_seconds=PART, **kwargs)  # type: ignore[arg-type]


def _lines(text: str, tag: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(tag)]


def test_playlist_lists_parts_hint_and_server_control(tags: list[Tag]) -> None:
    stream = _stream()
    outputs = _outputs(tags)
    stream.add(outputs)
    text = stream.render()
    assert _lines(text, "#EXT-X-VERSION") == ["#EXT-X-VERSION:9"]
    assert _lines(text, "#EXT-X-TARGETDURATION") == ["#EXT-X-TARGETDURATION:1"]
    (control,) = _lines(text, "#EXT-X-SERVER-CONTROL")
    assert "CAN-BLOCK-RELOAD=YES" in control and "PART-HOLD-BACK=" in control
    (part_inf,) = _lines(text, "#EXT-X-PART-INF")
    target = float(part_inf.split("=")[1])
    assert PART <= target < 0.3
    assert float(control.split("PART-HOLD-BACK=")[1]) >= 3 * target - 1e-9
    assert _lines(text, "#EXT-X-MAP") == ['#EXT-X-MAP:URI="ll/S/init_0.mp4"']
    parsed = parse_media_playlist(text)
    assert all(s.program_date_time is not None for s in parsed.segments)
    parts = [o for o in outputs if isinstance(o, Part)]
    last = parts[-1]
    assert parsed.preload_hint == f"ll/S/part_{last.sequence}.{last.index + 1}.m4s"
    independent = [line for line in _lines(text, "#EXT-X-PART:") if "INDEPENDENT=YES" in line]
    assert independent and all(".0.m4s" in line for line in independent)  # parts that start on a keyframe
    assert len(parsed.segments) == 3  # 4 s fed: segments 0-2 complete, 3 in progress (its parts listed)
    assert parsed.parts[-1] == f"ll/S/part_{last.sequence}.{last.index}.m4s"


async def test_served_bytes_are_the_muxers(tags: list[Tag]) -> None:
    stream = _stream()
    outputs = _outputs(tags)
    stream.add(outputs)
    for output in outputs:
        if isinstance(output, Part):
            assert await stream.part(output.sequence, output.index) == output.data
        elif isinstance(output, Segment):
            assert await stream.segment(output.sequence) == output.data
    assert stream.init(0).startswith(b"\x00\x00\x00") and b"ftyp" in stream.init(0)[:8]


async def test_blocking_reload_returns_when_the_part_exists(tags: list[Tag]) -> None:
    stream = _stream()
    outputs = _outputs(tags)
    first_part = next(i for i, o in enumerate(outputs) if isinstance(o, Part))
    stream.add(outputs[: first_part + 1])  # init + part 0.0
    waiter = asyncio.create_task(stream.wait_playlist(0, 1))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    rest = iter(outputs[first_part + 1 :])
    stream.add([next(rest)])  # part 0.1
    text = await asyncio.wait_for(waiter, 1)
    assert '"ll/S/part_0.1.m4s"' in text and 'PRELOAD-HINT:TYPE=PART,URI="ll/S/part_0.2.m4s"' in text
    assert await stream.wait_playlist(0, 0) == text  # already there: at once


async def test_blocking_on_a_whole_segment_and_on_the_preload_hint(tags: list[Tag]) -> None:
    stream = _stream()
    outputs = _outputs(tags)
    first_segment = next(i for i, o in enumerate(outputs) if isinstance(o, Segment))
    stream.add(outputs[:first_segment])  # segment 0's parts, not the segment
    playlist = asyncio.create_task(stream.wait_playlist(0, None))
    segment = asyncio.create_task(stream.segment(0))
    hinted = asyncio.create_task(stream.part(1, 0))
    await asyncio.sleep(0.05)
    assert not playlist.done() and not segment.done() and not hinted.done()
    stream.add([outputs[first_segment]])
    assert "ll/S/seg_0.m4s" in await asyncio.wait_for(playlist, 1)
    assert await asyncio.wait_for(segment, 1) == outputs[first_segment].data  # type: ignore[union-attr]
    assert not hinted.done()
    stream.add([outputs[first_segment + 1]])
    assert await asyncio.wait_for(hinted, 1) == outputs[first_segment + 1].data  # type: ignore[union-attr]


async def test_a_hinted_part_that_never_comes_is_404(tags: list[Tag]) -> None:
    """Segment 0 closes with 4 parts: a held request for part 0.4 ends as Gone, not as a timeout."""
    stream = _stream()
    outputs = _outputs(tags)
    first_segment = next(i for i, o in enumerate(outputs) if isinstance(o, Segment))
    stream.add(outputs[:first_segment])
    count = sum(isinstance(o, Part) and o.sequence == 0 for o in outputs)
    held = asyncio.create_task(stream.part(0, count))
    await asyncio.sleep(0.05)
    stream.add([outputs[first_segment]])
    with pytest.raises(Gone):
        await asyncio.wait_for(held, 1)


async def test_directives_out_of_range_are_400_and_timeouts_503(tags: list[Tag]) -> None:
    stream = _stream(block_timeout=0.2)
    stream.add(_outputs(tags))  # segments 0-2 complete, parts of 3 in progress
    with pytest.raises(DirectiveError):
        await stream.wait_playlist(None, 1)  # _HLS_part without _HLS_msn
    with pytest.raises(DirectiveError):
        await stream.wait_playlist(5, None)  # more than the last segment (2) + 2
    with pytest.raises(DirectiveError):
        await stream.wait_playlist(4, stream.advance_part_limit + 1)  # past the Advance Part Limit
    assert stream.advance_part_limit == 12  # 3 / 0.25
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NotYet):
        await stream.wait_playlist(4, 0)  # allowed, never produced here
    assert 0.15 < loop.time() - started < 1
    assert (await stream.wait_playlist(0, 0)).startswith("#EXTM3U")  # long gone from the parts: at once


async def test_end_answers_waiters_with_endlist(tags: list[Tag]) -> None:
    stream = _stream()
    stream.add(_outputs(tags))
    waiter = asyncio.create_task(stream.wait_playlist(4, 0))
    await asyncio.sleep(0.05)
    stream.end()
    text = await asyncio.wait_for(waiter, 1)
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in text
    assert (await stream.wait_playlist(99, 99)).rstrip().endswith("#EXT-X-ENDLIST")  # directives ignored


async def test_memory_is_bounded_and_a_discontinuity_is_listed(tags: list[Tag]) -> None:
    """Two publishers (the second from timestamp 0 again): window 3 → only the last 3 segments' bytes are kept,
    parts only for the segments listed with parts, and the playlist marks the discontinuity."""
    stream = _stream(window=3)
    segmenter = Segmenter(target_duration=1.0, part_target=PART, anchor=datetime.now(UTC))
    stream.add(_outputs(tags, segmenter))
    stream.add(segmenter.discontinuity(anchor=datetime.now(UTC)))
    stream.add(_outputs(tags, segmenter))
    text = stream.render()
    parsed = parse_media_playlist(text)
    assert len(parsed.segments) == 3 and "#EXT-X-DISCONTINUITY" in text
    first = parsed.segments[0].sequence
    with pytest.raises(Gone):
        await stream.segment(first - 1)
    assert len(stream._segments) == 3
    assert {msn for msn, _ in stream._parts} <= set(range(first - 1, first + 5))
