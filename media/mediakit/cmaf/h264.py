"""H.264: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) and SPS (ITU-T H.264 §7.3.2.1.1).

Rules:
- The record from the FLV AVC sequence header goes verbatim into the ``avcC`` box: samples keep the NAL length
  size the publisher chose, so record and samples always agree.
- The codec string is ``avc1.PPCCLL`` from the SPS bytes 1-3 (profile_idc, constraint flags, level_idc),
  RFC 6381 §3.3, lower-case hex as hls.js and Chromium print it.
- Width/height come from the SPS: macroblock counts minus the frame cropping rectangle, whose units depend on
  chroma_format_idc and frame_mbs_only_flag (H.264 §7.4.2.1.1, equations 7-19 to 7-22).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bits import BitReader, unescape_rbsp
from .errors import MalformedMedia

#: profile_idc values whose SPS carries chroma_format_idc and bit depths (H.264 §7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_NAL_SPS = 7


@dataclass(frozen=True, kw_only=True, slots=True)
class AvcConfig:
    """A parsed AVCDecoderConfigurationRecord."""

    raw: bytes
    #: Bytes per NAL unit length prefix in samples (1, 2 or 4).
    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class H264Sps:
    """The fields of a sequence parameter set that the muxer needs."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    width: int
    height: int

    @property
    def codec(self) -> str:
        """RFC 6381 codec string, e.g. ``avc1.64001f`` for High@3.1."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


def parse_avcc(record: bytes) -> AvcConfig:
    """Parse an AVCDecoderConfigurationRecord.

    Raises:
        MalformedMedia: wrong version, truncated, no SPS, or an invalid NAL length size.
    """
    if len(record) < 7 or record[0] != 1:
        raise MalformedMedia("avcC: not an AVCDecoderConfigurationRecord version 1")
    length_size = (record[4] & 0x03) + 1
    if length_size == 3:
        raise MalformedMedia("avcC: lengthSizeMinusOne = 2 is not allowed")
    sps, pos = _nal_list(record, 6, record[5] & 0x1F)
    if not sps:
        raise MalformedMedia("avcC: no sequence parameter set")
    if pos >= len(record):
        raise MalformedMedia("avcC: truncated before numOfPictureParameterSets")
    pps, _ = _nal_list(record, pos + 1, record[pos])
    return AvcConfig(raw=bytes(record), length_size=length_size, sps=tuple(sps), pps=tuple(pps))


def _nal_list(record: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    nals = []
    for _ in range(count):
        if pos + 2 > len(record):
            raise MalformedMedia("avcC: truncated parameter set length")
        size = int.from_bytes(record[pos : pos + 2], "big")
        pos += 2
        if size == 0 or pos + size > len(record):
            raise MalformedMedia("avcC: truncated parameter set")
        nals.append(record[pos : pos + size])
        pos += size
    return nals, pos


def parse_sps(nal: bytes) -> H264Sps:
    """Parse the start of an H.264 SPS NAL unit (header byte included) up to the cropping rectangle.

    Raises:
        MalformedMedia: not an SPS, or truncated/invalid fields.
    """
    if len(nal) < 4 or nal[0] & 0x1F != _NAL_SPS:
        raise MalformedMedia("H.264 SPS: not a sequence parameter set NAL unit")
    r = BitReader(unescape_rbsp(nal[1:]), "H.264 SPS")
    profile_idc, constraint_flags, level_idc = r.u(8), r.u(8), r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise MalformedMedia(f"H.264 SPS: chroma_format_idc {chroma_format_idc}")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = r.ue()
    if pic_order_cnt_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > 255:
            raise MalformedMedia("H.264 SPS: num_ref_frames_in_pic_order_cnt_cycle > 255")
        for _ in range(cycle):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    left = right = top = bottom = 0
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
    # §7.4.2.1.1: CropUnitX/CropUnitY from ChromaArrayType (0 when separate_colour_plane_flag is set).
    if separate_colour_plane or chroma_format_idc == 0:
        unit_x, unit_y = 1, 2 - frame_mbs_only
    else:
        sub_width = 1 if chroma_format_idc == 3 else 2
        sub_height = 2 if chroma_format_idc == 1 else 1
        unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (left + right)
    height = (2 - frame_mbs_only) * height_map_units * 16 - unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise MalformedMedia(f"H.264 SPS: cropping leaves {width}x{height}")
    return H264Sps(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        chroma_format_idc=chroma_format_idc,
        width=width,
        height=height,
    )


def _skip_scaling_list(r: BitReader, size: int) -> None:
    """scaling_list() (H.264 §7.3.2.1.1.1): read the deltas only to get past them."""
    last, next_scale = 8, 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + r.se() + 256) % 256
        last = next_scale or last
