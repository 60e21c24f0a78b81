"""The structure of one stored live segment (``styp`` + ``moof``/``mdat`` pairs), from ranged reads. SANS-IO.

The recording builder must index a 4-hour broadcast (~14,400 segments, ~11 GB) without reading its payload twice:
it needs every ``moof`` and where each ``mdat`` lies, never the samples themselves. :class:`SegmentScanner` says
which byte range it wants next (:meth:`~SegmentScanner.want`); the caller reads it however it likes (an S3
ranged GET) and hands the bytes back (:meth:`~SegmentScanner.feed`), like h11's ``receive_data`` turned around.

Rules:
- Boxes are read only through :mod:`mediakit.bmff`: headers with :func:`~mediakit.bmff.iter_boxes` (ISO/IEC
  14496-12 §4.2: 32-bit size, 64-bit ``largesize``, size 0 = to the end), checked against the object's size;
  ``moof`` boxes (§8.8.4) whole with :func:`~mediakit.bmff.read_moof`, so sample positions are offsets into the
  object (default-base-is-moof, §8.8.7).
- ``mdat`` payloads (§8.1.1) are never asked for: after an ``mdat`` header the next read starts at its end.
- Any other box (``styp``, ``free``, ``skip``, ``sidx``, ``emsg``, ``prft``, ...) is skipped unread (§4.2:
  unrecognised boxes are ignored).
- Read sizes: the first read asks for ``read_size`` bytes (``styp``, the first ``moof`` and the ``mdat`` header
  usually fit). Later reads at a box header ask for the previous ``moof``'s size plus slack and the next header
  (a segment's fragments carry about the same number of samples), at most ``read_size``. A ``moof`` longer than
  what is buffered is completed with one read of exactly the missing bytes plus the next header. So a segment of
  N fragments costs about N reads and a little more than its ``moof`` bytes.
- The caller may feed less than it was asked for (``want()`` then asks for the rest) or more (kept as read-ahead,
  up to the object's size).
- Malformed input raises :class:`~mediakit.bmff.MalformedBox` and nothing else: a box running past the object's
  end, a ``moof`` without its ``mdat``, samples outside their ``mdat``, no ``moof`` at all, more bytes than the
  object's size, or an empty read before the end (the object is shorter than the caller said). Misuse of the API
  (feeding the wrong offset, feeding after the end) raises a plain ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import bmff

#: Most bytes a box header takes: size, type and the 64-bit largesize (§4.2).
HEADER_MAX = 16
_SLACK = 128


class SegmentScanner:
    """Reads one segment object's ``moof`` boxes and ``mdat`` spans from the ranges it asks for.

    Args:
        size: the object's size in bytes (S3 ``Content-Length``).
        defaults: ``trex`` defaults of the segment's init, by track id (``bmff.TrackInfo.defaults``).
        read_size: bytes asked for when the scanner cannot know what lies ahead (at most).

    Raises:
        MalformedBox: ``size`` too small to hold any box.
        ValueError: ``read_size`` < 1.
    """

    def __init__(self, size: int, defaults: Mapping[int, bmff.TrackDefaults], *, read_size: int = 16384) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be ≥ 1, got {read_size}")
        if size < 8:
            raise bmff.MalformedBox(f"an object of {size} bytes holds no moof")
        self.size = size
        self._defaults = dict(defaults)
        self._read_size = read_size
        self._guess = read_size
        self._buffer = b""
        self._buffer_start = 0
        self._pos = 0  # next box header
        self._need = min(read_size, size)  # bytes wanted up to this position before parsing can go on
        self._moof: tuple[bmff.BoxRef, list[bmff.TrackRun]] | None = None
        self._fragments: list[bmff.Fragment] = []
        self._done = False

    @property
    def fragments(self) -> tuple[bmff.Fragment, ...]:
        """The fragments read so far, positions relative to the object's first byte (all once ``want()`` is None)."""
        return tuple(self._fragments)

    def want(self) -> tuple[int, int] | None:
        """``(offset, length)`` of the next read, or None when the scan is complete."""
        if self._done:
            return None
        end = self._buffer_start + len(self._buffer)
        return end, self._need - end

    def feed(self, offset: int, data: bytes | memoryview) -> None:
        """Hand over bytes read at ``offset`` (the offset :meth:`want` gave; any length ≥ 1).

        Raises:
            MalformedBox: the bytes do not hold the structure they should, or the object is shorter or longer
                than ``size``.
            ValueError: ``offset`` is not the one :meth:`want` asked for, or the scan is complete.
        """
        wanted = self.want()
        if wanted is None:
            raise ValueError("the scan is complete; nothing more to feed")
        if offset != wanted[0]:
            raise ValueError(f"fed bytes at {offset}, but the scanner wants {wanted[0]}")
        if not data:
            raise bmff.MalformedBox(f"the object ended at {offset}, but its size is {self.size}")
        if offset + len(data) > self.size:
            raise bmff.MalformedBox(f"{offset + len(data)} bytes read from an object of {self.size}")
        self._buffer = self._buffer + bytes(data) if self._buffer else bytes(data)
        self._advance()

    # ------------------------------------------------------------------ parsing

    def _advance(self) -> None:
        while self._pos < self.size:
            end = self._buffer_start + len(self._buffer)
            if end < min(self._pos + HEADER_MAX, self.size):
                self._need = max(min(self._pos + HEADER_MAX, self.size), min(self._pos + self._guess, self.size))
                return
            ref = self._header()
            if ref.kind == b"moof":
                if end < ref.end:
                    self._need = min(ref.end + HEADER_MAX, self.size)
                    return
                self._read_moof(ref)
            elif ref.kind == b"mdat":
                self._close_fragment(ref)
            self._pos = ref.end
            if self._pos >= end:  # skipped past everything buffered: start afresh at the next header
                self._buffer, self._buffer_start = b"", self._pos
        self._finish()

    def _header(self) -> bmff.BoxRef:
        """The box whose header is at ``_pos``, in object coordinates.

        ``iter_boxes`` checks the box's size against the *object's* end (``end`` past the buffer): only the header
        has to be buffered, and the generator is not advanced past this first box.
        """
        start = self._pos - self._buffer_start
        ref = next(bmff.iter_boxes(self._buffer, start, self.size - self._buffer_start))
        shift = self._buffer_start
        return bmff.BoxRef(ref.kind, ref.start + shift, ref.payload + shift, ref.end + shift)

    def _read_moof(self, moof: bmff.BoxRef) -> None:
        if self._moof is not None:
            raise bmff.MalformedBox(f"moof at {self._moof[0].start} has no mdat")
        shift = self._buffer_start
        local = bmff.BoxRef(moof.kind, moof.start - shift, moof.payload - shift, moof.end - shift)
        self._check_sample_counts(local)
        runs = bmff.read_moof(self._buffer, local, position=shift, defaults=self._defaults)
        self._moof = (moof, runs)
        self._guess = min(self._read_size, moof.size + moof.size // 4 + _SLACK + HEADER_MAX)

    def _check_sample_counts(self, moof: bmff.BoxRef) -> None:
        """Refuse a ``trun`` claiming more samples than the object has bytes (§8.8.8 sample_count), before
        :func:`bmff.read_moof` builds per-sample lists of that length from defaults."""
        for trun in bmff.find_all(self._buffer, b"traf", b"trun", start=moof.payload, end=moof.end):
            count = int.from_bytes(self._buffer[trun.payload + 4 : trun.payload + 8], "big")
            if count > self.size:
                raise bmff.MalformedBox(f"trun at {trun.start + self._buffer_start} claims {count} samples")

    def _close_fragment(self, mdat: bmff.BoxRef) -> None:
        if self._moof is None:
            return  # an mdat no moof describes holds nothing we can use (§8.1.1 allows it)
        moof, runs = self._moof
        for run in runs:
            if run.sizes and not mdat.payload <= run.data_position <= run.data_position + run.total_size <= mdat.end:
                raise bmff.MalformedBox(
                    f"samples of track {run.track_id} in the moof at {moof.start} lie outside its mdat"
                )
        self._fragments.append(bmff.Fragment(moof.start, moof.end, tuple(runs), (mdat.payload, mdat.end)))
        self._moof = None

    def _finish(self) -> None:
        if self._moof is not None:
            raise bmff.MalformedBox(f"moof at {self._moof[0].start} has no mdat")
        if not self._fragments:
            raise bmff.MalformedBox("the object holds no moof")
        self._done = True
        self._buffer = b""


def scan_whole(data: bytes | memoryview, defaults: Mapping[int, bmff.TrackDefaults]) -> tuple[bmff.Fragment, ...]:
    """Drive a :class:`SegmentScanner` over a segment held in memory (tests, small tools).

    Raises:
        MalformedBox: see :class:`SegmentScanner`.
    """
    scanner = SegmentScanner(len(data), defaults, read_size=max(len(data), 1))
    while (wanted := scanner.want()) is not None:
        offset, length = wanted
        scanner.feed(offset, data[offset : offset + length])
    return scanner.fragments
