"""Codecs of a browser recording from the head of its WebM/Matroska stream: whole, byte by byte, with trailing
data (h11's three ways), and refusals."""

from __future__ import annotations

import pytest

from ingest_node.publishers.webm_tracks import MAX_HEADER_BYTES, NotMatroska, RecordedTracks, read_tracks
from tests.unit.ingest.capture_media import FFMPEG, record

requires_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
H264_OPUS = RecordedTracks(doc_type="matroska", video="V_MPEG4/ISO/AVC", audio="A_OPUS")
VP8_OPUS = RecordedTracks(doc_type="webm", video="V_VP8", audio="A_OPUS")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    folder = tmp_path_factory.mktemp("webm")
    return {video: record(folder, video, 1.0).read_bytes() for video in ("h264", "vp8")}


@requires_ffmpeg
@pytest.mark.parametrize(("video", "expected"), [("h264", H264_OPUS), ("vp8", VP8_OPUS)])
def test_three_ways(recordings: dict[str, bytes], video: str, expected: RecordedTracks) -> None:
    """The whole recording, a prefix grown one byte at a time (``None`` until Tracks ends), and the header
    followed by media all give the same answer."""
    data = recordings[video]
    assert read_tracks(data) == expected
    grown = next(n for n in range(1, 4096) if read_tracks(data[:n]) is not None)
    assert all(read_tracks(data[:n]) is None for n in range(grown))
    assert read_tracks(data[:grown]) == expected == read_tracks(data[: grown + 1000])
    assert expected.copy_video is (video == "h264") and not expected.copy_audio


def test_aac_is_copied() -> None:
    """A recording that already has AAC keeps it."""
    assert RecordedTracks(doc_type="matroska", video=None, audio="A_AAC/MPEG4/LC").copy_audio


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html><body>", "no EBML header"),
        (b"\x00\x00\x00\x18ftypmp42", "no EBML header"),  # an MP4 (Chromium's other MediaRecorder format)
        (b"\x1a\x45\xdf\xa3\x84\x42\x82\x81x" + b"\x18\x53\x80\x67\x80", "DocType"),
        (b"\x1a\x45\xdf\xa3\x80\x1f\x43\xb6\x75\x80", "no Segment"),
        (b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\xff\x1f\x43\xb6\x75\x80", "Cluster"),
        (b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\xff\x15\x49\xa9\x66\xff", "unknown size"),
        (b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\xff\x16\x54\xae\x6b\x80", "no audio or video track"),
        (b"\x1a\x45\xdf\xa3\x00", "variable-size integer"),
    ],
)
def test_what_is_no_recording_is_refused(data: bytes, message: str) -> None:
    """Not EBML, not WebM/Matroska, media before Tracks, no usable track, broken integers."""
    with pytest.raises(NotMatroska, match=message):
        read_tracks(data)


def test_a_header_without_tracks_is_bounded() -> None:
    """Void elements forever: refused once the head passes :data:`MAX_HEADER_BYTES`."""
    head = b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\xff"
    void = b"\xec\x43\xe8" + b"\x00" * 1000  # a Void element (0xEC) of 1000 bytes (2-byte size 0x43E8)
    assert read_tracks(head + void * 8) is None
    with pytest.raises(NotMatroska, match="no Tracks"):
        read_tracks(head + void * (MAX_HEADER_BYTES // len(void) + 1))
