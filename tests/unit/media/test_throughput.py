"""Throughput of the in-process muxer on fixture (a): microseconds per RTMP message (reported, never asserted).

CMAF_COST.md measured ~2 µs/tag to parse and ~0.03 % of a core per 2.5 Mbps stream for parse + mux in a throwaway
prototype; this prints the same figure for the real module so regressions are visible in the test log.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mediakit.cmaf import Segmenter
from tests.unit.media.support import feed_tags, read_flv


@pytest.mark.parametrize("part_target", [None, 0.333], ids=["segments", "ll-parts"])
def test_microseconds_per_tag(
    flv_720p30: Path, part_target: float | None, capsys: pytest.CaptureFixture[str], record_property: object
) -> None:
    """Best of 5 runs of parse + mux (outputs built in memory, nothing written)."""
    tags = read_flv(flv_720p30)
    media = [t for t in tags if t.kind in (8, 9)]
    best = float("inf")
    for _ in range(5):
        segmenter = Segmenter(part_target=part_target)
        start = time.perf_counter()
        outputs = feed_tags(segmenter, tags) + segmenter.finish()
        best = min(best, time.perf_counter() - start)
        assert outputs
    per_tag = best / len(media) * 1e6
    seconds = media[-1].timestamp / 1000
    record_property("us_per_tag", round(per_tag, 2))  # type: ignore[operator]
    with capsys.disabled():
        print(
            f"\n[media throughput] {part_target=}: {per_tag:.1f} µs/tag over {len(media)} tags "
            f"({best * 1e3:.1f} ms for {seconds:.1f} s of 720p30 media = {best / seconds * 100:.3f} % of a core)"
        )
