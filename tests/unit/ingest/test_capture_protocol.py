"""The browser go-live protocol, sans-IO: what each message does in each state, and every refusal's code."""

from __future__ import annotations

import json

import pytest

from ingest_node.publishers.capture_protocol import (
    MAX_CHUNK_BYTES,
    MAX_TEXT_BYTES,
    CaptureError,
    CaptureProtocol,
    CaptureState,
    CaptureStats,
    ChunkReceived,
    ErrorCode,
    StartRequested,
    StopRequested,
    stopped_message,
)

KEY = "live_abcdefghijkl_" + "s" * 43


def _start(**config: object) -> str:
    return json.dumps({"type": "start_native_capture", "config": {"streamKey": KEY, **config}})


def _capturing() -> CaptureProtocol:
    protocol = CaptureProtocol()
    protocol.receive_text(_start())
    protocol.accept(playback_id="pb1", session_id="s1")
    return protocol


def _refused(call: object, *args: object) -> CaptureError:
    with pytest.raises(CaptureError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


class TestStart:
    """``start_native_capture`` is the first message, exactly once, with a usable config."""

    def test_start_gives_the_request_with_defaults_and_ignores_unknown_fields(self) -> None:
        """The API's capture config can be sent back as is: unknown fields are ignored, the node's own have
        the API's defaults."""
        protocol = CaptureProtocol()
        event = protocol.receive_text(_start(width=1280, recommendedMimeTypes=["video/webm"], timesliceMs=250))
        assert isinstance(event, StartRequested) and protocol.state is CaptureState.STARTING
        request = event.request
        assert request.stream_key.get_secret_value() == KEY and KEY not in repr(request)
        assert (request.video_bitrate_kbps, request.audio_bitrate_kbps, request.keyframe_interval_seconds) == (
            2500,
            128,
            1,
        )

    def test_accept_answers_capture_started(self) -> None:
        """Accepting moves to CAPTURING and returns ``capture_started`` with the ids (never the key)."""
        protocol = CaptureProtocol()
        protocol.receive_text(_start(mimeType="video/x-matroska;codecs=avc1,opus"))
        reply = json.loads(protocol.accept(playback_id="pb1", session_id="s1"))
        assert reply == {"type": "capture_started", "playbackId": "pb1", "sessionId": "s1"}
        assert protocol.state is CaptureState.CAPTURING

    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("not json", ErrorCode.INVALID_MESSAGE),
            ("[1, 2]", ErrorCode.INVALID_MESSAGE),
            ('{"config": {}}', ErrorCode.INVALID_MESSAGE),
            ('{"type": "subscribe"}', ErrorCode.INVALID_MESSAGE),
            ('{"type": "stop_capture"}', ErrorCode.INVALID_MESSAGE),
            ('{"type": "start_native_capture"}', ErrorCode.INVALID_CONFIG),
            ('{"type": "start_native_capture", "config": "live_x"}', ErrorCode.INVALID_CONFIG),
            ('{"type": "start_native_capture", "config": {}}', ErrorCode.INVALID_CONFIG),
            ('{"type": "start_native_capture", "config": {"streamKey": 7}}', ErrorCode.INVALID_CONFIG),
            (_start(videoBitrateKbps=100), ErrorCode.INVALID_CONFIG),
            (_start(keyframeIntervalSeconds="1"), ErrorCode.INVALID_CONFIG),
            (" " * (MAX_TEXT_BYTES + 1), ErrorCode.MESSAGE_TOO_LARGE),
        ],
    )
    def test_a_bad_first_message_is_refused(self, text: str, code: ErrorCode) -> None:
        """Not JSON, not an object, an unknown type, a stop before the start, or a bad config."""
        assert _refused(CaptureProtocol().receive_text, text).code is code

    def test_config_errors_name_fields_never_values(self) -> None:
        """A too-long key is reported by field name; its value is in neither the message nor the exception."""
        error = _refused(CaptureProtocol().receive_text, json.dumps({"type": "start_native_capture", "config": {
            "streamKey": KEY * 10}}))  # fmt: skip
        assert "streamKey" in error.detail and KEY not in error.message() and KEY not in str(error)
        assert error.__cause__ is None and error.__suppress_context__

    def test_media_before_the_start_is_refused(self) -> None:
        """Binary before ``start_native_capture``, or while it is being decided: ``invalid_message``."""
        assert _refused(CaptureProtocol().receive_binary, b"\x1a\x45\xdf\xa3").code is ErrorCode.INVALID_MESSAGE
        protocol = CaptureProtocol()
        protocol.receive_text(_start())
        assert _refused(protocol.receive_binary, b"x").code is ErrorCode.INVALID_MESSAGE

    def test_a_second_start_is_refused(self) -> None:
        """One start per connection."""
        assert _refused(_capturing().receive_text, _start()).code is ErrorCode.INVALID_MESSAGE


