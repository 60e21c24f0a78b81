"""FLV / Enhanced RTMP tag bodies → typed configs and frames; unsupported and malformed input is refused."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediakit.cmaf import MalformedMedia, MediaError, MediaUsageError, UnsupportedMedia, flv
from mediakit.cmaf.flv import AudioConfig, AudioFrame, Ignored, VideoConfig, VideoFrame, parse_audio, parse_video
from tests.unit.media.support import read_flv

AVCC = bytes.fromhex("0164001fffe1001967640020acd9405005bb0110000003001000000303c0f1831960010006")


class TestLegacyVideo:
    """FLV 10.1 E.4.3: FrameType | CodecID, AVCPacketType, SI24 CompositionTime."""

    def test_avc_sequence_header(self) -> None:
        """AVCPacketType 0 carries the AVCDecoderConfigurationRecord after the 5-byte header."""
        tag = parse_video(b"\x17\x00\x00\x00\x00" + AVCC)
        assert tag == VideoConfig(codec="avc1", record=AVCC)

    def test_avc_nalu_keyframe_with_positive_cts(self) -> None:
        """FrameType 1 is a keyframe; CompositionTime 0x000043 = 67 ms."""
        tag = parse_video(b"\x17\x01\x00\x00\x43nal")
        assert isinstance(tag, VideoFrame)
        assert (tag.codec, tag.keyframe, tag.cts, bytes(tag.data)) == ("avc1", True, 67, b"nal")

    def test_cts_is_signed_24_bit(self) -> None:
        """0xFFFFFF is -1, 0x800000 is -8388608 (SI24)."""
        assert parse_video(b"\x27\x01\xff\xff\xffx").cts == -1  # type: ignore[union-attr]
        assert parse_video(b"\x27\x01\x80\x00\x00x").cts == -(1 << 23)  # type: ignore[union-attr]

    def test_inter_frame_is_not_key(self) -> None:
        """FrameType 2 (inter) and 3 (disposable) are not keyframes; 4 (generated key) is."""
        assert parse_video(b"\x27\x01\x00\x00\x00x").keyframe is False  # type: ignore[union-attr]
        assert parse_video(b"\x37\x01\x00\x00\x00x").keyframe is False  # type: ignore[union-attr]
        assert parse_video(b"\x47\x01\x00\x00\x00x").keyframe is True  # type: ignore[union-attr]

    def test_end_of_sequence_and_command_frames_are_ignored(self) -> None:
        """AVCPacketType 2 and FrameType 5 carry no video."""
        assert isinstance(parse_video(b"\x17\x02\x00\x00\x00"), Ignored)
        assert isinstance(parse_video(b"\x57\x00"), Ignored)

    def test_legacy_hevc_codec_id_12(self) -> None:
        """The de-facto CodecID 12 uses the AVC packet layout."""
        tag = parse_video(b"\x1c\x01\x00\x00\x21x")
        assert isinstance(tag, VideoFrame) and (tag.codec, tag.cts) == ("hvc1", 33)

    @pytest.mark.parametrize("codec_id", [2, 3, 4, 5, 6, 8, 13, 15])
    def test_other_legacy_codecs_are_unsupported(self, codec_id: int) -> None:
        """H.263, screen video, VP6 and reserved ids: UnsupportedMedia, so the caller can fall back to ffmpeg."""
        with pytest.raises(UnsupportedMedia, match="not muxed"):
            parse_video(bytes([0x10 | codec_id, 0, 0, 0, 0]))

    @pytest.mark.parametrize("body", [b"", b"\x17", b"\x17\x01\x00\x00", b"\x17\x07\x00\x00\x00"])
    def test_truncated_or_reserved_is_malformed(self, body: bytes) -> None:
        """Too short for the AVC header, or a reserved AVCPacketType."""
        with pytest.raises(MalformedMedia):
            parse_video(body)


class TestEnhancedVideo:
    """Enhanced RTMP ExVideoTagHeader: IsExHeader | FrameType UB[3] | PacketType UB[4], FourCC."""

    def test_hevc_sequence_start(self) -> None:
        """PacketTypeSequenceStart carries the HEVCDecoderConfigurationRecord."""
        assert parse_video(b"\x90hvc1REC") == VideoConfig(codec="hvc1", record=b"REC")

    def test_hevc_coded_frames_has_cts(self) -> None:
        """PacketTypeCodedFrames for hvc1 is followed by SI24 CompositionTime."""
        tag = parse_video(b"\x91hvc1\x00\x00\x64data")
        assert isinstance(tag, VideoFrame)
        assert (tag.keyframe, tag.cts, bytes(tag.data)) == (True, 100, b"data")

    def test_coded_frames_x_implies_zero_cts(self) -> None:
        """PacketTypeCodedFramesX: "CompositionTime Offset is implied to equal zero"."""
        tag = parse_video(b"\xa3hvc1data")
        assert isinstance(tag, VideoFrame)
        assert (tag.keyframe, tag.cts, bytes(tag.data)) == (False, 0, b"data")

    def test_av1_coded_frames_have_no_cts(self) -> None:
        """For av01 the body after the FourCC is OBUs straight away."""
        tag = parse_video(b"\x91av01\x12\x00obu")
        assert isinstance(tag, VideoFrame) and (tag.cts, bytes(tag.data)) == (0, b"\x12\x00obu")

    def test_metadata_and_sequence_end_are_ignored(self) -> None:
        """PacketTypeMetadata (HDR colorInfo) and PacketTypeSequenceEnd carry no frames."""
        assert isinstance(parse_video(b"\x94hvc1\x02\x00\x09colorInfo"), Ignored)
        assert isinstance(parse_video(b"\x92hvc1"), Ignored)

    @pytest.mark.parametrize(
        "body",
        [b"\x91vp09data", b"\x95av01desc", b"\x96\x00hvc1", b"\x97\x00", b"\x9fhvc1"],
        ids=["vp09", "mpeg2ts-sequence-start", "multitrack", "modex", "reserved"],
    )
    def test_unsupported_features_fail_gracefully(self, body: bytes) -> None:
        """ "logic must gracefully fail if at any point important signaling/flags are not understood"."""
        with pytest.raises(UnsupportedMedia):
            parse_video(body)


class TestAudio:
    """FLV 10.1 E.4.2 AUDIODATA and Enhanced RTMP v2 ExAudioTagHeader."""

    def test_aac_sequence_header_and_frame(self) -> None:
        """0xAF = AAC 44 kHz 16-bit stereo header (lies for 48 kHz); AACPacketType 0 = ASC, 1 = raw."""
        assert parse_audio(b"\xaf\x00\x11\x90") == AudioConfig(codec="mp4a", config=b"\x11\x90", flv_channels=2)
        frame = parse_audio(b"\xaf\x01raw")
        assert isinstance(frame, AudioFrame) and bytes(frame.data) == b"raw"

    def test_mono_hint(self) -> None:
        """SoundType 0 → channel hint 1 (used only when the ASC defers to a PCE)."""
        assert parse_audio(b"\xae\x00\x11\x88").flv_channels == 1  # type: ignore[union-attr]

    def test_enhanced_mp4a(self) -> None:
        """SoundFormat 9 (ExHeader), AudioPacketType, FourCC mp4a."""
        assert parse_audio(b"\x90mp4a\x11\x90") == AudioConfig(codec="mp4a", config=b"\x11\x90", flv_channels=2)
        assert bytes(parse_audio(b"\x91mp4araw").data) == b"raw"  # type: ignore[union-attr]
        assert isinstance(parse_audio(b"\x92mp4a"), Ignored)

    @pytest.mark.parametrize(
        ("body", "name"),
        [(b"\x2f\xff\xfb", "MP3"), (b"\xb6\x00", "Speex"), (b"\x32\x00", "PCM"), (b"\x72\x00", "G.711")],
    )
    def test_other_sound_formats_are_unsupported(self, body: bytes, name: str) -> None:
        """MP3, Speex, PCM, G.711: UnsupportedMedia naming the format."""
        with pytest.raises(UnsupportedMedia, match=name):
            parse_audio(body)

    def test_enhanced_opus_is_unsupported(self) -> None:
        """Only the mp4a FourCC is muxed."""
        with pytest.raises(UnsupportedMedia, match="Opus"):
            parse_audio(b"\x91Opusdata")

    @pytest.mark.parametrize("body", [b"", b"\xaf", b"\xaf\x02x", b"\x90mp4"])
    def test_truncated_or_reserved_is_malformed(self, body: bytes) -> None:
        """Missing AACPacketType, reserved AACPacketType, truncated FourCC."""
        with pytest.raises(MalformedMedia):
            parse_audio(body)


def test_every_prefix_of_real_tags_parses_or_raises_media_error(flv_720p30: Path) -> None:
    """Byte-by-byte growth of real tag bodies: each prefix parses or raises MediaError, never anything else."""
    tags = read_flv(flv_720p30)
    samples = [t for t in tags if t.kind == 9][:3] + [t for t in tags if t.kind == 8][:3]
    for tag in samples:
        parse = parse_video if tag.kind == 9 else parse_audio
        for end in range(min(len(tag.body), 64) + 1):
            with contextlib.suppress(MediaError):
                parse(tag.body[:end])
        # Trailing data is part of the payload (the RTMP message length frames the body), never an error.
        parse(tag.body + b"\x00\x01")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_parsers_raise_only_media_errors(body: bytes) -> None:
    """h11's fuzz invariant: any input either parses or raises a MediaError."""
    for parse in (parse_video, parse_audio):
        with contextlib.suppress(MediaError):
            parse(body)


