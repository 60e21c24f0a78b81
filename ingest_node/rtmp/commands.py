"""The NetConnection/NetStream command vocabulary: reply builders and argument checks (RTMP 1.0 §7.2).

Owns: what the server answers, field by field, so the wire behaviour is reviewable in one place. The values
follow nginx-rtmp (``ngx_rtmp_cmd_module.c``: ``fmsVer`` "FMS/3,0,1,123", ``capabilities`` 31, description
"Connection succeeded.") and SRS (``_result`` with null + undefined for ``releaseStream``/``FCPublish``,
``onFCPublish``/``onFCUnpublish`` status), which OBS, FFmpeg and GStreamer are known to accept.

Rules:
- Builders are pure: they return :class:`CommandMessage` values; ``connection.py`` chooses chunk and message
  streams (commands on chunk stream 3, NetStream status on chunk stream 5, as nginx-rtmp does).
- Argument helpers raise ``RemoteProtocolError`` naming the command and the field, never echoing the value
  (the value of ``publish``/``FCPublish``/``releaseStream`` is a stream key).
- We do not send ``onBWDone``: OBS answers it with ``_checkbw`` (OBS.md), which buys nothing.
"""

from __future__ import annotations

from typing import Any, Final

from .amf0 import UNDEFINED
from .errors import RemoteProtocolError
from .messages import CommandMessage

__all__ = [
    "FMS_VERSION",
    "connect_result",
    "fc_status",
    "on_status",
    "plain_dict",
    "result",
    "string_argument",
]

#: nginx-rtmp's NGX_RTMP_FMS_VERSION; clients only display it.
FMS_VERSION: Final = "FMS/3,0,1,123"
#: §7.2.1.1 reply: "capabilities" -- 31 as nginx-rtmp and Adobe Media Server answer.
CAPABILITIES: Final = 31.0
#: Enhanced RTMP video FourCCs whose tag bodies we pass through to the segmenter (enhanced-rtmp-v1
#: "Extending NetConnection connect Command": fourCcList is "a strict array of dense ordinal indices ... Each
#: entry is set to a fourCC value ... representing a supported video codec").
PASSTHROUGH_FOURCCS: Final = ("avc1", "hvc1", "av01")


def plain_dict(value: Any) -> dict[str, Any]:
    """A plain ``dict`` copy of an AMF0 object or ECMA array (``{}`` for anything else)."""
    return dict(value) if isinstance(value, dict) else {}


def connect_result(transaction_id: float, command_object: dict[str, Any]) -> CommandMessage:
    """§7.2.1.1: ``_result`` with properties and information objects; ``objectEncoding`` is echoed.

    When the client advertised enhanced RTMP ``fourCcList``, the codecs we pass through are echoed back in the
    properties object, as Adobe Media Server does for capability lists (veovera/enhanced-rtmp #11).
    """
    properties: dict[str, Any] = {"fmsVer": FMS_VERSION, "capabilities": CAPABILITIES}
    offered = command_object.get("fourCcList")
    if isinstance(offered, list):
        properties["fourCcList"] = [code for code in offered if code in PASSTHROUGH_FOURCCS]
    encoding = command_object.get("objectEncoding", 0.0)
    information = {
        "level": "status",
        "code": "NetConnection.Connect.Success",
        "description": "Connection succeeded.",
        "objectEncoding": float(encoding) if isinstance(encoding, float) else 0.0,
    }
    return CommandMessage.build("_result", transaction_id, properties, information)


def result(transaction_id: float, *arguments: Any) -> CommandMessage:
    """``_result`` with a null command object; ``releaseStream``/``FCPublish`` get ``undefined`` (SRS)."""
    return CommandMessage.build("_result", transaction_id, None, *(arguments or (UNDEFINED,)))


def error_result(transaction_id: float, code: str, description: str) -> CommandMessage:
    """``_error`` answering a call we cannot serve."""
    info = {"level": "error", "code": code, "description": description}
    return CommandMessage.build("_error", transaction_id, None, info)


def on_status(level: str, code: str, description: str) -> CommandMessage:
    """§7.2.2: "The server sends an onStatus command to the client to notify NetStream status updates"."""
    return CommandMessage.build("onStatus", 0, None, {"level": level, "code": code, "description": description})


def fc_status(name: str, code: str, description: str) -> CommandMessage:
    """``onFCPublish``/``onFCUnpublish`` (Flash Media Live Encoder extensions, not in the spec)."""
    return CommandMessage.build(name, 0, None, {"level": "status", "code": code, "description": description})


def string_argument(command: CommandMessage, index: int, field: str) -> str:
    """The ``index``-th argument after the command object, which must be a string."""
    arguments = command.arguments
    if index >= len(arguments) or not isinstance(arguments[index], str):
        raise RemoteProtocolError(f"{command.name[:32]!r}: {field} must be a string (RTMP 1.0 §7.2)")
    return str(arguments[index])
