"""Codec configuration records: AudioSpecificConfig, avcC + SPS, hvcC + SPS, av1C → sizes and codec strings."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediakit.cmaf import MalformedMedia, MediaError, UnsupportedMedia, aac, av1, h264, hevc
from mediakit.cmaf.tracks import audio_track, video_track
from tests.unit.media.support import AV1C_240P, AVCC_360P_MAIN, AVCC_720P_HIGH, AVCC_1080P_HIGH


def bits(text: str) -> bytes:
    """Bytes from a bit string (spaces ignored), zero-padded to whole bytes."""
    raw = text.replace(" ", "")
    raw += "0" * (-len(raw) % 8)
    return int(raw, 2).to_bytes(len(raw) // 8, "big")


class TestAudioSpecificConfig:
    """ISO/IEC 14496-3 §1.6.2.1, including the 5-byte OBS form."""

    def test_obs_five_byte_asc_is_48k_stereo_lc(self) -> None:
        """``11 90 56 e5 00``: LC 48 kHz stereo + SBR sync extension with sbrPresentFlag 0 → plain LC."""
        asc = aac.parse_asc(bytes.fromhex("119056e500"))
        assert (asc.object_type, asc.sample_rate, asc.channels, asc.frame_samples) == (2, 48000, 2, 1024)
        assert (asc.sbr, asc.ps, asc.output_rate, asc.codec) == (False, False, 48000, "mp4a.40.2")

    def test_two_byte_asc(self) -> None:
        """``12 10``: LC 44.1 kHz stereo."""
        asc = aac.parse_asc(b"\x12\x10")
        assert (asc.sample_rate, asc.channels, asc.codec) == (44100, 2, "mp4a.40.2")

    def test_explicit_he_aac(self) -> None:
        """AOT 5 first (hierarchical): core 24 kHz, output 48 kHz, codec mp4a.40.5."""
        asc = aac.parse_asc(bits("00101 0110 0010 0011 00010 000"))
        assert (asc.object_type, asc.sample_rate, asc.output_rate, asc.sbr, asc.codec) == (
            2,
            24000,
            48000,
            True,
            "mp4a.40.5",
        )

    def test_implicit_sbr_through_sync_extension(self) -> None:
        """LC 24 kHz + sync extension 0x2b7 with sbrPresentFlag 1 and extension rate 48 kHz → mp4a.40.5."""
        asc = aac.parse_asc(bits("00010 0110 0010 000 01010110111 00101 1 0011"))
        assert (asc.sample_rate, asc.output_rate, asc.sbr, asc.codec) == (24000, 48000, True, "mp4a.40.5")

    def test_parametric_stereo(self) -> None:
        """SBR plus the PS sync extension 0x548 → mp4a.40.29."""
        asc = aac.parse_asc(bits("00010 0110 0001 000 01010110111 00101 1 0011 10101001000 1"))
        assert (asc.sbr, asc.ps, asc.codec) == (True, True, "mp4a.40.29")

    def test_explicit_frequency_and_960_frames(self) -> None:
        """samplingFrequencyIndex 15 → 24-bit rate; frameLengthFlag → 960-sample frames."""
        asc = aac.parse_asc(bits("00010 1111 " + format(48000, "024b") + " 0001 100"))
        assert (asc.sample_rate, asc.channels, asc.frame_samples) == (48000, 1, 960)

    def test_channel_config_zero_uses_flv_hint(self) -> None:
        """channelConfiguration 0 defers to a PCE; the track takes the FLV SoundType hint."""
        assert aac.parse_asc(b"\x11\x80").channels == 0
        assert audio_track(b"\x11\x80", flv_channels=2).channels == 2

    def test_channel_config_7_is_eight_channels(self) -> None:
        """Table 1.19: channelConfiguration 7 is 7.1 (8 channels)."""
        assert aac.parse_asc(bits("00010 0011 0111 000")).channels == 8

    @pytest.mark.parametrize(
        "asc",
        [bits("11111 001010 0011 0010"), bits("01000 0011 0010 000")],
        ids=["usac", "celp"],
    )
    def test_non_aac_object_types_are_unsupported(self, asc: bytes) -> None:
        """USAC (AOT 42) and CELP (AOT 8) are not muxed."""
        with pytest.raises(UnsupportedMedia, match="object type"):
            aac.parse_asc(asc)

    @pytest.mark.parametrize("asc", [b"", b"\x11", bits("00010 1101 0010 000"), bits("00010 1111 0000")])
    def test_malformed(self, asc: bytes) -> None:
        """Too short, reserved frequency index 13, truncated explicit rate."""
        with pytest.raises(MalformedMedia):
            aac.parse_asc(asc)


class TestH264:
    """avcC (14496-15 §5.3.3.1) and SPS size/profile (H.264 §7.3.2.1.1)."""

    @pytest.mark.parametrize(
        ("record", "size", "profile", "codec"),
        [
            (AVCC_720P_HIGH, (1280, 720), 100, "avc1.64001f"),
            (AVCC_1080P_HIGH, (1920, 1080), 100, "avc1.64002a"),
            (AVCC_360P_MAIN, (640, 360), 77, "avc1.4d401e"),
        ],
        ids=["720p-high", "1080p-high-cropped", "360p-main"],
    )
    def test_sps_size_profile_and_codec(self, record: bytes, size: tuple[int, int], profile: int, codec: str) -> None:
        """x264's 1080p SPS codes 1088 lines and crops 8: the size is the cropped one."""
        config = h264.parse_avcc(record)
        sps = h264.parse_sps(config.sps[0])
        assert ((sps.width, sps.height), sps.profile_idc, sps.codec) == (size, profile, codec)
        assert config.length_size == 4 and len(config.pps) == 1
        track = video_track("avc1", record)
        assert (track.width, track.height, track.codec_string, track.record) == (*size, codec, record)

    def test_emulation_prevention_is_removed(self) -> None:
        """``00 00 03`` in the SPS is an escape, not data (H.264 §7.4.1.1)."""
        from mediakit.cmaf._bits import unescape_rbsp

        assert unescape_rbsp(b"\x01\x00\x00\x03\x01\x00\x00\x03") == b"\x01\x00\x00\x01\x00\x00"

    @pytest.mark.parametrize(
        "record",
        [
            b"\x02" + AVCC_720P_HIGH[1:],  # configurationVersion 2
            AVCC_720P_HIGH[:4] + b"\xfe" + AVCC_720P_HIGH[5:],  # lengthSizeMinusOne 2
            AVCC_720P_HIGH[:5] + b"\xe0" + AVCC_720P_HIGH[6:],  # no SPS
            AVCC_720P_HIGH[:20],  # truncated SPS
            AVCC_720P_HIGH[:8] + b"\x68" + AVCC_720P_HIGH[9:],  # first "SPS" is a PPS NAL
        ],
        ids=["version", "length-size", "no-sps", "truncated", "not-sps"],
    )
    def test_malformed_records(self, record: bytes) -> None:
        """Each broken record raises MalformedMedia (an UnsupportedMedia), so the caller can fall back."""
        with pytest.raises(MalformedMedia):
            video_track("avc1", record)


