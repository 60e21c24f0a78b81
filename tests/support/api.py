"""Calling the REST function as API Gateway does: HTTP API payload 2.0 events through the real Mangum handler."""

from __future__ import annotations

import base64
import json
from typing import Any

from capturestream import table
from capturestream.tokens import issue_token
from functions.api import handler as api_handler

SECRET = "unit-test-jwt-secret-0123456789abcdefghij"
OTHER_SECRET = "another-jwt-secret-0123456789abcdefghijkl"
TABLE = "capturestream-MediaTable"
RTMP = "rtmp://ingest.test:1935/live"
WEB = "http://web.test:8000"
ORIGIN = "http://web.test:8000"


def token_for(subject: str = "user-1", secret: str = SECRET, ttl: int = 3600) -> str:
    return issue_token(secret, subject, ttl)


def event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    token: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event, as AWS sends it for ``ANY /api/{proxy+}``."""
    all_headers = {"host": "api.test", "user-agent": "pytest", **(headers or {})}
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    if body is not None:
        raw_body = json.dumps(body)
    if raw_body is not None:
        all_headers.setdefault("content-type", "application/json")
    result: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "ANY /api/{proxy+}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "api.test",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "x"},
            "requestId": "req-1",
            "routeKey": "ANY /api/{proxy+}",
            "stage": "$default",
            "time": "12/Mar/2026:19:03:58 +0000",
            "timeEpoch": 1_773_342_238_000,
        },
        "isBase64Encoded": False,
    }
    if raw_body is not None:
        result["body"] = raw_body
    return result


def call(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    """Invoke the real Lambda handler; returns (status, lower-cased headers, decoded JSON body or text)."""
    response = api_handler.handler(event(method, path, **kwargs), None)
    assert "multiValueHeaders" not in response  # payload 2.0 responses have none
    text = base64.b64decode(response["body"]).decode() if response.get("isBase64Encoded") else response["body"]
    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    is_json = headers.get("content-type", "").startswith("application/json")
    return response["statusCode"], headers, json.loads(text) if is_json else text


def create(name: str = "My channel", subject: str = "user-1") -> dict[str, Any]:
    status, _, body = call("POST", "/api/channels", body={"name": name}, token=token_for(subject))
    assert status == 201, body
    return body


def stored_channel(dynamodb: Any, channel_id: str):
    item = dynamodb.get_item(TableName=TABLE, Key=table.channel_key(channel_id), ConsistentRead=True)["Item"]
    return item, table.channel_from_item(item)