class TestCapturing:
    """Media chunks, then ``stop_capture``."""

    def test_chunks_then_stop(self) -> None:
        """Chunks come out as they went in; ``stop_capture`` ends the protocol; nothing is accepted after it."""
        protocol = _capturing()
        assert protocol.receive_binary(b"abc") == ChunkReceived(data=b"abc")
        assert isinstance(protocol.receive_text('{"type": "stop_capture"}'), StopRequested)
        assert protocol.state is CaptureState.DONE
        assert _refused(protocol.receive_binary, b"late").code is ErrorCode.INVALID_MESSAGE
        assert json.loads(stopped_message()) == {"type": "capture_stopped"}

    def test_an_oversized_chunk_is_refused(self) -> None:
        """Chunks are bounded (checked before anything else is done with them)."""
        protocol = _capturing()
        assert len(protocol.receive_binary(b"\0" * MAX_CHUNK_BYTES).data) == MAX_CHUNK_BYTES
        error = _refused(protocol.receive_binary, b"\0" * (MAX_CHUNK_BYTES + 1))
        assert error.code is ErrorCode.MESSAGE_TOO_LARGE and error.close_code == 4413


class TestErrors:
    """Every code has a close code in the private 4000-4999 range."""

    @pytest.mark.parametrize("code", list(ErrorCode))
    def test_every_code_closes_with_a_4xxx_code(self, code: ErrorCode) -> None:
        """The ``error`` message carries the code and the detail."""
        error = CaptureError(code, "why")
        assert 4000 <= error.close_code <= 4999
        assert json.loads(error.message()) == {"type": "error", "code": str(code), "message": "why"}

    def test_reject_ends_the_protocol(self) -> None:
        """A refused start leaves nothing to accept."""
        protocol = CaptureProtocol()
        protocol.receive_text(_start())
        protocol.reject(CaptureError(ErrorCode.UNAUTHORIZED, "stream key refused"))
        assert protocol.state is CaptureState.DONE
        with pytest.raises(RuntimeError):
            protocol.accept(playback_id="pb1", session_id="s1")


def test_stats_message_is_camel_case() -> None:
    """``capture_stats`` spells its fields as the page's JavaScript reads them."""
    stats = CaptureStats(
        bytes_received=10,
        media_seconds=1.5,
        segments_uploaded=1,
        pending_uploads=0,
        upload_lag_seconds=0.02,
        bitrate_kbps=None,
        frame_rate=30.0,
        keyframe_interval_seconds=1.0,
    )
    assert json.loads(stats.message()) == {
        "type": "capture_stats",
        "bytesReceived": 10,
        "mediaSeconds": 1.5,
        "segmentsUploaded": 1,
        "pendingUploads": 0,
        "uploadLagSeconds": 0.02,
        "bitrateKbps": None,
        "frameRate": 30.0,
        "keyframeIntervalSeconds": 1.0,
    }
