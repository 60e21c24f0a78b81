"""Local emulator of an Amazon API Gateway WebSocket API, for the devstack and integration tests.

The package owns everything between a browser's WebSocket and the Lambda handlers wired to the API's routes:
the ``$connect``/``$disconnect``/message events, route selection, the quotas (32 KB frames, 128 KB messages,
10-minute idle timeout, 2-hour connections, 29-second integrations) and the ``@connections`` management API
that the unmodified boto3 ``apigatewaymanagementapi`` client calls with ``endpoint_url=gateway.management_url``.

Modules (one concept each):
    * ``config``: :class:`GatewayLimits`, the :data:`Invoker` contract, close causes and their codes.
    * ``events``: AWS-shaped ids, timestamps, Lambda events and client error frames.
    * ``routing``: ``$request.body.<path>`` route selection.
    * ``frames``: the per-frame 32 KB limit aiohttp lacks.
    * ``connection``: one connection's state, timers and ordered dispatch.
    * ``management``: ``POST|GET|DELETE /{stage}/@connections/{id}``.
    * ``gateway``: :class:`WebSocketGateway`, the server and its lifecycle.

Usage::

    routes = {"$connect": connect_fn.invoke, "$disconnect": disconnect_fn.invoke, "$default": default_fn.invoke}
    async with WebSocketGateway(routes, stage="dev") as gateway:
        client = boto3.client("apigatewaymanagementapi", endpoint_url=gateway.management_url)
        ...  # viewers connect to gateway.ws_url

Known differences from AWS are listed in the docstrings where they occur: outbound messages are never split
into 32 KB frames, inbound messages of one connection are handled strictly one at a time, and the exact
``disconnectReason`` texts for protocol errors are RFC 6455 names.
"""

from .config import DisconnectCause, GatewayLimits, Invoker
from .gateway import WebSocketGateway

__all__ = ["DisconnectCause", "GatewayLimits", "Invoker", "WebSocketGateway"]
