"""Part and segment assembly: timed samples in, :class:`Part` / :class:`Segment` outputs out.

The segmenter decides *when* to cut; this module only knows *how*: it keeps the samples of the open part, turns
them into one ``moof`` + ``mdat`` (the segment's first part gets the ``styp``), and joins parts into segments.

Rules:
- A video sample's duration is set when the next video DTS is known (:meth:`PartBuilder.close_video_duration`);
  a part closed before that gets ``last_video_ticks`` (the previous sample duration, CMAF_COST pitfall 9).
- Audio durations are DTS differences inside the part, and one frame (1024 samples) for the last one.
- A part's duration is its video duration, or its audio duration when it has no video.
- ``mfhd`` sequence numbers start at 1 and increase by one per fragment for the segmenter's lifetime.
"""

from __future__ import annotations

from datetime import datetime

from .fragment import SYNC_SAMPLE_FLAGS, TrackRun, build_fragment, segment_type
from .init import AUDIO_TRACK_ID, VIDEO_TRACK_ID
from .outputs import Output, Part, PartInfo, Segment
from .tracks import VIDEO_TIMESCALE, AudioTrack, VideoTrack


class PartBuilder:
    """Samples of the part being filled."""

    __slots__ = ("start", "v_dts", "v_dur", "v_cto", "v_flags", "v_data", "a_dts", "a_data", "size")

    def __init__(self, start: float) -> None:
        self.start = start
        self.v_dts: list[int] = []
        self.v_dur: list[int] = []
        self.v_cto: list[int] = []
        self.v_flags: list[int] = []
        self.v_data: list[bytes | memoryview] = []
        self.a_dts: list[int] = []
        self.a_data: list[bytes | memoryview] = []
        self.size = 0

    def close_video_duration(self, next_dts: int) -> None:
        """The next video DTS is known: the last video sample of this part (if still open) ends there."""
        if len(self.v_dur) < len(self.v_dts):
            self.v_dur.append(next_dts - self.v_dts[-1])

    def add_video(self, dts: int, cto: int, flags: int, data: bytes | memoryview) -> None:
        """Append a video sample (its duration comes later)."""
        self.v_dts.append(dts)
        self.v_cto.append(cto)
        self.v_flags.append(flags)
        self.v_data.append(data)
        self.size += len(data)

    def add_audio(self, dts: int, data: bytes | memoryview) -> None:
        """Append an audio sample."""
        self.a_dts.append(dts)
        self.a_data.append(data)
        self.size += len(data)


class SegmentBuilder:
    """The segment being filled: its identity and the parts closed so far."""

    __slots__ = (
        "sequence",
        "epoch",
        "discontinuity",
        "start",
        "first_pts",
        "pdt",
        "parts",
        "infos",
        "size",
        "duration",
    )

    def __init__(self, sequence: int, epoch: int, discontinuity: bool, start: float, pdt: datetime) -> None:
        self.sequence, self.epoch, self.discontinuity, self.start, self.pdt = sequence, epoch, discontinuity, start, pdt
        #: PTS (seconds) of the first video sample, for keyframe-to-keyframe spans.
        self.first_pts: float | None = None
        self.parts: list[bytes] = []
        self.infos: list[PartInfo] = []
        self.size = 0
        self.duration = 0.0


class Assembler:
    """Owns the open segment and part; see the module rules."""

    def __init__(self, *, emit_parts: bool) -> None:
        self.emit_parts = emit_parts
        self.segment: SegmentBuilder | None = None
        self.part: PartBuilder | None = None
        self.next_sequence = 0
        self._fragment_number = 1

    def start_segment(self, t: float, *, epoch: int, discontinuity: bool, pdt: datetime) -> SegmentBuilder:
        """Open the next segment at media time ``t`` (seconds)."""
        self.segment = SegmentBuilder(self.next_sequence, epoch, discontinuity, t, pdt)
        self.next_sequence += 1
        return self.segment

    def part_at(self, t: float) -> PartBuilder:
        """The open part, opening one at media time ``t`` if needed (a segment must be open)."""
        if self.part is None:
            self.part = PartBuilder(t)
        return self.part

    def close_part(self, video: VideoTrack | None, audio: AudioTrack | None, last_video_ticks: int) -> list[Output]:
        """Close the open part into a fragment; returns the :class:`Part` when parts are emitted."""
        seg, part = self.segment, self.part
        self.part = None
        if seg is None or part is None or not (part.v_dts or part.a_dts):
            return []
        runs = []
        duration = 0.0
        independent = video is None
        if part.v_dts:
            if len(part.v_dur) < len(part.v_dts):
                part.v_dur.append(last_video_ticks)
            runs.append(TrackRun(VIDEO_TRACK_ID, part.v_dts[0], part.v_dur, part.v_data, part.v_flags, part.v_cto))
            duration = sum(part.v_dur) / VIDEO_TIMESCALE
            independent = part.v_flags[0] == SYNC_SAMPLE_FLAGS
        if part.a_dts and audio is not None:
            a_dts = part.a_dts
            durations = [b - a for a, b in zip(a_dts, a_dts[1:], strict=False)] + [audio.asc.frame_samples]
            runs.append(TrackRun(AUDIO_TRACK_ID, a_dts[0], durations, part.a_data))
            if not part.v_dts:
                duration = sum(durations) / audio.timescale
        data = build_fragment(self._fragment_number, runs)
        self._fragment_number += 1
        index = len(seg.infos)
        if index == 0:
            data = segment_type(single_track=(video is None) != (audio is None)) + data
        seg.infos.append(
            PartInfo(index=index, duration=duration, independent=independent, offset=seg.size, size=len(data))
        )
        seg.parts.append(data)
        seg.size += len(data)
        seg.duration += duration
        if not self.emit_parts:
            return []
        return [
            Part(
                sequence=seg.sequence,
                index=index,
                data=data,
                duration=duration,
                independent=independent,
                epoch=seg.epoch,
                discontinuity=seg.discontinuity,
            )
        ]

    def close_segment(self, video: VideoTrack | None, audio: AudioTrack | None, last_video_ticks: int) -> list[Output]:
        """Close the open part and the segment: the last :class:`Part` (if emitted), then the :class:`Segment`."""
        out = self.close_part(video, audio, last_video_ticks)
        seg, self.segment = self.segment, None
        if seg is None or not seg.infos:
            return out
        out.append(
            Segment(
                sequence=seg.sequence,
                data=b"".join(seg.parts),
                duration=seg.duration,
                epoch=seg.epoch,
                discontinuity=seg.discontinuity,
                program_date_time=seg.pdt,
                keyframe=seg.infos[0].independent,
                parts=tuple(seg.infos),
            )
        )
        return out
