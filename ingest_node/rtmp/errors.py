"""Protocol errors of the RTMP core, modelled once for this boundary (h11 ``_util.py``).

Owns: the exception hierarchy every other module in ``ingest_node.rtmp`` raises.

Rules:
- ``ProtocolError`` is never raised itself (it refuses direct instantiation); raise one of its two children.
- ``RemoteProtocolError``: the peer sent something we cannot accept (malformed bytes, a forbidden sequence,
  a resource limit). The caller's only sensible reaction is to flush ``data_to_send()`` and close the socket.
- ``LocalProtocolError``: the caller misused the API (accepting a publish nobody asked for, feeding data after
  EOF, encoding a value AMF0 cannot carry).
- Messages never contain a stream key: they name the command and the field, never the value.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class for the two protocol errors; catch it, never raise it."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("tried to instantiate ProtocolError directly; raise Local- or RemoteProtocolError")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """The caller used the core in a way the protocol or its state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer violated RTMP, AMF0 or one of this core's resource limits."""
