"""``Connection`` driven by a minimal client through OBS's, FFmpeg's and GStreamer's command sequences."""

from __future__ import annotations

import pytest

from ingest_node.rtmp import (
    UNDEFINED,
    AudioReceived,
    ConnectionClosed,
    ConnectionState,
    ConnectRequested,
    EcmaArray,
    HandshakeCompleted,
    LocalProtocolError,
    MetadataReceived,
    PublishRequested,
    RemoteProtocolError,
    StreamState,
    UnpublishRequested,
    VideoReceived,
)
from ingest_node.rtmp.connection import MAX_AMF_MESSAGE_SIZE, MAX_MEDIA_MESSAGE_SIZE, Connection
from ingest_node.rtmp.messages import CommandMessage, LimitType, MessageType, SetPeerBandwidth, UserControl

from .helpers import (
    AAC_SEQUENCE_HEADER,
    AVC_SEQUENCE_HEADER,
    KEY,
    OBS_CONNECT,
    OBS_METADATA,
    ConnectionPair,
    aac_frame,
    avc_frame,
    published_pair,
)


class TestObsSequence:
    """OBS.md is the de-facto spec: its exact sequence must produce exactly these events and replies."""

    def test_events(self) -> None:
        """Handshake → connect → publish (paused until accepted) → metadata → both sequence headers."""
        pair = ConnectionPair()
        events = pair.obs_publish(KEY)
        assert events == [
            HandshakeCompleted(digest=False),
            ConnectRequested(
                app="live",
                tc_url="rtmp://127.0.0.1:1935/live",
                flash_ver="FMLE/3.0 (compatible; FMSc/1.0)",
                properties=OBS_CONNECT,
            ),
            PublishRequested(stream_id=1, stream_key=KEY, publish_type="live", app="live"),
            MetadataReceived(stream_id=1, timestamp=0, metadata=dict(OBS_METADATA)),
            AudioReceived(stream_id=1, timestamp=0, payload=AAC_SEQUENCE_HEADER),
            VideoReceived(stream_id=1, timestamp=0, payload=AVC_SEQUENCE_HEADER),
        ]

    def test_connect_replies(self) -> None:
        """nginx-rtmp's order: Window Ack Size, Set Peer Bandwidth (dynamic), Set Chunk Size, ``_result``."""
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.set_chunk_size(4096) + pair.client.command("connect", 1, OBS_CONNECT))
        replies = pair.take_replies()
        assert [(r.type_id, r.chunk_stream_id, r.stream_id) for r in replies] == [
            (MessageType.WINDOW_ACK_SIZE, 2, 0),
            (MessageType.SET_PEER_BANDWIDTH, 2, 0),
            (MessageType.SET_CHUNK_SIZE, 2, 0),
            (MessageType.COMMAND_AMF0, 3, 0),
        ]
        assert replies[0].payload == (2_500_000).to_bytes(4, "big")
        assert SetPeerBandwidth.parse(replies[1].payload) == SetPeerBandwidth(2_500_000, LimitType.DYNAMIC)
        assert replies[2].payload == (4096).to_bytes(4, "big")
        assert replies[3].command == CommandMessage(
            "_result",
            1.0,
            (
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.",
                    "objectEncoding": 0.0,
                },
            ),
        )

    def test_pipelined_stream_setup_replies(self) -> None:
        """releaseStream/FCPublish get ``_result(null, undefined)``; createStream gets stream id 1; accepting
        sends StreamBegin, onFCPublish and onStatus NetStream.Publish.Start on message stream 1."""
        pair = ConnectionPair()
        pair.obs_publish(KEY)
        replies = pair.take_replies()[4:]
        commands = [(r.command.name, r.command.transaction_id, r.command.values) for r in replies if r.command]
        assert commands[:3] == [
            ("_result", 2.0, (None, UNDEFINED)),
            ("_result", 3.0, (None, UNDEFINED)),
            ("_result", 4.0, (None, 1.0)),
        ]
        begin = next(r for r in replies if r.type_id == MessageType.USER_CONTROL)
        assert UserControl.parse(begin.payload) == UserControl(0, (1).to_bytes(4, "big"))
        assert commands[3][0] == "onFCPublish"
        status = replies[-1]
        assert (status.stream_id, status.chunk_stream_id) == (1, 5)
        assert status.command is not None and status.command.name == "onStatus"
        assert status.command.arguments[0]["code"] == "NetStream.Publish.Start"
        assert status.command.arguments[0]["level"] == "status"

    def test_frames_and_clean_stop(self) -> None:
        """Interleaved type-1 headers on chunk stream 4 give absolute timestamps; FCUnpublish + deleteStream
        report one UnpublishRequested; EOF reports ConnectionClosed."""
        pair = published_pair()
        c = pair.client
        data = c.video(0, avc_frame(True, cts=66)) + c.audio(21, aac_frame()) + c.video(33, avc_frame(False))
        data += c.audio(43, aac_frame()) + c.video(66, avc_frame(False)) + c.audio(64, aac_frame())
        events = pair.send(data)
        assert [(type(e).__name__, e.timestamp) for e in events] == [  # type: ignore[attr-defined]
            ("VideoReceived", 0),
            ("AudioReceived", 21),
            ("VideoReceived", 33),
            ("AudioReceived", 43),
            ("VideoReceived", 66),
            ("AudioReceived", 64),
        ]
        stop = c.command("FCUnpublish", 6, None, KEY) + c.command("deleteStream", 7, None, 1.0)
        assert pair.send(stop) == [UnpublishRequested(stream_id=1, reason="FCUnpublish")]
        assert pair.server.stream_state(1) is None
        assert pair.send(b"") == [ConnectionClosed()]
        assert pair.server.state is ConnectionState.CLOSED


