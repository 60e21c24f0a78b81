"""What a route reads before it acts on a message: the sender's connection item and the stream the message names.

Both come in one round trip. The connection is read consistently: it holds the rate-limit buckets
(:mod:`.limits`), which are spent with a write conditioned on what was read here.
"""

from __future__ import annotations

from typing import Any

from capturestream import table
from capturestream.errors import NotFound
from capturestream.streams import StreamView

from . import clients

#: What a message from a connection whose item is gone (expired, or cleaned up as stale) is told.
NO_CONNECTION = "this connection is no longer registered; reconnect"


def load(
    table_name: str, connection_id: str, playback_id: str | None = None
) -> tuple[dict[str, Any], StreamView | None]:
    """The sender's connection (attributes) and, when ``playback_id`` is given, that stream (None if it has none).

    A stream item that is not whole yet (moto writes a new item's keys first) reads as no stream.

    Raises:
        NotFound: the connection item is gone.
    """
    keys = [table.connection_key(connection_id), *([table.stream_key(playback_id)] if playback_id else [])]
    response = clients.dynamodb().batch_get_item(RequestItems={table_name: {"Keys": keys, "ConsistentRead": True}})
    connection, stream = None, None
    for item in response["Responses"].get(table_name, []):
        if item[table.PK]["S"].startswith(table.CONNECTION_PREFIX):
            connection = table.from_item(item)
        elif "session_id" in item:
            stream = StreamView.from_item(item)
    if connection is None:
        raise NotFound(NO_CONNECTION)
    return connection, stream
