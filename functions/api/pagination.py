"""Opaque pagination cursors over DynamoDB queries, shared by every list route.

Rules:
- A cursor is the query's ``LastEvaluatedKey`` as compact JSON in unpadded base64url. Clients treat it as
  opaque and pass it back as ``?cursor=``; ``nextCursor`` is null on the last page.
- A cursor is checked before it reaches DynamoDB: exactly the key attributes that query returns (string values
  only) and a route-specific ``accept`` predicate that pins it to the query's own partition (this owner's
  channels, this status, this broadcast's chat). A forged cursor therefore cannot page through someone else's
  data; anything we did not issue is a 422 on ``query.cursor``, never a 500.
- A cursor DynamoDB itself refuses (``ValidationException``, e.g. "outside query boundaries" after the client
  changed the range between pages) is the same 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from capturestream import table

from .deps import DynamoDBClient

#: Longest cursor accepted (ours are a few hundred characters).
MAX_CURSOR_LENGTH = 2048
#: Attributes of a ``LastEvaluatedKey`` from the base table, and from a ``gsi1`` query.
TABLE_KEY = frozenset({table.PK, table.SK})
GSI1_KEY = frozenset({table.PK, table.SK, table.GSI1_PK, table.GSI1_SK})

#: The ``?cursor=`` query parameter of every list route.
CursorParam = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`nextCursor` of the previous page; omit for the first page."),
]

#: Decides whether a decoded key (attribute name → string value) belongs to the query being paged.
KeyCheck = Callable[[Mapping[str, str]], bool]


def encode_cursor(last_evaluated_key: Mapping[str, Any]) -> str:
    """A query's ``LastEvaluatedKey`` → the opaque cursor handed to clients."""
    raw = json.dumps(last_evaluated_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, names: frozenset[str], accept: KeyCheck) -> table.Item:
    """The ``ExclusiveStartKey`` inside ``cursor``, checked against the query it is meant for.

    Args:
        cursor: what the client sent.
        names: the key attributes the query's ``LastEvaluatedKey`` has (:data:`TABLE_KEY`, :data:`GSI1_KEY`).
        accept: the route's check that the key lies inside its query (partition and range).

    Raises:
        RequestValidationError: (→ 422 on ``query.cursor``) for anything this query did not issue.
    """
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    valid = (
        isinstance(decoded, dict)
        and set(decoded) == names
        and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in decoded.values())
        and accept({name: value["S"] for name, value in decoded.items()})
    )
    if not valid:
        raise bad_cursor()
    return decoded


def bad_cursor() -> RequestValidationError:
    """The 422 raised for a cursor we cannot use."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", "cursor"), "msg": "invalid pagination cursor"}]
    )


def query_page(
    dynamodb: DynamoDBClient,
    table_name: str,
    query: Mapping[str, Any],
    cursor: str | None,
    *,
    names: frozenset[str],
    accept: KeyCheck,
) -> tuple[list[table.Item], str | None]:
    """Run one page of ``query`` (which carries its own ``Limit``) from ``cursor``.

    Returns:
        The page's items and the cursor of the next page (None when DynamoDB reports no more).

    Raises:
        RequestValidationError: for an invalid cursor (see :func:`decode_cursor`).
    """
    arguments = dict(query)
    if cursor is not None:
        arguments["ExclusiveStartKey"] = decode_cursor(cursor, names, accept)
    try:
        page = dynamodb.query(TableName=table_name, **arguments)
    except dynamodb.exceptions.ClientError as exc:  # e.g. "starting key is outside query boundaries"
        if cursor is None or exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        raise bad_cursor() from None
    last = page.get("LastEvaluatedKey")
    return page.get("Items", []), encode_cursor(last) if last else None
