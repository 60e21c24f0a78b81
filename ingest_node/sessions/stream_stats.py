"""What a publisher actually sends, measured from its RTMP messages: bitrate, frame rate, keyframe interval.

``onMetaData`` is what the encoder *claims* (OBS fills it in; other encoders leave it empty or wrong); the session
manifests and the studio's health panel want what arrives. Sequence headers are not counted as frames.

FLV video tag byte 0 (legacy, FLV spec E.4.3.1): ``FrameType(4) | CodecID(4)``, AVC packet type in byte 1;
enhanced RTMP (veovera v1): bit 7 = ``IsExHeader``, ``FrameType`` in bits 4–6, ``PacketType`` in bits 0–3.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

_KEYFRAME = 1
_WINDOW_SECONDS = 10.0


def _is_video_frame(payload: bytes) -> tuple[bool, bool]:
    """``(is_coded_frame, is_keyframe)`` of one video tag body."""
    if not payload:
        return False, False
    head = payload[0]
    frame_type = (head >> 4) & 0x7
    coded = _is_coded(head, payload)
    return coded and frame_type != 5, coded and frame_type == _KEYFRAME


def _is_coded(head: int, payload: bytes) -> bool:
    if head & 0x80:  # enhanced RTMP: PacketType 1 = CodedFrames, 3 = CodedFramesX
        return (head & 0x0F) in (1, 3)
    if (head & 0x0F) in (7, 12):  # legacy AVC (and the unofficial HEVC id 12): packet type 1 = NALUs
        return len(payload) > 1 and payload[1] == 1
    return True


@dataclass(frozen=True)
class Window:
    """What arrived over a span of media time, ``(since, until]`` in milliseconds."""

    #: Media timestamp (ms) of the newest message: where the next window starts.
    until: int
    bitrate_kbps: float
    #: None without video.
    frame_rate: float | None
    #: Seconds: the latest gap between keyframes, or the time since the last one when that is longer already.
    keyframe_interval: float | None


class StreamStats:
    """Rolling measurements over the last ~10 s of media timestamps."""

    def __init__(self) -> None:
        self._bytes: deque[tuple[int, int]] = deque()  # (timestamp ms, bytes)
        self._frames: deque[int] = deque()  # video frame timestamps (ms)
        self._keyframes: deque[int] = deque(maxlen=32)

    def reset(self) -> None:
        """Forget everything: a new publisher took over, and its timestamps start again from its own zero."""
        self._bytes.clear()
        self._frames.clear()
        self._keyframes.clear()

    def window(self, since: int | None) -> Window | None:
        """Measurements over the media after timestamp ``since`` (None: all of the last ~10 s).

        Reads the rolling window once (for a health sample every few seconds), adds nothing per message. A
        ``since`` older than the rolling window is clamped to it. None when no media time passed since ``since``.
        """
        if not self._bytes:
            return None
        until = self._bytes[-1][0]
        start = self._bytes[0][0] if since is None else max(since, self._bytes[0][0])
        span = until - start
        if span <= 0:
            return None
        size = sum(size for timestamp, size in self._bytes if timestamp > start)
        frames = sum(1 for timestamp in self._frames if timestamp > start)
        return Window(
            until=until,
            bitrate_kbps=round(size * 8 / span, 1),  # bits per millisecond = kbit/s
            frame_rate=round(frames * 1000 / span, 2) if self._frames else None,
            keyframe_interval=self._latest_keyframe_interval(until),
        )

    def _latest_keyframe_interval(self, now: int) -> float | None:
        if not self._keyframes:
            return None
        waited = now - self._keyframes[-1]
        gap = self._keyframes[-1] - self._keyframes[-2] if len(self._keyframes) > 1 else 0
        longest = max(gap, waited)
        return round(longest / 1000, 3) if longest > 0 else None

    def on_video(self, timestamp: int, payload: bytes) -> None:
        """Account one video message."""
        self._account(timestamp, len(payload))
        coded, keyframe = _is_video_frame(payload)
        if coded:
            self._frames.append(timestamp)
            while self._frames and self._frames[0] < timestamp - _WINDOW_SECONDS * 1000:
                self._frames.popleft()
        if keyframe and (not self._keyframes or timestamp > self._keyframes[-1]):
            self._keyframes.append(timestamp)

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        """Account one audio message."""
        self._account(timestamp, len(payload))

    def _account(self, timestamp: int, size: int) -> None:
        self._bytes.append((timestamp, size))
        while self._bytes and self._bytes[0][0] < timestamp - _WINDOW_SECONDS * 1000:
            self._bytes.popleft()

    @property
    def bitrate_kbps(self) -> float | None:
        """Audio + video payload bitrate over the window."""
        if len(self._bytes) < 2:
            return None
        span = (self._bytes[-1][0] - self._bytes[0][0]) / 1000
        return round(sum(size for _, size in self._bytes) * 8 / 1000 / span, 1) if span > 0 else None

    @property
    def frame_rate(self) -> float | None:
        """Video frames per second over the window."""
        if len(self._frames) < 2:
            return None
        span = (self._frames[-1] - self._frames[0]) / 1000
        return round((len(self._frames) - 1) / span, 2) if span > 0 else None

    @property
    def keyframe_interval(self) -> float | None:
        """Median seconds between keyframes (what the README asks streamers to set to 1 s)."""
        if len(self._keyframes) < 2:
            return None
        gaps = [b - a for a, b in zip(self._keyframes, list(self._keyframes)[1:], strict=False)]
        return round(statistics.median(gaps) / 1000, 3)
