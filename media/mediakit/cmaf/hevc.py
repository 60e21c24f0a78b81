"""HEVC: HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1), SPS size (ITU-T H.265 §7.3.2.2), codec string.

Rules:
- The sample entry is ``hvc1`` (what Apple's HLS authoring spec asks for and what Enhanced RTMP names the codec).
  For ``hvc1``, §8.4.1.1 says ``array_completeness`` is 1 for the VPS/SPS/PPS arrays: every parameter set is in
  the ``hvcC`` and none in the samples. :func:`hvc1_record` sets those bits, and :func:`strip_parameter_sets`
  removes in-band VPS/SPS/PPS from samples *when they equal* the ones in the record (encoders such as x265 with
  ``repeat-headers`` resend them before every IDR). A parameter set that differs is kept: the decoder then
  needs it, and a new SequenceStart will come with the change.
- Codec string (14496-15 Annex E.3): ``hvc1.<space><profile_idc>.<compat, bit-reversed hex>.<L|H><level_idc>``
  followed by the constraint bytes in hex, trailing zero bytes dropped; e.g. ``hvc1.1.6.L93.B0``.
- Width/height come from the SPS (pic size minus the conformance window, scaled by SubWidthC/SubHeightC);
  if the SPS cannot be parsed the caller falls back to ``onMetaData``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bits import BitReader, unescape_rbsp
from .errors import MalformedMedia

NAL_VPS, NAL_SPS, NAL_PPS = 32, 33, 34
_PARAMETER_SETS = frozenset({NAL_VPS, NAL_SPS, NAL_PPS})


@dataclass(frozen=True, kw_only=True, slots=True)
class HevcConfig:
    """A parsed HEVCDecoderConfigurationRecord."""

    raw: bytes
    profile_space: int
    tier: int
    profile_idc: int
    compatibility_flags: int
    constraint_bytes: bytes
    level_idc: int
    length_size: int
    #: NAL unit type → NAL units of that type, in record order.
    arrays: dict[int, tuple[bytes, ...]]

    @property
    def codec(self) -> str:
        """RFC 6381 / 14496-15 Annex E codec string."""
        space = "" if self.profile_space == 0 else "ABC"[self.profile_space - 1]
        compat = int(f"{self.compatibility_flags:032b}"[::-1], 2)
        constraints = self.constraint_bytes.rstrip(b"\x00")
        tail = "".join(f".{byte:X}" for byte in constraints)
        return f"hvc1.{space}{self.profile_idc}.{compat:X}.{'HL'[self.tier == 0]}{self.level_idc}{tail}"

    @property
    def parameter_sets(self) -> frozenset[bytes]:
        """Every VPS/SPS/PPS NAL unit of the record."""
        return frozenset(nal for kind in _PARAMETER_SETS for nal in self.arrays.get(kind, ()))


def parse_hvcc(record: bytes) -> HevcConfig:
    """Parse an HEVCDecoderConfigurationRecord.

    Raises:
        MalformedMedia: wrong version, truncated, or no SPS.
    """
    if len(record) < 23 or record[0] != 1:
        raise MalformedMedia("hvcC: not an HEVCDecoderConfigurationRecord version 1")
    arrays: dict[int, list[bytes]] = {}
    pos = 23
    for _ in range(record[22]):
        if pos + 3 > len(record):
            raise MalformedMedia("hvcC: truncated NAL unit array")
        kind, count = record[pos] & 0x3F, int.from_bytes(record[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(record):
                raise MalformedMedia("hvcC: truncated NAL unit length")
            size = int.from_bytes(record[pos : pos + 2], "big")
            if size == 0 or pos + 2 + size > len(record):
                raise MalformedMedia("hvcC: truncated NAL unit")
            arrays.setdefault(kind, []).append(record[pos + 2 : pos + 2 + size])
            pos += 2 + size
    if not arrays.get(NAL_SPS):
        raise MalformedMedia("hvcC: no sequence parameter set")
    return HevcConfig(
        raw=bytes(record),
        profile_space=record[1] >> 6,
        tier=(record[1] >> 5) & 1,
        profile_idc=record[1] & 0x1F,
        compatibility_flags=int.from_bytes(record[2:6], "big"),
        constraint_bytes=bytes(record[6:12]),
        level_idc=record[12],
        length_size=(record[21] & 0x03) + 1,
        arrays={kind: tuple(nals) for kind, nals in arrays.items()},
    )


def hvc1_record(config: HevcConfig) -> bytes:
    """The record to put in an ``hvc1`` sample entry: ``array_completeness`` = 1 on the parameter-set arrays."""
    out = bytearray(config.raw)
    pos = 23
    for _ in range(out[22]):
        if out[pos] & 0x3F in _PARAMETER_SETS:
            out[pos] |= 0x80
        count = int.from_bytes(out[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            pos += 2 + int.from_bytes(out[pos : pos + 2], "big")
    return bytes(out)


def sps_size(nal: bytes) -> tuple[int, int]:
    """Width and height of the conformance window of an HEVC SPS NAL unit (2-byte header included).

    Raises:
        MalformedMedia: not an SPS, or truncated.
    """
    if len(nal) < 4 or (nal[0] >> 1) & 0x3F != NAL_SPS:
        raise MalformedMedia("HEVC SPS: not a sequence parameter set NAL unit")
    r = BitReader(unescape_rbsp(nal[2:]), "HEVC SPS")
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    r.skip(1)  # sps_temporal_id_nesting_flag
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    r.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = r.ue()
    if chroma_format_idc > 3:
        raise MalformedMedia(f"HEVC SPS: chroma_format_idc {chroma_format_idc}")
    if chroma_format_idc == 3 and r.flag():  # separate_colour_plane_flag → ChromaArrayType 0
        chroma_format_idc = 0
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        sub_width = 2 if chroma_format_idc in (1, 2) else 1
        sub_height = 2 if chroma_format_idc == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
    if width <= 0 or height <= 0:
        raise MalformedMedia(f"HEVC SPS: size {width}x{height}")
    return width, height


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    """profile_tier_level(1, maxNumSubLayersMinus1), H.265 §7.3.3: 96 general bits, then the sub-layers."""
    r.skip(96)
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1:
        r.skip(2 * (8 - max_sub_layers_minus1))
    for profile_present, level_present in present:
        r.skip(88 * profile_present + 8 * level_present)


def strip_parameter_sets(sample: bytes | memoryview, length_size: int, known: frozenset[bytes]) -> bytes | None:
    """Drop in-band VPS/SPS/PPS that are byte-identical to ``known``.

    Returns:
        The rewritten sample, or ``None`` when nothing was dropped (the caller keeps the original bytes).

    Raises:
        MalformedMedia: a NAL unit length runs past the end of the sample.
    """
    kept: list[bytes | memoryview] = []
    dropped = False
    view = memoryview(sample)
    pos, end = 0, len(view)
    while pos < end:
        if pos + length_size > end:
            raise MalformedMedia("HEVC sample: truncated NAL unit length")
        size = int.from_bytes(view[pos : pos + length_size], "big")
        nal_end = pos + length_size + size
        if size < 2 or nal_end > end:
            raise MalformedMedia("HEVC sample: truncated NAL unit")
        nal = view[pos + length_size : nal_end]
        if (nal[0] >> 1) & 0x3F in _PARAMETER_SETS and bytes(nal) in known:
            dropped = True
        else:
            kept.append(view[pos:nal_end])
        pos = nal_end
    return b"".join(kept) if dropped else None