def test_ffmpeg_sequence() -> None:
    """FFmpeg: digest handshake, connect at 128-byte chunks, Set Chunk Size 4096 *after* connect, publish on
    chunk stream 8, video on 6 and audio on 4, deleteStream(1)."""
    pair = ConnectionPair(digest=True)
    c = pair.client
    events = pair.do_handshake()
    connect = {"app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; Lavf59.27.100)"}
    events += pair.send(c.command("connect", 1, {**connect, "tcUrl": "rtmp://127.0.0.1/live"}))
    events += pair.send(c.set_chunk_size(4096) + c.command("releaseStream", 2, None, KEY))
    events += pair.send(c.command("FCPublish", 3, None, KEY) + c.command("createStream", 4, None))
    events += pair.send(c.command("publish", 5, None, KEY, "live", csid=8, stream_id=1))
    events += pair.send(c.data("@setDataFrame", "onMetaData", EcmaArray(duration=0.0), csid=4))
    events += pair.send(c.video(0, AVC_SEQUENCE_HEADER, csid=6) + c.audio(0, AAC_SEQUENCE_HEADER, csid=4))
    events += pair.send(c.video(0, avc_frame(True, size=9000), csid=6) + c.audio(23, aac_frame(), csid=4))
    events += pair.send(c.command("FCUnpublish", 6, None, KEY) + c.command("deleteStream", 7, None, 1.0))
    assert [type(e).__name__ for e in events] == [
        "HandshakeCompleted",
        "ConnectRequested",
        "PublishRequested",
        "MetadataReceived",
        "VideoReceived",
        "AudioReceived",
        "VideoReceived",
        "AudioReceived",
        "UnpublishRequested",
    ]
    assert events[0] == HandshakeCompleted(digest=True)
    assert len(events[6].payload) == 9009  # type: ignore[attr-defined]


