"""Publishers and segment-availability observers for :mod:`bench.ingest` (the same code for every subject).

Publisher: ``ffmpeg -re -stream_loop -1 -i fixture.flv -c copy -t S -progress pipe:1 -f flv rtmp://…``. The anchor
(the instant media t=0 left the publisher) comes from ``-progress``: every report carries ``out_time_us`` (the end
of the last packet written to the RTMP socket, in the output timeline) and is read here the moment it arrives, so
``arrival - out_time`` is never earlier than the anchor; the anchor is the smallest such value over the run
(~10 reports per second). ``-re`` paces packets by their DTS from a clock ffmpeg starts after the RTMP ``publish``
was accepted, so media time t leaves at ``anchor + t`` for the rest of the run.

Observer (one per observed stream): polls the subject's playlist and reads each newly listed segment, through an
:class:`HlsSource` (the CDN edge for CaptureStream, the HLS folder on disk for nginx-rtmp). Segment k's media end is
``anchor + first keyframe time + sum(EXTINF of segments 0..k)``; its lag is the arrival of the first playlist
response listing it (provided the segment read issued right after succeeds; if not, the first successful read)
minus that media end. Polling is *windowed*: every poll of a no-cache playlist through the edge costs the system
~6 ms of CPU (edge + S3 GetObject), so nothing is polled between segments. The window for the next segment opens
``margin`` before its expected media end (previous end + one GOP; for segment 0, counted from the publisher's spawn,
which precedes the anchor) at a random phase, then polls every 20-50 ms
(uniform) until the segment is listed; the pollers can't lock to the segment grid, and the detection delay is the
same as continuous 20-50 ms polling as long as a segment never becomes available before its window opens (a hit on
a window's first poll is counted in ``first_poll_hits``: such a lag is an upper bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mediakit import hls

T = TypeVar("T")

JITTER = (0.020, 0.050)
MARGIN = 0.100
TAIL = 4.0  # an observer gives up this long after its publisher exited


@dataclass(frozen=True)
class Entry:
    """One segment line of a media playlist."""

    sequence: int
    duration: float
    uri: str


def parse_playlist(text: str) -> list[Entry]:
    """The segments of an HLS media playlist, with their media sequence numbers (RFC 8216 §6.3.5)."""
    try:
        listed = hls.parse_media_playlist(text).segments
    except hls.PlaylistError:
        return []  # a half-written playlist on disk (nginx-rtmp rewrites it in place): try again
    return [Entry(entry.sequence, entry.duration, entry.uri) for entry in listed]


def first_keyframe_seconds(fixture: Path) -> float:
    """DTS of the fixture's first video keyframe (where segment 0 starts), from ffprobe."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#30", "-show_entries",
         "packet=dts_time,flags", "-of", "csv=p=0", str(fixture)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    for line in probe.stdout.splitlines():
        dts, _, flags = line.partition(",")
        if flags.startswith("K"):
            return float(dts)
    raise RuntimeError(f"no keyframe in the first 30 video packets of {fixture}")


