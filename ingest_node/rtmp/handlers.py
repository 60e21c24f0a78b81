"""What the server does with each complete RTMP message: one handler per message type and per command.

Owns: the reaction to every message the peer may send once the chunk stream is open -- protocol control
(RTMP 1.0 §5.4), user control (§6.2, §7.1.7), commands (§7.2), data (§7.1.2), audio/video (§7.1.4-5) and
aggregate (§7.1.6) messages. ``Connection`` inherits these methods; the dispatch tables below are the only way
a message reaches them (no ``isinstance`` chains).

Rules:
- Handlers append events and queue replies; they never touch the receive buffer.
- Connection-level transitions go through ``state.next_connection_state``; per-stream ones through
  ``MessageStream.advance``. A message the tables forbid raises ``RemoteProtocolError``.
- Unknown commands are ignored, as nginx-rtmp ignores them (``_checkbw``, ``getStreamLength``, ``FCSubscribe``
  ...): FFmpeg treats an ``_error`` to some optional calls as fatal. ``play``/``play2`` are refused with an
  onStatus error because this server only ingests.
- Protocol control messages are honoured whatever chunk or message stream carries them (the spec says chunk
  stream 2 / message stream 0; being lenient costs nothing).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, Final

from . import commands
from .chunks import ChunkReader, ChunkWriter, Message
from .errors import RemoteProtocolError
from .events import (
    AudioReceived,
    ConnectRequested,
    Event,
    MetadataReceived,
    PublishRequested,
    UnpublishRequested,
    VideoReceived,
)
from .messages import (
    AbortMessage,
    Acknowledgement,
    AggregateMessage,
    CommandMessage,
    DataMessage,
    LimitType,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEvent,
    WindowAckSize,
)
from .state import CONNECTION_TRANSITIONS, ConnectionState, ConnInput, StreamInput, next_connection_state
from .streams import MessageStream

__all__ = ["MAX_AMF_MESSAGE_SIZE", "MessageHandlers"]

#: Largest command, data or shared object message (and any non-media message), refused from its chunk header
#: before buffering. Real ones are under 4 KB (OBS's connect ~300 B, its onMetaData ~600 B); 16 KiB leaves 4x
#: headroom for verbose encoders while bounding the CPU one message can cost (AMF0 decoding of small values runs
#: ~0.3 ms per KiB: ~5 ms at 16 KiB, ~0.4 s at 1 MiB, which would stall every stream on the node).
MAX_AMF_MESSAGE_SIZE: Final = 16 * 1024
CSID_CONTROL: Final = 2
CSID_COMMAND: Final = 3
CSID_STATUS: Final = 5
_CONTROL_TYPE_IDS: Final[dict[type, int]] = {
    SetChunkSize: MessageType.SET_CHUNK_SIZE,
    AbortMessage: MessageType.ABORT,
    Acknowledgement: MessageType.ACKNOWLEDGEMENT,
    UserControl: MessageType.USER_CONTROL,
    WindowAckSize: MessageType.WINDOW_ACK_SIZE,
    SetPeerBandwidth: MessageType.SET_PEER_BANDWIDTH,
}
_MEDIA_EVENTS: Final[dict[int, type[AudioReceived] | type[VideoReceived]]] = {
    MessageType.AUDIO: AudioReceived,
    MessageType.VIDEO: VideoReceived,
}


def _amf_body(message: Message, limit: int) -> bytes:
    """The AMF0 body of a command/data message; the AMF3 flavours (17, 15) prefix AMF0 with a 0x00 byte.

    ``limit`` is the command cap: the chunk reader applies it from the header, this catches a data message
    inside an aggregate (which arrived under the media cap).
    """
    payload = message.payload
    if len(payload) > limit:
        raise RemoteProtocolError(f"AMF message of {len(payload)} bytes exceeds {limit}")
    if message.type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3) and payload[:1] == b"\x00":
        return payload[1:]
    return payload


class MessageHandlers:
    """Message and command handlers, mixed into ``Connection`` (which owns the attributes declared here)."""

    _state: ConnectionState
    _reader: ChunkReader
    _writer: ChunkWriter
    _out: bytearray
    _streams: dict[int, MessageStream]
    _next_stream_id: int
    _max_streams: int
    _paused_on: int | None
    _app: str
    _fc_publish: bool
    _window_ack_size: int
    _chunk_size: int
    _peer_window: int
    _sent_window: int
    _peer_limit: LimitType | None
    last_ping_response: int | None

    def _dispatch(self, message: Message, events: list[Event]) -> None:
        """Route one complete message by type id (unknown types are ignored once connected)."""
        handler, kind = _MESSAGE_HANDLERS.get(message.type_id, (None, ConnInput.MESSAGE))
        if kind is not None:
            state = CONNECTION_TRANSITIONS.get((self._state, kind))  # the per-message path: no error text built
            self._state = state or next_connection_state(self._state, kind, f"message type {message.type_id}")
        if handler is not None:
            handler(self, message, events)

    # -- protocol control (§5.4) and user control (§6.2) -------------------------------------------------------

    def _on_set_chunk_size(self, message: Message, events: list[Event]) -> None:
        self._reader.set_chunk_size(SetChunkSize.parse(message.payload).chunk_size)

    def _on_abort(self, message: Message, events: list[Event]) -> None:
        self._reader.abort(AbortMessage.parse(message.payload).chunk_stream_id)

    def _on_acknowledgement(self, message: Message, events: list[Event]) -> None:
        Acknowledgement.parse(message.payload)  # validated; we send too little to need flow control

    def _on_window_ack_size(self, message: Message, events: list[Event]) -> None:
        self._peer_window = WindowAckSize.parse(message.payload).window_size

    def _on_set_peer_bandwidth(self, message: Message, events: list[Event]) -> None:
        """§5.4.5: "The peer receiving this message SHOULD respond with a Window Acknowledgement Size message if
        the window size is different from the last one sent to the sender of this message." Limit type 2
        (Dynamic): "If the previous Limit Type was Hard, treat this message as though it was marked Hard,
        otherwise ignore this message"."""
        bandwidth = SetPeerBandwidth.parse(message.payload)
        limit = bandwidth.limit_type
        if limit is LimitType.DYNAMIC:
            if self._peer_limit is not LimitType.HARD:
                return
            limit = LimitType.HARD
        self._peer_limit = limit
        if bandwidth.window_size != self._sent_window:
            self._sent_window = bandwidth.window_size
            self._send_control(WindowAckSize(bandwidth.window_size))

    def _on_user_control(self, message: Message, events: list[Event]) -> None:
        """§7.1.7: answer PingRequest with PingResponse, whose "event data is a 4-byte timestamp, which was
        received with the PingRequest request"."""
        control = UserControl.parse(message.payload)
        if control.event_type == UserControlEvent.PING_REQUEST:
            self._send_control(UserControl.of(UserControlEvent.PING_RESPONSE, control.value))
        elif control.event_type == UserControlEvent.PING_RESPONSE:
            self.last_ping_response = control.value

    # -- media, data, aggregate (§7.1.2, §7.1.4-6) ------------------------------------------------------------

    def _on_media(self, message: Message, events: list[Event]) -> None:
        stream = self._streams.get(message.stream_id)
        if stream is None:
            raise RemoteProtocolError(f"media on message stream {message.stream_id}, which was never published")
        report = stream.advance(StreamInput.MEDIA)
        if report and message.payload:  # an empty FLV tag body carries nothing the segmenter could use
            event = _MEDIA_EVENTS[message.type_id]
            timestamp = stream.absolute_time(message.timestamp)
            events.append(event(stream_id=message.stream_id, timestamp=timestamp, payload=message.payload))

    def _on_data(self, message: Message, events: list[Event]) -> None:
        """``@setDataFrame("onMetaData", {...})`` (FFmpeg, OBS) or ``onMetaData({...})``; other data is ignored."""
        values = list(DataMessage.parse(_amf_body(message, self._reader.max_command_size)).values)
        if values[:1] == ["@setDataFrame"]:
            values = values[1:]
        stream = self._streams.get(message.stream_id)
        if stream is None or len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
            return
        if stream.advance(StreamInput.METADATA):
            timestamp = stream.absolute_time(message.timestamp)
            metadata = commands.plain_dict(values[1])
            events.append(MetadataReceived(stream_id=message.stream_id, timestamp=timestamp, metadata=metadata))

    def _on_aggregate(self, message: Message, events: list[Event]) -> None:
        """§7.1.6: split into sub-messages on the aggregate's message stream, timestamps renormalised."""
        subs = AggregateMessage.parse(message.payload).messages
        offset = message.timestamp - subs[0].timestamp if subs else 0
        for sub in subs:
            if sub.type_id in _MEDIA_EVENTS or sub.type_id == MessageType.DATA_AMF0:
                timestamp = (sub.timestamp + offset) & 0xFFFFFFFF
                inner = Message(sub.type_id, message.stream_id, timestamp, sub.payload, message.chunk_stream_id)
                self._dispatch(inner, events)

    # -- commands (§7.2) ----------------------------------------------------------------------------------------

    def _on_command(self, message: Message, events: list[Event]) -> None:
        command = CommandMessage.parse(_amf_body(message, self._reader.max_command_size))
        kind = ConnInput.CONNECT if command.name == "connect" else ConnInput.MESSAGE
        self._state = next_connection_state(self._state, kind, f"command {command.name[:32]!r}")
        handler = _COMMAND_HANDLERS.get(command.name)
        if handler is not None:
            handler(self, command, message.stream_id, events)

    def _cmd_connect(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        """§7.2.1.1: answer with Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size, ``_result``
        (the order nginx-rtmp uses)."""
        properties = command.command_object
        if not isinstance(properties, dict) or not isinstance(properties.get("app", ""), str):
            raise RemoteProtocolError("connect: the command object must be an object with a string 'app'")
        self._app = str(properties.get("app", ""))
        self._sent_window = self._window_ack_size
        self._send_control(WindowAckSize(self._window_ack_size))
        self._send_control(SetPeerBandwidth(self._window_ack_size, LimitType.DYNAMIC))
        self._send_control(SetChunkSize(self._chunk_size))
        self._writer.chunk_size = self._chunk_size  # §5.4.1: applies to the chunks after this message
        self._send_command(commands.connect_result(command.transaction_id, properties))
        tc_url, flash_ver = properties.get("tcUrl"), properties.get("flashVer")
        events.append(
            ConnectRequested(
                app=self._app,
                tc_url=tc_url if isinstance(tc_url, str) else None,
                flash_ver=flash_ver if isinstance(flash_ver, str) else None,
                properties=commands.plain_dict(properties),
            )
        )

    def _cmd_release_stream(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        self._send_result(command)

    def _cmd_fc_publish(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        self._fc_publish = True  # answered with onFCPublish once the publish is accepted (SRS order)
        self._send_result(command)

    def _cmd_create_stream(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        """§7.2.1.3: "_result ... Stream ID: the return value is either a stream ID or an error information object"."""
        if len(self._streams) >= self._max_streams:
            reply = commands.error_result(command.transaction_id, "NetConnection.Call.Failed", "Too many streams.")
            self._send_command(reply)
            return
        new_id = self._next_stream_id
        self._next_stream_id += 1
        self._streams[new_id] = MessageStream(new_id)
        self._send_command(commands.result(command.transaction_id, float(new_id)))

    def _cmd_publish(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        """§7.2.2.6: publish(name, type) on the message stream being published; pauses the connection."""
        if stream_id == 0:
            raise RemoteProtocolError("publish on message stream 0 (the NetConnection); createStream first")
        name = commands.string_argument(command, 0, "the publishing name")
        kind = command.arguments[1] if len(command.arguments) > 1 else "live"
        stream = self._streams.get(stream_id)
        if stream is None:  # nginx-rtmp accepts publish on any stream id; so do we, within max_streams
            if len(self._streams) >= self._max_streams:
                raise RemoteProtocolError(f"publish on a new message stream beyond {self._max_streams} streams")
            stream = self._streams[stream_id] = MessageStream(stream_id)
        stream.advance(StreamInput.PUBLISH)
        stream.publish_name = name
        self._paused_on = stream_id
        events.append(
            PublishRequested(
                stream_id=stream_id,
                stream_key=name,
                publish_type=kind if isinstance(kind, str) else "live",
                app=self._app,
            )
        )

    def _cmd_fc_unpublish(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        name = command.arguments[0] if command.arguments else None
        for stream in self._streams.values():
            published = stream.publish_name
            if isinstance(name, str) and published is not None and _same_name(published, name):
                self._unpublish(stream, "FCUnpublish", events)
        stop = commands.fc_status("onFCUnpublish", "NetStream.Unpublish.Success", "Stopped publishing stream.")
        self._send_command(stop)
        self._send_result(command)

    def _cmd_delete_stream(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        """§7.2.2.3: deleteStream(stream id) -- ends the publish and frees the stream id."""
        target = command.arguments[0] if command.arguments else None
        if isinstance(target, float) and target.is_integer() and int(target) in self._streams:
            self._unpublish(self._streams.pop(int(target)), "deleteStream", events)

    def _cmd_close_stream(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._unpublish(stream, "closeStream", events)

    def _cmd_play(self, command: CommandMessage, stream_id: int, events: list[Event]) -> None:
        self._send_status(stream_id, "error", "NetStream.Play.Failed", "This server only accepts publishing.")

    def _unpublish(self, stream: MessageStream, reason: str, events: list[Event]) -> None:
        if stream.advance(StreamInput.UNPUBLISH):
            events.append(UnpublishRequested(stream_id=stream.stream_id, reason=reason))
            self._send_status(stream.stream_id, "status", "NetStream.Unpublish.Success", "Stop publishing")

    # -- sending --------------------------------------------------------------------------------------------

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        self._out += self._writer.write(csid, type_id, stream_id, 0, payload)

    def _send_control(self, message: Any) -> None:
        self._send(CSID_CONTROL, _CONTROL_TYPE_IDS[type(message)], 0, bytes(message))

    def _send_command(self, command: CommandMessage, stream_id: int = 0, csid: int = CSID_COMMAND) -> None:
        self._send(csid, MessageType.COMMAND_AMF0, stream_id, bytes(command))

    def _send_result(self, command: CommandMessage) -> None:
        """``_result(null, undefined)`` -- unless the transaction id is 0: §7.2.1.2 "If a response is expected we
        give a transaction Id. Else we pass a value of 0" (rtmp2sink sends releaseStream/FCPublish with 0)."""
        if command.transaction_id:
            self._send_command(commands.result(command.transaction_id))

    def _send_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        self._send_command(commands.on_status(level, code, description), stream_id, CSID_STATUS)


def _same_name(a: str, b: str) -> bool:
    """Compare publishing names (stream keys) in constant time."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


_Handler = Callable[[MessageHandlers, Message, list[Event]], None]
_CommandHandler = Callable[[MessageHandlers, CommandMessage, int, list[Event]], None]
_H = MessageHandlers
#: type id -> (handler, connection input it counts as; None when the handler decides, as commands do)
_MESSAGE_HANDLERS: Final[dict[int, tuple[_Handler | None, ConnInput | None]]] = {
    MessageType.SET_CHUNK_SIZE: (_H._on_set_chunk_size, ConnInput.CONTROL),
    MessageType.ABORT: (_H._on_abort, ConnInput.CONTROL),
    MessageType.ACKNOWLEDGEMENT: (_H._on_acknowledgement, ConnInput.CONTROL),
    MessageType.USER_CONTROL: (_H._on_user_control, ConnInput.CONTROL),
    MessageType.WINDOW_ACK_SIZE: (_H._on_window_ack_size, ConnInput.CONTROL),
    MessageType.SET_PEER_BANDWIDTH: (_H._on_set_peer_bandwidth, ConnInput.CONTROL),
    MessageType.AUDIO: (_H._on_media, ConnInput.MESSAGE),
    MessageType.VIDEO: (_H._on_media, ConnInput.MESSAGE),
    MessageType.DATA_AMF0: (_H._on_data, ConnInput.MESSAGE),
    MessageType.DATA_AMF3: (_H._on_data, ConnInput.MESSAGE),
    MessageType.COMMAND_AMF0: (_H._on_command, None),
    MessageType.COMMAND_AMF3: (_H._on_command, None),
    MessageType.AGGREGATE: (_H._on_aggregate, ConnInput.MESSAGE),
}
_COMMAND_HANDLERS: Final[dict[str, _CommandHandler]] = {
    "connect": _H._cmd_connect,
    "releaseStream": _H._cmd_release_stream,
    "FCPublish": _H._cmd_fc_publish,
    "createStream": _H._cmd_create_stream,
    "publish": _H._cmd_publish,
    "FCUnpublish": _H._cmd_fc_unpublish,
    "deleteStream": _H._cmd_delete_stream,
    "closeStream": _H._cmd_close_stream,
    "play": _H._cmd_play,
    "play2": _H._cmd_play,
}