def test_gstreamer_rtmp2sink_sequence() -> None:
    """rtmp2sink: transaction id 0 for most commands, its own Window Ack Size, and ``deleteStream(<key>)``
    (a string where the spec wants a stream id) -- still one clean UnpublishRequested."""
    pair = ConnectionPair()
    c = pair.client
    pair.do_handshake()
    pair.send(c.command("connect", 1, {"app": "live", "type": "nonprivate", "flashVer": "LNX 10,0,32,18"}))
    pair.send(c.control(MessageType.WINDOW_ACK_SIZE, (2_500_000).to_bytes(4, "big")))
    setup = c.command("releaseStream", 0, None, KEY) + c.command("FCPublish", 0, None, KEY)
    pair.send(setup + c.command("createStream", 2, None))
    events = pair.send(c.command("publish", 0, None, KEY, "live", stream_id=1))
    assert events == [PublishRequested(stream_id=1, stream_key=KEY, publish_type="live", app="live")]
    stop = c.command("FCUnpublish", 0, None, KEY) + c.command("deleteStream", 0, None, KEY)
    assert pair.send(stop) == [UnpublishRequested(stream_id=1, reason="FCUnpublish")]


class TestPublishDecision:
    """The caller decides about each publish; parsing pauses meanwhile (nginx-rtmp on_publish)."""

    def test_parsing_pauses_until_accepted(self) -> None:
        """Media pipelined after ``publish`` is held, not refused, and comes out after accept_publish."""
        pair = ConnectionPair()
        c = pair.client
        pair.do_handshake()
        pair.send(c.command("connect", 1, {"app": "live"}) + c.command("createStream", 2, None))
        burst = c.command("publish", 0, None, KEY, "live", stream_id=1, csid=4) + c.audio(0, AAC_SEQUENCE_HEADER)
        events = pair.send(burst, accept=False)
        assert [type(e) for e in events] == [PublishRequested]
        assert pair.server.paused and pair.server.stream_state(1) is StreamState.PUBLISH_PENDING
        assert pair.send(c.audio(20, aac_frame()), accept=False) == []
        pair.server.accept_publish(1)
        assert not pair.server.paused
        held = pair.server.pending_events()
        assert [(type(e), e.timestamp) for e in held] == [(AudioReceived, 0), (AudioReceived, 20)]  # type: ignore[attr-defined]

    def test_reject_sends_error_status(self) -> None:
        """OBS.md: reject with onStatus level "error" (never silence); media afterwards is a protocol error."""
        pair = ConnectionPair()
        c = pair.client
        pair.do_handshake()
        pair.send(c.command("connect", 1, {"app": "live"}) + c.command("createStream", 2, None))
        pair.take_replies()
        pair.send(c.command("publish", 0, None, KEY, "live", stream_id=1), accept=False)
        pair.server.reject_publish(1)
        pair.send(b"", accept=False)
        (status,) = [r.command for r in pair.take_replies() if r.command]
        assert status.name == "onStatus"
        assert status.arguments[0] == {
            "level": "error",
            "code": "NetStream.Publish.BadName",
            "description": "Publishing refused.",
        }

    def test_media_after_reject_is_refused(self) -> None:
        pair = ConnectionPair()
        c = pair.client
        pair.do_handshake()
        pair.send(c.command("connect", 1, {"app": "live"}) + c.command("createStream", 2, None))
        pair.send(c.command("publish", 0, None, KEY, "live", stream_id=1), accept=False)
        pair.server.reject_publish(1, "NetStream.Publish.Denied", "No.")
        with pytest.raises(RemoteProtocolError, match="media is not allowed on message stream 1 in state REJECTED"):
            pair.send(c.video(0, AVC_SEQUENCE_HEADER))

    @pytest.mark.parametrize("method", ["accept_publish", "reject_publish"])
    def test_deciding_without_a_pending_publish_is_a_local_error(self, method: str) -> None:
        pair = published_pair()
        with pytest.raises(LocalProtocolError, match="no publish is pending on message stream 1"):
            getattr(pair.server, method)(1)
        with pytest.raises(LocalProtocolError):
            getattr(pair.server, method)(7)

    def test_buffer_while_paused_is_bounded(self) -> None:
        """A client streaming while its publish is undecided cannot make us buffer without limit."""
        pair = ConnectionPair(max_message_size=64 * 1024)
        c = pair.client
        pair.do_handshake()
        pair.send(c.command("connect", 1, {"app": "live"}) + c.command("createStream", 2, None))
        pair.send(c.command("publish", 0, None, KEY, "live", stream_id=1), accept=False)
        with pytest.raises(RemoteProtocolError, match="cannot be parsed yet"):
            for _ in range(100):
                pair.server.receive_data(bytes(4096))


