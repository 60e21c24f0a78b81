"""``Connection`` features beyond the publish sequence: automatic replies, enhanced RTMP, timestamps, other
message types, secrecy of stream keys, event and configuration validation."""

from __future__ import annotations

import dataclasses

import pytest

from ingest_node.rtmp import (
    AudioReceived,
    ConnectRequested,
    LocalProtocolError,
    MetadataReceived,
    PublishRequested,
    RemoteProtocolError,
    UnpublishRequested,
    VideoReceived,
    amf0,
)
from ingest_node.rtmp.connection import Connection
from ingest_node.rtmp.messages import AggregateMessage, MessageType, SetPeerBandwidth, SubMessage

from .helpers import (
    AV1_SEQUENCE_START,
    HEVC_SEQUENCE_START,
    KEY,
    ConnectionPair,
    aac_frame,
    avc_frame,
    published_pair,
)


class TestAutomaticReplies:
    def test_ping_request_is_answered(self) -> None:
        """§7.1.7: PingResponse echoes the PingRequest's timestamp."""
        pair = published_pair()
        pair.send(pair.client.control(MessageType.USER_CONTROL, bytes.fromhex("0006 00012345")))
        (reply,) = pair.take_replies()
        assert (reply.type_id, reply.payload) == (MessageType.USER_CONTROL, bytes.fromhex("0007 00012345"))

    def test_send_ping_and_response(self) -> None:
        pair = published_pair()
        pair.server.send_ping(777)
        pair.send(b"")
        (reply,) = pair.take_replies()
        assert reply.payload == bytes.fromhex("0006 00000309")
        with pytest.raises(LocalProtocolError):
            pair.server.send_ping()

    def test_ping_response_is_recorded(self) -> None:
        pair = published_pair()
        pair.send(pair.client.control(MessageType.USER_CONTROL, bytes.fromhex("0007 00000309")))
        assert pair.server.last_ping_response == 777
        with pytest.raises(LocalProtocolError):
            Connection().send_ping()

    def test_acknowledgement_when_the_window_fills(self) -> None:
        """§5.4.3: after the peer's Window Ack Size worth of bytes, send an Acknowledgement with the byte count."""
        pair = published_pair()
        pair.send(pair.client.control(MessageType.WINDOW_ACK_SIZE, (5000).to_bytes(4, "big")))
        assert pair.take_replies() == []
        pair.send(pair.client.video(0, avc_frame(True, size=6000)))
        (ack,) = pair.take_replies()
        assert ack.type_id == MessageType.ACKNOWLEDGEMENT
        assert int.from_bytes(ack.payload, "big") == pair.server.bytes_received

    @pytest.mark.parametrize(
        ("limits", "expected"),
        [
            ([(5000, 0)], [5000]),
            ([(5000, 1), (5000, 1)], [5000]),
            ([(5000, 2)], []),
            ([(5000, 0), (6000, 2)], [5000, 6000]),
            ([(2_500_000, 0)], []),
        ],
        ids=["hard", "soft-same-twice", "dynamic-first-ignored", "dynamic-after-hard", "same-as-announced"],
    )
    def test_set_peer_bandwidth(self, limits: list[tuple[int, int]], expected: list[int]) -> None:
        """§5.4.5: answer with Window Ack Size when the window differs from the last one we sent."""
        pair = published_pair()
        for size, limit in limits:
            pair.send(pair.client.control(MessageType.SET_PEER_BANDWIDTH, bytes(SetPeerBandwidth(size, limit))))
        replies = pair.take_replies()
        assert all(r.type_id == MessageType.WINDOW_ACK_SIZE for r in replies)
        assert [int.from_bytes(r.payload, "big") for r in replies] == expected

    @pytest.mark.parametrize("name", ["_checkbw", "getStreamLength", "FCSubscribe", "_result", "whatever"])
    def test_unknown_commands_are_ignored(self, name: str) -> None:
        """nginx-rtmp ignores commands it has no handler for; so do we (no reply, no event)."""
        pair = published_pair()
        assert pair.send(pair.client.command(name, 9, None)) == []
        assert pair.take_replies() == []

    def test_play_is_refused(self) -> None:
        """Ingest only: ``play`` gets onStatus NetStream.Play.Failed."""
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}) + pair.client.command("createStream", 2, None))
        pair.take_replies()
        assert pair.send(pair.client.command("play", 0, None, "testkey", stream_id=1)) == []
        (status,) = pair.commands()
        assert status.name == "onStatus"
        assert status.arguments[0]["level"] == "error"
        assert status.arguments[0]["code"] == "NetStream.Play.Failed"

    def test_create_stream_limit(self) -> None:
        pair = ConnectionPair(max_streams=2)
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}))
        pair.take_replies()
        for txn in (2, 3, 4):
            pair.send(pair.client.command("createStream", txn, None))
        results = [(cmd.name, cmd.arguments) for cmd in pair.commands()]
        assert results[:2] == [("_result", (1.0,)), ("_result", (2.0,))]
        assert results[2][0] == "_error"


