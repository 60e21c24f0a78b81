"""WebSocket function: the ``$connect``, ``$disconnect`` and ``$default`` routes of the WebSocket API.

Plain Lambda handler (Mangum has no WebSocket support). ``$connect`` accepts anonymous viewers and, with
``?token=<jwt>``, signed-in users (a bad token is refused with 401). Messages are validated against
:mod:`capturestream.messages`; a message that is invalid, oversized, rate-limited or not allowed is answered
with an ``error`` message posted to the sender. Notifications to *other* connections (chat, viewer counts,
stream state) are the notifier's job: this function only writes DynamoDB.
"""

from __future__ import annotations

import logging
from typing import Any

from capturestream import messages
from capturestream.errors import CaptureStreamError

from . import clients, routes

log = logging.getLogger(__name__)


def handler(event: dict, context: Any) -> dict:
    """Dispatch on the route key; always return a status so API Gateway accepts or refuses the connection."""
    request = event["requestContext"]
    route, connection_id = request["routeKey"], request["connectionId"]
    if route == "$connect":
        return routes.connect(connection_id, event)
    if route == "$disconnect":
        routes.disconnect(connection_id)
        return {"statusCode": 200}
    try:
        message = messages.parse_client_message(event.get("body") or "")
        routes.on_message(connection_id, message)
    except CaptureStreamError as error:
        log.info("refused message", extra={"connection_id": connection_id, "code": error.code})
        clients.send(connection_id, messages.error_message(error))
    return {"statusCode": 200}
