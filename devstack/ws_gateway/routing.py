"""Route selection for inbound WebSocket messages (``RouteSelectionExpression``).

This module owns the decision "which route key handles this text message", as API Gateway documents it
for WebSocket APIs (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html):
the expression ``$request.body.<path>`` is evaluated against the JSON body; the result selects the route
with that key, otherwise ``$default``; with no ``$default`` the message is rejected and the client gets a
``Forbidden`` error frame (aws-samples/simple-websockets-chat-app#24).

Rules:
    * Only ``$request.body.<field>[.<field>...]`` expressions are supported (nested fields use dots); anything
      else is rejected at construction with ``ValueError``.
    * A body that is not JSON, not an object, or lacks the field goes to ``$default`` (API Gateway cannot
      evaluate the expression, so it falls back).
    * String values are compared as-is; other JSON scalars are compared by their JSON text (``1``,
      ``true``). Objects, arrays and ``null`` never match a route.
    * The reserved keys ``$connect``/``$disconnect`` are never selected for a message.
"""

from __future__ import annotations

import json
from collections.abc import Collection

__all__ = ["DEFAULT_ROUTE", "RouteSelector"]

DEFAULT_ROUTE = "$default"
_PREFIX = "$request.body."
_LIFECYCLE = frozenset({"$connect", "$disconnect"})


class RouteSelector:
    """Evaluates a route selection expression against message bodies.

    Args:
        expression: For example ``$request.body.type`` or ``$request.body.meta.kind``.
        route_keys: Every configured route key, including reserved ones.

    Raises:
        ValueError: The expression is not of the form ``$request.body.<path>``.
    """

    __slots__ = ("_path", "_keys", "_default")

    def __init__(self, expression: str, route_keys: Collection[str]) -> None:
        path = expression.removeprefix(_PREFIX) if expression.startswith(_PREFIX) else ""
        fields = tuple(path.split(".")) if path else ()
        if not fields or not all(fields):
            raise ValueError(f"unsupported route selection expression {expression!r}")
        self._path = fields
        self._keys = frozenset(route_keys) - _LIFECYCLE
        self._default = DEFAULT_ROUTE if DEFAULT_ROUTE in self._keys else None

    def select(self, body: str) -> str | None:
        """Return the route key for ``body``, or ``None`` when no route (not even ``$default``) matches."""
        value = self._evaluate(body)
        if value is not None and value in self._keys:
            return value
        return self._default

    def _evaluate(self, body: str) -> str | None:
        try:
            node = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser allows
            return None
        for field in self._path:
            if not isinstance(node, dict) or field not in node:
                return None
            node = node[field]
        if isinstance(node, str):
            return node
        if node is None or isinstance(node, dict | list):
            return None
        return json.dumps(node)
