"""The segmenter: RTMP audio/video message bodies in, CMAF HLS init segments, parts and segments out. SANS-IO.

Theory of operation
-------------------
A *publisher session* is one RTMP publish; :meth:`Segmenter.discontinuity` starts the next one (OBS reconnects
with timestamps restarting at 0). Within a session the segmenter is first **collecting configs**: coded frames
are buffered (bounded) until every expected track's sequence header has arrived. Expected tracks come from
``onMetaData`` (``videocodecid``/``audiocodecid``), else from the previous init after a reconnect; without either,
a grace window of :data:`CONFIG_GRACE_MS` of buffered media decides. Then it **commits**: an :class:`InitSegment`
is emitted only if the configs differ from the current init (a new *epoch*), and the buffered frames are muxed.

Rules (cut rules from CMAF_COST.md):
1. A segment is cut before a video keyframe once ≥ ``target_duration`` has elapsed since the segment start
   (longer only when the GOP forces it), measured keyframe PTS to keyframe PTS: with open GOPs (x265's CRA
   followed by leading pictures) a keyframe's DTS arrives a reorder delay early. Audio-only streams cut before
   the first audio frame past the target. Millisecond timestamps get a 1 ms tolerance (0.999 s counts as 1 s).
2. With ``part_target`` set, a part (one ``moof`` + ``mdat``) is cut before the clock track's frame once
   ≥ ``part_target`` has elapsed since the part start. The clock track is video if the init has video, else audio.
3. Audio is cut "by arrival": audio received before the cutting video frame belongs to the closing part.
4. A video sample's duration is the next DTS minus its own, so a cut waits for the next frame to *arrive*. When
   no next frame will come (``finish()``, ``discontinuity()``, a config change, a forced cut) the previous
   sample duration is reused (CMAF_COST pitfall 9).
5. Memory bound: a segment that reaches ``max_segment_duration`` seconds or ``max_segment_bytes`` (no keyframe
   for 10 s, a stalled video track) is force-cut before the next frame whatever it is; the next segment then
   does not start with a keyframe (``keyframe=False``, the part is not INDEPENDENT). Buffering before the
   commit is bounded by the same byte limit.
6. A sequence header that differs from the current init mid-session (new SPS, new ASC, a track appearing)
   closes the current segment, emits a new init (epoch + 1) and flags the next segment as a discontinuity.
   After a video change, video frames are dropped until the next keyframe.
7. Video frames before a session's first keyframe are dropped; audio is kept.
8. ``program_date_time`` = ``anchor`` + output media time of the segment's first sample. Sans-IO has no clock:
   the caller passes ``anchor`` (wall clock of the first media sample); without it the Unix epoch is used.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from . import av1, flv, hevc
from .assembly import Assembler, PartBuilder
from .errors import MalformedMedia, MediaUsageError
from .fragment import NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS
from .init import build_init
from .outputs import InitSegment, Output
from .timeline import Timeline
from .tracks import VIDEO_TIMESCALE, AudioTrack, VideoTrack, audio_track, video_track

CONFIG_GRACE_MS = 1000
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPSILON = 0.001  # seconds: millisecond timestamps make a 1 s GOP come out as 0.999-1.001 s
_DEFAULT_FRAME_TICKS = VIDEO_TIMESCALE // 30


class Segmenter:
    """Turns one broadcast's RTMP audio/video messages into CMAF HLS outputs. See the module docstring.

    Args:
        target_duration: segment target in seconds (cuts happen at the first keyframe at or after it).
        part_target: LL-HLS part target in seconds, or ``None`` for one fragment per segment and no
            :class:`~mediakit.cmaf.outputs.Part` outputs.
        anchor: timezone-aware wall clock of the first media sample (``program_date_time`` base).
        max_segment_duration: force-cut bound in seconds (rule 5).
        max_segment_bytes: force-cut bound in bytes; also bounds buffering before the first init (rule 5).

    Raises:
        MediaUsageError: inconsistent durations or a naive ``anchor``.
    """

    def __init__(
        self,
        *,
        target_duration: float = 1.0,
        part_target: float | None = 0.333,
        anchor: datetime | None = None,
        max_segment_duration: float = 10.0,
        max_segment_bytes: int = 8 << 20,
    ) -> None:
        if not target_duration > 0:
            raise MediaUsageError(f"target_duration must be > 0, got {target_duration}")
        if part_target is not None and not 0 < part_target <= target_duration:
            raise MediaUsageError(f"part_target must be in (0, target_duration], got {part_target}")
        if max_segment_duration < target_duration or max_segment_bytes <= 0:
            raise MediaUsageError("max_segment_duration must be ≥ target_duration and max_segment_bytes > 0")
        if anchor is not None and anchor.utcoffset() is None:
            raise MediaUsageError("anchor must be timezone-aware")
        self.target_duration = target_duration
        self.part_target = part_target
        self.max_segment_duration = max_segment_duration
        self.max_segment_bytes = max_segment_bytes
        self.timeline = Timeline()
        self._pdt_base = anchor or UNIX_EPOCH
        self._pending_anchor: datetime | None = None
        self._epoch = -1
        self._video: VideoTrack | None = None  # tracks of the current init
        self._audio: AudioTrack | None = None
        self._session_video: VideoTrack | None = None  # sequence headers received in this publisher session
        self._session_audio: AudioTrack | None = None
        self._metadata: dict[str, Any] = {}
        self._session_metadata = False
        self._committed = False
        self._pending: list[tuple[int, flv.VideoFrame | flv.AudioFrame]] = []
        self._pending_bytes = 0
        self._await_keyframe = True
        self._assembler = Assembler(emit_parts=part_target is not None)
        self._next_discontinuity = False
        self._finished = False

    # ------------------------------------------------------------------ public API

    def feed_video(self, timestamp_ms: int, payload: bytes) -> list[Output]:
        """Feed one RTMP video message body (FLV VIDEODATA) with its RTMP timestamp (DTS, ms).

        Returns:
            Outputs ready now, in publishing order.

        Raises:
            UnsupportedMedia: a codec or packet the muxer does not handle (MalformedMedia: does not parse).
            MediaUsageError: called after ``finish()`` or with a negative timestamp.
        """
        self._check_open(timestamp_ms)
        tag = flv.parse_video(payload)
        if type(tag) is flv.VideoFrame:
            return self._on_video_frame(timestamp_ms, tag)
        if type(tag) is flv.VideoConfig:
            return self._on_video_config(tag)
        return []

    def feed_audio(self, timestamp_ms: int, payload: bytes) -> list[Output]:
        """Feed one RTMP audio message body (FLV AUDIODATA); see :meth:`feed_video`."""
        self._check_open(timestamp_ms)
        tag = flv.parse_audio(payload)
        if type(tag) is flv.AudioFrame:
            return self._on_audio_frame(timestamp_ms, tag)
        if type(tag) is flv.AudioConfig:
            return self._on_audio_config(tag)
        return []

    def feed_metadata(self, metadata: dict[str, Any]) -> list[Output]:
        """Feed ``onMetaData`` (fallback width/height/framerate, and which tracks to expect)."""
        self._check_open(0)
        self._metadata = dict(metadata)
        self._session_metadata = True
        return self._maybe_commit()

    def discontinuity(self, *, anchor: datetime | None = None) -> list[Output]:
        """The publisher reconnected: flush, then continue the output timeline with the next session.

        Args:
            anchor: optional wall clock of the new session's first sample, for ``program_date_time``; by default
                PDT stays continuous with the output timeline.
        """
        self._check_open(0)
        if anchor is not None and anchor.utcoffset() is None:
            raise MediaUsageError("anchor must be timezone-aware")
        out = self._flush()
        self.timeline.new_session()
        self._session_video = self._session_audio = None
        self._session_metadata = False
        self._committed = False
        self._await_keyframe = True
        self._next_discontinuity = self._assembler.next_sequence > 0
        self._pending_anchor = anchor
        return out

    def finish(self) -> list[Output]:
        """Flush the last (partial) segment. No input is accepted afterwards."""
        self._check_open(0)
        out = self._flush()
        self._finished = True
        return out

    # ------------------------------------------------------------------ configs and commit

    def _on_video_config(self, tag: flv.VideoConfig) -> list[Output]:
        track = video_track(tag.codec, tag.record)
        if track.same_config(self._session_video):
            return []
        self._session_video = track
        if not self._committed:
            return self._maybe_commit()
        if track.same_config(self._video):
            return []
        return self._reconfigure(video_changed=True)

    def _on_audio_config(self, tag: flv.AudioConfig) -> list[Output]:
        track = audio_track(tag.config, tag.flv_channels)
        if track.same_config(self._session_audio):
            return []
        self._session_audio = track
        if not self._committed:
            return self._maybe_commit()
        if track.same_config(self._audio):
            return []
        return self._reconfigure(video_changed=False)

    def _tracks(self) -> tuple[VideoTrack | None, AudioTrack | None]:
        """The configs this session muxes with: its own sequence headers, else those of the last init."""
        video = self._session_video or self._video
        if video is not None:
            video = video.with_fallback_size(
                _metadata_int(self._metadata, "width"), _metadata_int(self._metadata, "height")
            )
        return video, self._session_audio or self._audio

    def _expected(self) -> tuple[bool, bool] | None:
        if self._session_metadata and ("videocodecid" in self._metadata or "audiocodecid" in self._metadata):
            return self._metadata.get("videocodecid") is not None, self._metadata.get("audiocodecid") is not None
        if self._epoch >= 0:
            return self._video is not None, self._audio is not None
        return None

    def _maybe_commit(self) -> list[Output]:
        if self._committed or self._finished:
            return []
        have_video, have_audio = self._session_video is not None, self._session_audio is not None
        expected = self._expected()
        ready = expected is not None and (have_video or not expected[0]) and (have_audio or not expected[1])
        if self._pending and not ready:
            span = self._pending[-1][0] - min(ts for ts, _ in self._pending)
            ready = span >= CONFIG_GRACE_MS or self._pending_bytes >= self.max_segment_bytes
        if not ready or not (have_video or have_audio or self._pending):
            return []
        return self._commit()

    def _commit(self) -> list[Output]:
        video, audio = self._tracks()
        self._committed = True
        out: list[Output] = []
        if self._epoch < 0 or not (_same(video, self._video) and _same(audio, self._audio)):
            out.append(self._new_init(video, audio))
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for ts, frame in pending:
            out += self._mux_video(ts, frame) if isinstance(frame, flv.VideoFrame) else self._mux_audio(ts, frame)
        return out

    def _new_init(self, video: VideoTrack | None, audio: AudioTrack | None) -> InitSegment:
        if audio is not None and not audio.same_config(self._audio):
            self.timeline.reset_audio(audio.timescale, audio.asc.frame_samples)
        self._epoch += 1
        self._video, self._audio = video, audio
        if self._epoch > 0:
            self._next_discontinuity = True
        video_codec = video.codec_string if video else None
        audio_codec = audio.codec_string if audio else None
        return InitSegment(
            epoch=self._epoch,
            data=build_init(video=video, audio=audio),
            codecs=",".join(codec for codec in (video_codec, audio_codec) if codec),
            width=video.width if video else None,
            height=video.height if video else None,
            video_codec=video_codec,
            audio_codec=audio_codec,
        )

    def _reconfigure(self, *, video_changed: bool) -> list[Output]:
        out = self._close_segment()
        out.append(self._new_init(*self._tracks()))
        if video_changed:
            self._await_keyframe = True
        return out

    def _flush(self) -> list[Output]:
        out = self._commit() if not self._committed and self._pending else []
        return out + self._close_segment()

    # ------------------------------------------------------------------ frames

    def _on_video_frame(self, ts: int, frame: flv.VideoFrame) -> list[Output]:
        config = self._session_video or self._video
        if config is None or not frame.data:
            return []  # no sequence header yet (undecodable), or an empty NALU packet
        if frame.codec != config.codec:
            raise MalformedMedia(f"video frame codec {frame.codec} does not match the sequence header")
        if self._committed:
            return self._mux_video(ts, frame)
        return self._buffer(ts, frame)

    def _on_audio_frame(self, ts: int, frame: flv.AudioFrame) -> list[Output]:
        if (self._session_audio or self._audio) is None or not frame.data:
            return []
        if self._committed:
            return self._mux_audio(ts, frame)
        return self._buffer(ts, frame)

    def _buffer(self, ts: int, frame: flv.VideoFrame | flv.AudioFrame) -> list[Output]:
        self._pending.append((ts, frame))
        self._pending_bytes += len(frame.data)
        return self._maybe_commit()

    def _mux_video(self, ts: int, frame: flv.VideoFrame) -> list[Output]:
        track = self._video
        if track is None:
            return []
        if self._await_keyframe:
            if not frame.keyframe:
                return []
            self._await_keyframe = False
        data: bytes | memoryview = frame.data
        if track.parameter_sets and frame.keyframe:
            data = hevc.strip_parameter_sets(data, track.length_size, track.parameter_sets) or data
        elif track.codec == flv.AV1:
            data = av1.strip_temporal_delimiter(data)
        dts, out_ms = self.timeline.video(ts)
        cto = max(0, (out_ms + frame.cts) * 90 - dts)
        self.timeline.note_video_presentation(dts, cto)
        if self._assembler.part is not None:
            self._assembler.part.close_video_duration(dts)
        t, pts = dts / VIDEO_TIMESCALE, (dts + cto) / VIDEO_TIMESCALE
        out = self._maybe_cut(t, clock=True, keyframe=frame.keyframe, pts=pts)
        part = self._open_part(t, pts)
        part.add_video(dts, cto, SYNC_SAMPLE_FLAGS if frame.keyframe else NON_SYNC_SAMPLE_FLAGS, data)
        return out

    def _mux_audio(self, ts: int, frame: flv.AudioFrame) -> list[Output]:
        track = self._audio
        if track is None:
            return []
        dts = self.timeline.audio(ts)
        t = dts / track.timescale
        out = self._maybe_cut(t, clock=self._video is None, keyframe=True)
        self._open_part(t).add_audio(dts, frame.data)
        return out

    # ------------------------------------------------------------------ cutting

    def _maybe_cut(self, t: float, *, clock: bool, keyframe: bool, pts: float | None = None) -> list[Output]:
        seg, part = self._assembler.segment, self._assembler.part
        if seg is None or part is None:
            return []
        elapsed = t - seg.start
        if clock and keyframe:
            # Keyframe to keyframe in presentation time: with open GOPs (x265 CRA + leading pictures) the
            # keyframe's DTS comes a reorder delay early, its PTS does not.
            span = pts - seg.first_pts if pts is not None and seg.first_pts is not None else elapsed
            if span >= self.target_duration - _EPSILON:
                return self._close_segment()
        if elapsed >= self.max_segment_duration or seg.size + part.size >= self.max_segment_bytes:
            return self._close_segment()
        if clock and self.part_target is not None and t - part.start >= self.part_target - _EPSILON:
            return self._close_part()
        return []

    def _open_part(self, t: float, pts: float | None = None) -> PartBuilder:
        seg = self._assembler.segment
        if seg is None:
            if self._pending_anchor is not None and self.timeline.session_start_ms is not None:
                self._pdt_base = self._pending_anchor - timedelta(milliseconds=self.timeline.session_start_ms)
                self._pending_anchor = None
            pdt = self._pdt_base + timedelta(seconds=t)
            seg = self._assembler.start_segment(t, epoch=self._epoch, discontinuity=self._next_discontinuity, pdt=pdt)
            self._next_discontinuity = False
        if seg.first_pts is None and pts is not None:
            seg.first_pts = pts
        return self._assembler.part_at(t)

    def _close_part(self) -> list[Output]:
        return self._assembler.close_part(self._video, self._audio, self._estimated_frame_ticks())

    def _close_segment(self) -> list[Output]:
        return self._assembler.close_segment(self._video, self._audio, self._estimated_frame_ticks())

    def _estimated_frame_ticks(self) -> int:
        if self.timeline.video_step:
            return self.timeline.video_step
        rate = self._metadata.get("framerate")
        if isinstance(rate, int | float) and 1 <= rate <= 240:
            return round(VIDEO_TIMESCALE / rate)
        return _DEFAULT_FRAME_TICKS

    def _check_open(self, timestamp_ms: int) -> None:
        if self._finished:
            raise MediaUsageError("the segmenter is finished; no more input")
        if timestamp_ms < 0:
            raise MediaUsageError(f"negative timestamp {timestamp_ms}")


def _same(a: VideoTrack | AudioTrack | None, b: VideoTrack | AudioTrack | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_config(b)  # type: ignore[arg-type]  # a and b are the same kind of track


def _metadata_int(metadata: dict[str, Any], name: str) -> int | None:
    value = metadata.get(name)
    return int(value) if isinstance(value, int | float) and 0 < value < 65536 else None