class TestRefusals:
    """Sequences the state tables forbid raise RemoteProtocolError naming what and where."""

    def test_media_before_publish(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}) + pair.client.command("createStream", 2, None))
        with pytest.raises(RemoteProtocolError, match="media is not allowed on message stream 1 in state CREATED"):
            pair.send(pair.client.video(0, AVC_SEQUENCE_HEADER))

    def test_media_on_unknown_stream(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}))
        with pytest.raises(RemoteProtocolError, match="never published"):
            pair.send(pair.client.audio(0, AAC_SEQUENCE_HEADER, stream_id=3))

    def test_command_before_connect(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        with pytest.raises(
            RemoteProtocolError, match="'createStream' is not allowed in connection state AWAIT_CONNECT"
        ):
            pair.send(pair.client.command("createStream", 2, None))

    def test_second_connect(self) -> None:
        pair = published_pair()
        with pytest.raises(RemoteProtocolError, match="'connect' is not allowed in connection state CONNECTED"):
            pair.send(pair.client.command("connect", 9, {"app": "live"}))

    def test_publish_on_stream_zero(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}))
        with pytest.raises(RemoteProtocolError, match="message stream 0"):
            pair.send(pair.client.command("publish", 0, None, KEY, "live"))

    def test_publish_without_a_name(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        pair.send(pair.client.command("connect", 1, {"app": "live"}))
        with pytest.raises(RemoteProtocolError, match="publishing name must be a string"):
            pair.send(pair.client.command("publish", 0, None, 42.0, stream_id=1))

    def test_connect_without_command_object(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        with pytest.raises(RemoteProtocolError, match="connect: the command object"):
            pair.send(pair.client.command("connect", 1, None))

    def test_oversized_amf_message(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        with pytest.raises(RemoteProtocolError, match="command/data/control"):
            pair.send(pair.client.command("connect", 1, {"app": "x" * MAX_AMF_MESSAGE_SIZE}))

    @pytest.mark.parametrize("type_id", [MessageType.COMMAND_AMF0, MessageType.DATA_AMF3, 16, 19, 4, 99])
    def test_non_media_messages_are_capped_at_their_header(self, type_id: int) -> None:
        """The cap applies from the 12-byte chunk header: not one payload byte is buffered before the refusal."""
        pair = ConnectionPair()
        pair.do_handshake()
        header = bytes((0x03,)) + bytes(3) + (MAX_AMF_MESSAGE_SIZE + 1).to_bytes(3, "big") + bytes((type_id,))
        with pytest.raises(RemoteProtocolError, match=f"{MAX_AMF_MESSAGE_SIZE}-byte limit"):
            pair.send(header + bytes(4))

    def test_media_messages_have_their_own_larger_cap(self) -> None:
        pair = ConnectionPair()
        pair.do_handshake()
        big_video = bytes((0x04,)) + bytes(3) + (MAX_MEDIA_MESSAGE_SIZE).to_bytes(3, "big") + b"\x09" + bytes(4)
        pair.send(big_video)  # announced and accepted (not yet complete)
        pair = ConnectionPair()
        pair.do_handshake()
        with pytest.raises(RemoteProtocolError, match="media messages"):
            pair.send(bytes((0x04,)) + bytes(3) + (MAX_MEDIA_MESSAGE_SIZE + 1).to_bytes(3, "big") + b"\x09" + bytes(4))

    def test_after_an_error_the_connection_is_dead(self) -> None:
        """h11: once the peer broke the protocol, further use is the caller's error."""
        pair = ConnectionPair()
        pair.do_handshake()
        with pytest.raises(RemoteProtocolError):
            pair.send(b"\x44" + bytes(10))
        with pytest.raises(LocalProtocolError, match="already failed"):
            pair.server.receive_data(b"x")

    def test_after_eof(self) -> None:
        conn = Connection()
        assert conn.receive_data(b"\x03") == []
        assert conn.receive_data(b"") == [ConnectionClosed()]
        with pytest.raises(LocalProtocolError, match="EOF"):
            conn.receive_data(b"")
