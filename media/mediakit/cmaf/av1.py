"""AV1: AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3), sequence header size, codec string, sample clean-up.

Rules:
- The ``av1C`` record from the Enhanced RTMP SequenceStart goes verbatim into the ``av01`` sample entry.
- Codec string (AV1-ISOBMFF "Codecs Parameter String"): ``av01.<profile>.<level:02d><M|H>.<bitdepth:02d>``,
  the short form, e.g. ``av01.0.04M.08``.
- Width/height come from the sequence header OBU in ``configOBUs`` (AV1 spec §5.5: ``max_frame_width_minus_1``);
  when the record carries no sequence header the caller falls back to ``onMetaData``.
- Samples: Enhanced RTMP carries one temporal unit of low-overhead OBUs per CodedFrames packet. AV1-ISOBMFF §2.4
  says temporal delimiter OBUs SHOULD NOT be in samples, so a leading one is removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bits import BitReader, read_leb128
from .errors import MalformedMedia

_OBU_SEQUENCE_HEADER = 1
_OBU_TEMPORAL_DELIMITER = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class Av1Config:
    """A parsed AV1CodecConfigurationRecord."""

    raw: bytes
    profile: int
    level_idx: int
    tier: int
    bit_depth: int
    #: The sequence header OBU payload from configOBUs, if present.
    sequence_header: bytes | None

    @property
    def codec(self) -> str:
        """Codecs parameter string, short form."""
        return f"av01.{self.profile}.{self.level_idx:02d}{'MH'[self.tier]}.{self.bit_depth:02d}"


def parse_av1c(record: bytes) -> Av1Config:
    """Parse an AV1CodecConfigurationRecord (4 fixed bytes + configOBUs).

    Raises:
        MalformedMedia: wrong marker/version or truncated.
    """
    if len(record) < 4 or record[0] != 0x81:
        raise MalformedMedia("av1C: marker/version is not 1/1")
    high_bitdepth, twelve_bit = record[2] >> 6 & 1, record[2] >> 5 & 1
    return Av1Config(
        raw=bytes(record),
        profile=record[1] >> 5,
        level_idx=record[1] & 0x1F,
        tier=record[2] >> 7,
        bit_depth=12 if twelve_bit else 10 if high_bitdepth else 8,
        sequence_header=_find_obu(record[4:], _OBU_SEQUENCE_HEADER),
    )


def _find_obu(data: bytes, wanted: int) -> bytes | None:
    pos = 0
    while pos < len(data):
        header = data[pos]
        kind, has_extension, has_size = header >> 3 & 0x0F, header >> 2 & 1, header >> 1 & 1
        pos += 1 + has_extension
        if has_size:
            size, pos = read_leb128(data, pos)
        else:
            size = len(data) - pos
        if pos + size > len(data):
            raise MalformedMedia("av1C: truncated OBU in configOBUs")
        if kind == wanted:
            return data[pos : pos + size]
        pos += size
    return None


def sequence_header_size(payload: bytes) -> tuple[int, int]:
    """``(max_frame_width, max_frame_height)`` from a sequence header OBU payload (AV1 §5.5.1).

    Raises:
        MalformedMedia: truncated.
    """
    r = BitReader(payload, "AV1 sequence header")
    r.skip(3)  # seq_profile
    r.skip(1)  # still_picture
    if r.flag():  # reduced_still_picture_header
        r.skip(5)  # seq_level_idx[0]
    else:
        decoder_model_info_present = False
        buffer_delay_length = 0
        if r.flag():  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.flag():  # equal_picture_interval
                r.uvlc()
            decoder_model_info_present = r.flag()
            if decoder_model_info_present:
                buffer_delay_length = r.u(5) + 1
                r.skip(32 + 5 + 5)  # num_units_in_decoding_tick, buffer_removal_time_length, ...
        initial_display_delay_present = r.flag()
        for _ in range(r.u(5) + 1):  # operating_points_cnt_minus_1
            r.skip(12)  # operating_point_idc
            if r.u(5) > 7:  # seq_level_idx
                r.skip(1)  # seq_tier
            if decoder_model_info_present and r.flag():
                r.skip(2 * buffer_delay_length + 1)
            if initial_display_delay_present and r.flag():
                r.skip(4)
    width_bits, height_bits = r.u(4) + 1, r.u(4) + 1
    return r.u(width_bits) + 1, r.u(height_bits) + 1


def strip_temporal_delimiter(sample: bytes | memoryview) -> bytes | memoryview:
    """Drop a leading temporal delimiter OBU (it must carry ``obu_has_size_field`` to be skippable)."""
    if len(sample) >= 2 and sample[0] >> 3 & 0x0F == _OBU_TEMPORAL_DELIMITER and sample[0] & 0x02:
        size, pos = read_leb128(sample, 1 + (sample[0] >> 2 & 1))
        return sample[pos + size :]
    return sample