class Publisher:
    """One copy-mode ffmpeg publisher and its anchor."""

    def __init__(self, index: int, url: str, fixture: Path, seconds: float, stats_period: float = 0.1) -> None:
        self.index = index
        self.url = url
        self.fixture = fixture
        self.seconds = seconds
        self.stats_period = stats_period
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at: float | None = None
        self.exited_at: float | None = None
        self.returncode: int | None = None
        self.anchor: float | None = None
        self.offsets: list[float] = []
        self.stderr_tail = b""
        self.started = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Spawn ffmpeg; progress and stderr are read in the background."""
        self.spawned_at = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(self.fixture), "-c", "copy", "-t", f"{self.seconds:g}",
            "-progress", "pipe:1", "-stats_period", f"{self.stats_period:g}", "-f", "flv", self.url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._readers = [asyncio.create_task(self._progress()), asyncio.create_task(self._stderr())]

    async def _progress(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            arrived = time.monotonic()
            if not line.startswith(b"out_time_us="):
                continue
            value = line.partition(b"=")[2].strip()
            if not value.isdigit():  # N/A before the first packet
                continue
            offset = arrived - int(value) / 1e6
            self.offsets.append(offset)
            if self.anchor is None or offset < self.anchor:
                self.anchor = offset
            self.started.set()

    async def _stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr_tail = (self.stderr_tail + line)[-2000:]

    async def wait(self, timeout: float) -> int:
        """Wait for ffmpeg to exit (SIGKILL after ``timeout``); its exit code (-9 when killed)."""
        assert self.process is not None
        try:
            self.returncode = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.returncode = await self.process.wait()
            self.stderr_tail += b"\n[bench] killed: still running after the timeout"
        self.exited_at = time.monotonic()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL ffmpeg if it still runs (cleanup after an error)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def summary(self) -> dict[str, Any]:
        """For the results file: timing of the start, the anchor's spread, the exit."""
        spread = sorted(o - self.anchor for o in self.offsets) if self.anchor is not None else []
        known = self.anchor is not None and self.spawned_at is not None
        return {
            "index": self.index,
            "spawn_to_anchor": self.anchor - self.spawned_at if known else None,  # type: ignore[operator]
            "progress_reports": len(self.offsets),
            "anchor_offset_p50": spread[len(spread) // 2] if spread else None,
            # how far behind real time the publisher's media was at its last report / at worst: a node that stops
            # reading (backpressure) makes ffmpeg's -re clock fall behind
            "behind_realtime_end": self.offsets[-1] - self.anchor if self.anchor is not None and self.offsets else None,
            "behind_realtime_max": spread[-1] if spread else None,
            "returncode": self.returncode,
            "stderr_tail": self.stderr_tail.decode(errors="replace")[-500:],
        }


class HlsSource(Protocol):
    """Where an observer reads one stream's playlist and segments (loopback only)."""

    async def ready(self) -> None:
        """Return once the playlist's location is known (CaptureStream: the session id was discovered)."""

    async def playlist(self) -> str | None:
        """The playlist text, or None while there is none."""

    async def segment(self, uri: str) -> int | None:
        """Read the segment ``uri`` (relative to the playlist) completely; its size, or None when not readable."""


@dataclass
class Seen:
    """One segment as the observer saw it (``time.monotonic()`` seconds)."""

    sequence: int
    duration: float
    listed_at: float
    available_at: float | None = None
    fetched_at: float | None = None
    size: int = 0
    first_poll: bool = False
    read_attempts: int = 0


@dataclass
class StreamObserver:
    """Watches one stream's playlist from its publisher's anchor on; see the module docstring."""

    name: str
    publisher: Publisher
    source: HlsSource
    expected: int
    gop: float
    first_keyframe: float
    rng: random.Random
    margin: float = MARGIN
    seen: dict[int, Seen] = field(default_factory=dict)
    base_sequence: int | None = None
    first_playlist_at: float | None = None
    polls: int = 0
    empty_polls: int = 0
    read_errors: int = 0  # reads that raised (a reset connection, a 5xx...): retried like a miss
    read_error_samples: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def _give_up(self, deadline: float) -> bool:
        now = time.monotonic()
        exited = self.publisher.exited_at
        return now > deadline or (exited is not None and now > exited + TAIL)

    def positions(self) -> int:
        """How many of the expected segments (positions 0..expected-1) have been seen."""
        if self.base_sequence is None:
            return 0
        return sum(1 for s in self.seen if 0 <= s - self.base_sequence < self.expected)

    async def run(self, deadline: float) -> None:
        """Observe until every expected segment was seen, the publisher is gone, or ``deadline``."""
        try:
            await self._run(deadline)
        except Exception as error:  # an observer failure must not hide the other streams' numbers
            self.errors.append(f"{type(error).__name__}: {error}")

    async def _run(self, deadline: float) -> None:
        started = self.publisher.started
        await asyncio.wait_for(started.wait(), max(0.1, deadline - time.monotonic()))
        await asyncio.wait_for(self.source.ready(), max(0.1, deadline - time.monotonic()))
        next_end = self.first_keyframe + self.gop  # media end of segment 0
        base = self.publisher.spawned_at  # the first window opens early: the anchor is still settling then
        while self.positions() < self.expected and not self._give_up(deadline):
            assert base is not None
            opens = base + next_end - self.margin + self.rng.uniform(0, JITTER[1])
            await asyncio.sleep(max(0.0, opens - time.monotonic()))
            first = True
            while not self._give_up(deadline):
                text = await self._read(self.source.playlist())
                arrived = time.monotonic()
                self.polls += 1
                if text is not None and await self._take(text, arrived, first):
                    break
                self.empty_polls += 1
                first = False
                await asyncio.sleep(self.rng.uniform(*JITTER))
            last_end = self.media_end(max(self.seen)) if self.seen else None
            next_end = (next_end if last_end is None else last_end) + self.gop
            base = self.publisher.anchor

    async def _take(self, text: str, arrived: float, first: bool) -> bool:
        """Record the segments this playlist lists for the first time; True when there was at least one."""
        entries = parse_playlist(text)
        if not entries:
            return False
        if self.first_playlist_at is None:
            self.first_playlist_at = arrived
            self.base_sequence = entries[0].sequence
        new = [e for e in entries if e.sequence not in self.seen]
        for entry in new:
            seen = Seen(entry.sequence, entry.duration, listed_at=arrived, first_poll=first)
            self.seen[entry.sequence] = seen
            while seen.available_at is None and seen.read_attempts < 50:
                seen.read_attempts += 1
                size = await self._read(self.source.segment(entry.uri))
                if size:
                    seen.fetched_at = time.monotonic()
                    seen.available_at = arrived if seen.read_attempts == 1 else seen.fetched_at
                    seen.size = size
                else:
                    await asyncio.sleep(self.rng.uniform(*JITTER))
            if seen.available_at is None:
                self.errors.append(f"segment {entry.uri} listed but never readable")
        return bool(new)

    async def _read(self, read: Awaitable[T]) -> T | None:
        """Await one read; a read that raises counts as a miss (the segment then shows up as lost if it never
        becomes readable) and is recorded."""
        try:
            return await read
        except Exception as error:
            self.read_errors += 1
            if len(self.read_error_samples) < 5:
                self.read_error_samples.append(f"{type(error).__name__}: {error}")
            return None

    def media_end(self, sequence: int) -> float | None:
        """Media time at which segment ``sequence`` ends (None when a duration before it is unknown)."""
        if self.base_sequence is None or sequence < self.base_sequence:
            return None
        total = self.first_keyframe
        for s in range(self.base_sequence, sequence + 1):
            if s not in self.seen:
                return None
            total += self.seen[s].duration
        return total

    def lags(self) -> list[dict[str, Any]]:
        """Per expected segment: its position, lag (available - media end) and fetch-complete lag, in seconds."""
        anchor = self.publisher.anchor
        rows: list[dict[str, Any]] = []
        if anchor is None or self.base_sequence is None:
            return rows
        for sequence in sorted(self.seen):
            position = sequence - self.base_sequence
            end = self.media_end(sequence)
            seen = self.seen[sequence]
            if not 0 <= position < self.expected or end is None or seen.available_at is None:
                continue
            rows.append(
                {
                    "position": position,
                    "duration": seen.duration,
                    "lag": seen.available_at - (anchor + end),
                    "fetched_lag": None if seen.fetched_at is None else seen.fetched_at - (anchor + end),
                    "first_poll": seen.first_poll,
                    "size": seen.size,
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        """For the results file."""
        spawned = self.publisher.spawned_at
        return {
            "name": self.name,
            "publisher": self.publisher.index,
            "expected": self.expected,
            "seen": self.positions(),
            "first_playlist": None
            if self.first_playlist_at is None or spawned is None
            else self.first_playlist_at - spawned,
            "polls": self.polls,
            "empty_polls": self.empty_polls,
            "first_poll_hits": sum(1 for s in self.seen.values() if s.first_poll),
            "read_errors": self.read_errors,
            "read_error_samples": self.read_error_samples,
            "errors": self.errors,
            "segments": self.lags(),
        }
