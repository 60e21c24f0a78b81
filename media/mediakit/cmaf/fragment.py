"""Movie fragments: ``moof`` + ``mdat`` (ISO/IEC 14496-12 §8.8), one per LL-HLS part (or per segment).

Layout::

    [styp(msdh; msdh [, cmfs when single-track])]   first fragment of a segment only (CMAF_COST pitfall 11)
    moof
      mfhd (sequence_number, +1 per fragment)
      traf video: tfhd (track 1, default-base-is-moof), tfdt v1, trun v0 flags 0xF01
                  (data_offset, duration, size, flags, composition offset per sample)
      traf audio: tfhd (track 2, default-base-is-moof + default_sample_flags 0x02000000), tfdt v1,
                  trun v0 flags 0x301 (data_offset, duration, size)
    mdat: video samples, then audio samples

Rules:
- ``tfdt`` is version 1 (64-bit baseMediaDecodeTime) in each track's own timescale (pitfall 4).
- ``trun`` is version 0: FLV composition offsets are ≥ 0 for H.264/HEVC, and v1 with shifted offsets made ffmpeg
  report video 67 ms late (pitfall 1).
- Sample flags (§8.8.3.1): sync samples ``0x02000000`` (sample_depends_on = 2), others ``0x01010000``
  (depends_on = 1, sample_is_non_sync_sample = 1). Getting this wrong is invisible to ffprobe (pitfall 7), so
  the tests read it back from the boxes.
- ``data_offset`` counts from the start of the ``moof`` (default-base-is-moof): the ``moof`` size does not depend
  on the offsets, so it is computed first and the boxes are written once (pitfall 8).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .boxes import file_type

SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
_TFHD_DEFAULT_SAMPLE_FLAGS = 0x000020
_TRUN_VIDEO = 0x000F01  # data-offset | duration | size | flags | composition-time-offset
_TRUN_AUDIO = 0x000301  # data-offset | duration | size
_BOX = struct.Struct(">I4s")
_MFHD = struct.Struct(">I4sII")
_TFHD = struct.Struct(">I4sII")
_TFHD_FLAGS = struct.Struct(">I4sIII")
_TFDT = struct.Struct(">I4sIQ")
_TRUN_HEADER = struct.Struct(">I4sIIi")


def segment_type(single_track: bool) -> bytes:
    """The ``styp`` that opens every segment (and so its first part)."""
    return file_type(b"styp", b"msdh", (b"msdh", *((b"cmfs",) if single_track else ())))


@dataclass(slots=True)
class TrackRun:
    """The samples of one track in one fragment."""

    track_id: int
    #: tfdt: decode time of the first sample, in the track timescale.
    base_time: int
    durations: list[int] = field(default_factory=list)
    #: Per-sample payloads; sizes are their lengths.
    payloads: list[bytes | memoryview] = field(default_factory=list)
    #: Video only: per-sample flags and composition offsets. ``None`` → an audio run (all samples sync).
    flags: list[int] | None = None
    offsets: list[int] | None = None

    @property
    def size(self) -> int:
        """Total payload bytes."""
        return sum(len(payload) for payload in self.payloads)


def build_fragment(sequence_number: int, runs: Sequence[TrackRun]) -> bytes:
    """Build ``moof`` + ``mdat`` for the non-empty ``runs`` (in mdat order).

    Args:
        sequence_number: ``mfhd`` sequence number (starts at 1, +1 per fragment).
        runs: one run per track with at least one sample.

    Returns:
        The fragment bytes.
    """
    sizes = [[len(payload) for payload in run.payloads] for run in runs]
    traf_sizes = [_traf_size(run) for run in runs]
    moof_size = 8 + _MFHD.size + sum(traf_sizes)
    parts = [_BOX.pack(moof_size, b"moof"), _MFHD.pack(_MFHD.size, b"mfhd", 0, sequence_number)]
    data_offset = moof_size + 8
    for run, run_sizes, traf_size in zip(runs, sizes, traf_sizes, strict=True):
        parts.append(_BOX.pack(traf_size, b"traf"))
        if run.flags is None:
            parts.append(
                _TFHD_FLAGS.pack(
                    _TFHD_FLAGS.size,
                    b"tfhd",
                    _TFHD_DEFAULT_BASE_IS_MOOF | _TFHD_DEFAULT_SAMPLE_FLAGS,
                    run.track_id,
                    SYNC_SAMPLE_FLAGS,
                )
            )
        else:
            parts.append(_TFHD.pack(_TFHD.size, b"tfhd", _TFHD_DEFAULT_BASE_IS_MOOF, run.track_id))
        parts.append(_TFDT.pack(_TFDT.size, b"tfdt", 1 << 24, run.base_time))
        parts.append(_trun(run, run_sizes, data_offset))
        data_offset += sum(run_sizes)
    mdat_size = data_offset - moof_size
    parts.append(_BOX.pack(mdat_size, b"mdat"))
    for run in runs:
        parts.extend(run.payloads)
    return b"".join(parts)


def _traf_size(run: TrackRun) -> int:
    tfhd = _TFHD.size if run.flags is not None else _TFHD_FLAGS.size
    per_sample = 16 if run.flags is not None else 8
    return 8 + tfhd + _TFDT.size + _TRUN_HEADER.size + per_sample * len(run.payloads)


def _trun(run: TrackRun, sizes: list[int], data_offset: int) -> bytes:
    count = len(sizes)
    if run.flags is not None and run.offsets is not None:
        entries = [
            value for sample in zip(run.durations, sizes, run.flags, run.offsets, strict=True) for value in sample
        ]
        flags, per_sample = _TRUN_VIDEO, 4
    else:
        entries = [value for sample in zip(run.durations, sizes, strict=True) for value in sample]
        flags, per_sample = _TRUN_AUDIO, 2
    size = _TRUN_HEADER.size + 4 * per_sample * count
    header = _TRUN_HEADER.pack(size, b"trun", flags, count, data_offset)
    return header + struct.pack(f">{len(entries)}I", *entries)