def test_read_file_gives_every_tag_and_refuses_what_is_no_flv() -> None:
    """The FLV container reader replays files as an RTMP publisher sends them; a truncated last tag is left out."""
    from mediakit.cmaf import flv

    tag = bytes([9]) + (3).to_bytes(3, "big") + (1234).to_bytes(3, "big") + b"\x00" + b"\x00\x00\x00" + b"abc"
    data = b"FLV\x01\x05" + (9).to_bytes(4, "big") + b"\x00\x00\x00\x00" + tag + (14).to_bytes(4, "big")
    assert flv.read_file(data) == [flv.FileTag(9, 1234, b"abc")]
    assert flv.read_file(data + tag[:-1]) == [flv.FileTag(9, 1234, b"abc")]
    with pytest.raises(MalformedMedia):
        flv.read_file(b"<html>")


class TestFlvReader:
    """The incremental FLV container reader (ffmpeg's FLV on a pipe): h11's three ways, plus end of stream."""

    def test_whole_stream_gives_the_file_readers_tags(self, flv_audio: Path) -> None:
        """One feed of a whole ffmpeg FLV gives exactly what :func:`read_file` gives, and the header flags."""
        data = flv_audio.read_bytes()
        reader = flv.FlvReader()
        tags = reader.feed(data)
        assert tags == flv.read_file(data) and len(tags) > 100
        assert (reader.has_audio, reader.has_video) == (True, False)
        assert reader.feed(b"") == []

    def test_byte_by_byte_gives_each_tag_once_its_body_is_in(self, flv_audio: Path) -> None:
        """Fed one byte at a time, every tag comes out exactly when its last body byte arrives."""
        data = flv_audio.read_bytes()[:6000]
        expected = flv.read_file(data)
        reader, tags = flv.FlvReader(), []
        for i in range(len(data)):
            tags += reader.feed(data[i : i + 1])
        assert tags == expected

    def test_trailing_partial_tag_waits_and_ends_as_an_error(self) -> None:
        """A tag cut short is kept back (not returned); ending the stream there is MalformedMedia."""
        tag = bytes([8]) + (2).to_bytes(3, "big") + (70000).to_bytes(3, "big") + b"\x01" + bytes(3) + b"\xaf\x01"
        header = b"FLV\x01\x04" + (9).to_bytes(4, "big") + bytes(4)
        reader = flv.FlvReader()
        assert reader.feed(header + tag + (13).to_bytes(4, "big") + tag[:-1]) == [
            flv.FileTag(8, 70000 | 1 << 24, b"\xaf\x01")
        ]
        with pytest.raises(MalformedMedia, match="ended inside a tag"):
            reader.feed(b"")

    def test_end_after_a_previous_tag_size_or_nothing_is_clean(self) -> None:
        """The stream may end after a tag's PreviousTagSize (or part of it), or before anything was written."""
        assert flv.FlvReader().feed(b"") == []
        reader = flv.FlvReader()
        reader.feed(b"FLV\x01\x05" + (9).to_bytes(4, "big") + b"\x00\x00")
        assert reader.feed(b"") == []

    @pytest.mark.parametrize("data", [b"<ht", b"FLX\x01", b"FLV\x01\x05\x00\x00\x00\x05"])
    def test_what_is_no_flv_is_refused_early(self, data: bytes) -> None:
        """A wrong signature is seen at its first bytes; a DataOffset inside the header is refused."""
        with pytest.raises(MalformedMedia):
            flv.FlvReader().feed(data)

    def test_no_feeding_after_the_end(self) -> None:
        """``b""`` ends the stream for good."""
        reader = flv.FlvReader()
        reader.feed(b"")
        with pytest.raises(MediaUsageError):
            reader.feed(b"FLV")