class TestHevc:
    """hvcC (14496-15 §8.3.3.1), codec string (Annex E), SPS size (H.265 §7.3.2.2)."""

    def test_fixture_record(self, hvcc: bytes) -> None:
        """x265 Main@L2 320x240: ``hvc1.1.6.L60.90`` (compat flags 0x60000000 bit-reversed = 6)."""
        config = hevc.parse_hvcc(hvcc)
        assert config.codec == "hvc1.1.6.L60.90"
        assert hevc.sps_size(config.arrays[hevc.NAL_SPS][0]) == (320, 240)
        assert len(config.parameter_sets) == 3

    def test_codec_string_tier_space_and_trailing_zero_bytes(self, hvcc: bytes) -> None:
        """High tier → ``H``; profile space 1 → ``A``; trailing zero constraint bytes are dropped."""
        config = hevc.parse_hvcc(hvcc)
        changed = replace(
            config, profile_space=1, tier=1, level_idc=153, constraint_bytes=bytes([0xB0, 0, 0x01, 0, 0, 0])
        )
        assert changed.codec == "hvc1.A1.6.H153.B0.0.1"

    def test_hvc1_record_sets_array_completeness(self, hvcc: bytes) -> None:
        """For ``hvc1`` the VPS/SPS/PPS arrays get array_completeness = 1, other arrays (SEI) are untouched."""
        record = hevc.hvc1_record(hevc.parse_hvcc(hvcc))
        pos, completeness = 23, {}
        for _ in range(record[22]):
            completeness[record[pos] & 0x3F] = record[pos] >> 7
            count = int.from_bytes(record[pos + 1 : pos + 3], "big")
            pos += 3
            for _ in range(count):
                pos += 2 + int.from_bytes(record[pos : pos + 2], "big")
        assert completeness == {32: 1, 33: 1, 34: 1, 39: 0}
        assert len(record) == len(hvcc)

    def test_strip_in_band_parameter_sets(self, hvcc: bytes) -> None:
        """In-band VPS/SPS/PPS equal to the record's are dropped; a different one and slices are kept."""
        config = hevc.parse_hvcc(hvcc)
        vps = config.arrays[hevc.NAL_VPS][0]
        other_pps = bytes([hevc.NAL_PPS << 1, 1, 0xC0, 0xFF])
        idr = bytes([19 << 1, 1, 0xAF, 0x00])

        def nal(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        sample = nal(vps) + nal(other_pps) + nal(idr)
        assert hevc.strip_parameter_sets(sample, 4, config.parameter_sets) == nal(other_pps) + nal(idr)
        assert hevc.strip_parameter_sets(nal(idr), 4, config.parameter_sets) is None
        with pytest.raises(MalformedMedia):
            hevc.strip_parameter_sets(nal(idr)[:-1], 4, config.parameter_sets)

    def test_unparseable_sps_falls_back_to_metadata(self, hvcc: bytes) -> None:
        """A record whose SPS does not parse still makes a track; the size comes from onMetaData later."""
        config = hevc.parse_hvcc(hvcc)
        sps = config.arrays[hevc.NAL_SPS][0]
        broken = hvcc.replace(sps, sps[:6] + bytes(len(sps) - 6))
        track = video_track("hvc1", broken)
        assert (track.width, track.height) == (None, None)
        assert (track.with_fallback_size(1280, 720).width, track.with_fallback_size(1280, 720).height) == (1280, 720)

    @pytest.mark.parametrize("cut", [0, 10, 22, 30])
    def test_truncated_record(self, hvcc: bytes, cut: int) -> None:
        """Truncated anywhere in the header or the arrays → MalformedMedia."""
        with pytest.raises(MalformedMedia):
            hevc.parse_hvcc(hvcc[:cut])


class TestAv1:
    """av1C (AV1-ISOBMFF §2.3) and the sequence header (AV1 §5.5)."""

    def test_fixture_record(self) -> None:
        """SVT-AV1 320x240 8-bit main profile level 2.0 → ``av01.0.00M.08``, size from the sequence header."""
        config = av1.parse_av1c(AV1C_240P)
        assert config.codec == "av01.0.00M.08"
        assert config.sequence_header is not None
        assert av1.sequence_header_size(config.sequence_header) == (320, 240)
        assert (video_track("av01", AV1C_240P).width, video_track("av01", AV1C_240P).height) == (320, 240)

    def test_ten_bit_high_tier(self) -> None:
        """high_bitdepth → 10 bits, seq_tier_0 1 → ``H``; no configOBUs → no size."""
        config = av1.parse_av1c(bytes([0x81, 0x08 | 0x00, 0x80 | 0x40, 0x00]))
        assert (config.codec, config.sequence_header) == ("av01.0.08H.10", None)

    def test_temporal_delimiter_is_stripped(self) -> None:
        """A leading OBU_TEMPORAL_DELIMITER (type 2, with size field, size 0) is removed from samples."""
        assert bytes(av1.strip_temporal_delimiter(b"\x12\x00\x32\x01\xff")) == b"\x32\x01\xff"
        assert bytes(av1.strip_temporal_delimiter(b"\x32\x01\xff")) == b"\x32\x01\xff"

    def test_bad_marker(self) -> None:
        """marker/version must be 1/1."""
        with pytest.raises(MalformedMedia):
            av1.parse_av1c(b"\x01\x00\x0c\x00")


@settings(max_examples=200, deadline=None)
@given(codec=st.sampled_from(["avc1", "hvc1", "av01"]), record=st.binary(max_size=60))
def test_fuzz_video_records_raise_only_media_errors(codec: str, record: bytes) -> None:
    """Any record either parses or raises a MediaError."""
    with contextlib.suppress(MediaError):
        video_track(codec, record)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12))
def test_fuzz_asc_raises_only_media_errors(config: bytes) -> None:
    """Any AudioSpecificConfig either parses or raises a MediaError."""
    with contextlib.suppress(MediaError):
        audio_track(config, 2)