class TestEnhancedRtmp:
    def test_fourcc_list_is_accepted_and_echoed(self) -> None:
        """enhanced-rtmp v1: connect may carry ``fourCcList``; we echo the codecs we pass through."""
        pair = ConnectionPair()
        pair.do_handshake()
        connect = {"app": "live", "fourCcList": ["av01", "vp09", "hvc1"]}
        (event,) = pair.send(pair.client.command("connect", 1, connect))
        assert isinstance(event, ConnectRequested) and event.properties["fourCcList"] == ["av01", "vp09", "hvc1"]
        (result,) = pair.commands()
        assert result.command_object["fourCcList"] == ["av01", "hvc1"]

    @pytest.mark.parametrize("sequence_start", [HEVC_SEQUENCE_START, AV1_SEQUENCE_START], ids=["hvc1", "av01"])
    def test_fourcc_video_passes_through(self, sequence_start: bytes) -> None:
        """ExVideoTagHeader bodies are delivered byte for byte; the core does not interpret codecs."""
        pair = published_pair()
        coded = bytes((0x80 | 1 << 4 | 1,)) + sequence_start[1:5] + bytes(3) + bytes(500)
        events = pair.send(pair.client.video(0, sequence_start) + pair.client.video(33, coded))
        assert [e.payload for e in events] == [sequence_start, coded]  # type: ignore[attr-defined]


class TestTimestamps:
    def test_wraparound_is_unwound(self) -> None:
        """§4: timestamps roll over at 2**32; serial arithmetic keeps the clock moving forward."""
        pair = published_pair()
        c = pair.client
        stamps = (0x40000000, 0x80000000, 0xC0000000, 0xFFFFFF00, 0x100, 0x40000000)
        events = pair.send(b"".join(c.audio(ts, aac_frame(), csid=9) for ts in stamps))
        expected = [0x40000000, 0x80000000, 0xC0000000, 0xFFFFFF00, 0x1_0000_0100, 0x1_4000_0000]
        assert [e.timestamp for e in events] == expected  # type: ignore[attr-defined]

    def test_extended_timestamps_through_the_connection(self) -> None:
        """Timestamps past 0xFFFFFF (4.66 h) use extended fields, in continuations too."""
        pair = published_pair()
        c = pair.client
        events = pair.send(c.video(0x01000000, avc_frame(True, size=10_000), csid=6))
        events += pair.send(c.video(0x01000021, avc_frame(False, size=10_000), csid=6))
        assert [e.timestamp for e in events] == [0x01000000, 0x01000021]  # type: ignore[attr-defined]

    def test_timestamps_never_go_negative(self) -> None:
        """A step back past the epoch reports 0, and later deltas stay exact (the clock keeps the true value)."""
        pair = published_pair()
        events = pair.send(pair.client.audio(0xFFFFFFF0, aac_frame(), csid=9))
        assert events[0].timestamp == 0  # type: ignore[attr-defined]
        stream = pair.server._streams[1]
        stream._last_raw, stream._clock = 10, 10
        assert stream.absolute_time(0xFFFFFFF0) == 0
        assert stream.absolute_time(30) == 30


class TestMessages:
    def test_plain_on_metadata_and_other_data(self) -> None:
        """Plain ``onMetaData`` counts as metadata; other data messages (``onTextData``) are ignored."""
        pair = published_pair()
        events = pair.send(pair.client.data("onMetaData", {"width": 640.0}) + pair.client.data("onTextData", {}))
        assert events == [MetadataReceived(stream_id=1, timestamp=0, metadata={"width": 640.0})]

    def test_metadata_before_publish_is_ignored(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}) + pair.client.command("createStream", 2, None))
        assert pair.send(pair.client.data("@setDataFrame", "onMetaData", {"width": 1.0})) == []

    def test_amf3_command_flavour(self) -> None:
        """Type 17 commands are AMF0 behind a 0x00 format byte (as Flash sends them)."""
        pair = ConnectionPair()
        pair.do_handshake()
        body = b"\x00" + amf0.encode("connect", 1.0, {"app": "live", "objectEncoding": 3.0})
        (event,) = pair.send(pair.client.chunker.message(3, MessageType.COMMAND_AMF3, 0, 0, body))
        assert isinstance(event, ConnectRequested)
        (result,) = pair.commands()
        assert result.arguments[0]["objectEncoding"] == 3.0

    def test_aggregate_messages_are_split(self) -> None:
        """§7.1.6: sub-messages become media events on the aggregate's stream, timestamps renormalised."""
        pair = published_pair()
        body = bytes(AggregateMessage((SubMessage(9, 5000, 0, b"\x17\x01v"), SubMessage(8, 5020, 0, b"\xaf\x01a"))))
        events = pair.send(pair.client.chunker.message(4, MessageType.AGGREGATE, 1, 100, body))
        assert [(type(e), e.timestamp, e.payload) for e in events] == [  # type: ignore[attr-defined]
            (VideoReceived, 100, b"\x17\x01v"),
            (AudioReceived, 120, b"\xaf\x01a"),
        ]

    def test_abort_message(self) -> None:
        """§5.4.2: Abort Message drops a half-received message; the stream goes on."""
        pair = published_pair()
        c = pair.client
        half = c.video(0, avc_frame(True, size=10_000), csid=6)[: 12 + 4096]  # the first of three chunks
        abort = c.control(MessageType.ABORT, (6).to_bytes(4, "big"))
        fresh = c.chunker.message(6, MessageType.VIDEO, 1, 40, avc_frame(False), fmt=0)
        assert [e.timestamp for e in pair.send(half + abort + fresh)] == [40]  # type: ignore[attr-defined]

    def test_close_stream_then_publish_again(self) -> None:
        """closeStream ends the publish; the same message stream may publish again."""
        pair = published_pair()
        c = pair.client
        assert pair.send(c.command("closeStream", 0, None, stream_id=1)) == [
            UnpublishRequested(stream_id=1, reason="closeStream")
        ]
        events = pair.send(c.command("publish", 0, None, KEY, "live", stream_id=1))
        assert [type(e) for e in events] == [PublishRequested]

    def test_media_after_unpublish_is_dropped(self) -> None:
        """Frames still in flight after FCUnpublish are dropped, not turned into a protocol error."""
        pair = published_pair()
        assert len(pair.send(pair.client.command("FCUnpublish", 0, None, KEY))) == 1
        assert pair.take_replies()[-1].command.name == "onFCUnpublish"  # type: ignore[union-attr]
        assert pair.send(pair.client.video(40, avc_frame(False))) == []

    def test_empty_media_is_dropped(self) -> None:
        pair = published_pair()
        assert pair.send(pair.client.video(10, b"")) == []


class TestSecrecy:
    def test_stream_key_not_in_repr(self) -> None:
        event = PublishRequested(stream_id=1, stream_key=KEY, publish_type="live", app="live")
        assert KEY not in repr(event) and KEY not in str(event)
        stream = published_pair().server._streams[1]
        assert KEY not in repr(stream)

    def test_stream_key_not_in_errors(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}))
        with pytest.raises(RemoteProtocolError) as info:
            pair.send(pair.client.command("publish", 0, None, KEY, "live"))
        assert KEY not in str(info.value)


class TestEventsAndConfig:
    def test_events_are_frozen_and_keyword_only(self) -> None:
        event = AudioReceived(stream_id=1, timestamp=0, payload=b"x")
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.timestamp = 5  # type: ignore[misc]
        with pytest.raises(TypeError):
            AudioReceived(1, 0, b"x")  # type: ignore[misc]

    @pytest.mark.parametrize(
        "make",
        [
            lambda: AudioReceived(stream_id=-1, timestamp=0, payload=b""),
            lambda: VideoReceived(stream_id=1, timestamp=-5, payload=b""),
            lambda: PublishRequested(stream_id=1, stream_key=None, publish_type="live", app=""),  # type: ignore[arg-type]
            lambda: ConnectRequested(app=3),  # type: ignore[arg-type]
        ],
    )
    def test_events_validate_their_fields(self, make: object) -> None:
        with pytest.raises(LocalProtocolError):
            make()  # type: ignore[operator]

    @pytest.mark.parametrize("kwargs", [{"chunk_size": 0}, {"chunk_size": 1 << 31}, {"window_ack_size": 0}])
    def test_bad_configuration(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(ValueError):
            Connection(**kwargs)  # type: ignore[arg-type]

    def test_outgoing_chunk_size_up_to_2_31(self) -> None:
        """Set Chunk Size up to 2**31-1 in our direction too: the _result then goes out as one chunk."""
        pair = ConnectionPair(chunk_size=0x7FFFFFFF)
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live", "pad": "x" * 5000}))
        assert pair.take_replies()[2].payload == bytes.fromhex("7fffffff")
