"""REST function: FastAPI driven through the real Mangum handler with API Gateway 2.0 events, against moto."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from capturestream import catalog, keys, table
from capturestream.models import SessionManifestBody, hash_stream_key, new_session_id
from capturestream.tokens import AUDIENCE, ISSUER, User, issue_token, verify_token
from functions.api import deps
from functions.api import handler as api_handler
from functions.api.routes import channels as channel_routes
from tests.support.api import (
    ORIGIN,
    OTHER_SECRET,
    RTMP,
    SECRET,
    TABLE,
    WEB,
    call,
    create,
    event,
    stored_channel,
    token_for,
)

# ------------------------------------------------------------------------------------------------ channels


def test_create_returns_the_key_once_and_stores_only_its_hash(dynamodb: Any) -> None:
    status, headers, body = call("POST", "/api/channels", body={"name": "  Gaming night  "}, token=token_for())
    assert status == 201
    assert headers["cache-control"] == "no-store"
    key, channel = body["streamKey"], body["channel"]
    assert set(channel) == {"channelId", "name", "playbackId", "createdAt", "keyRotatedAt", "waitOnUnpublish"}
    assert channel["name"] == "Gaming night"
    assert body["ingest"] == {"server": RTMP, "streamKey": key}
    assert body["watchUrl"] == f"{WEB}/watch.html?v={channel['playbackId']}"
    item, stored = stored_channel(dynamodb, channel["channelId"])
    assert key not in json.dumps(item)
    assert item["stream_key_hash"] == {"S": hash_stream_key(key)}
    assert stored.owner == "user-1"
    assert stored.verify_stream_key(key)
    assert not stored.verify_stream_key(key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_me_lists_own_channels_without_keys(dynamodb: Any) -> None:
    first, second = create("one"), create("two")
    create("someone else's", subject="user-2")
    status, headers, body = call("GET", "/api/channels/me", token=token_for())
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert [c["name"] for c in body["channels"]] == ["one", "two"]
    assert body["nextCursor"] is None
    text = json.dumps(body)
    for created in (first, second):
        assert created["streamKey"] not in text
        assert hash_stream_key(created["streamKey"]) not in text
    assert "streamKey" not in text and "hash" not in text.lower()


def test_me_paginates_with_an_opaque_cursor(dynamodb: Any) -> None:
    names = [f"ch{i}" for i in range(5)]
    for name in names:
        create(name)
    seen, cursor, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, _, body = call("GET", "/api/channels/me", token=token_for(), query=query)
        assert status == 200
        assert len(body["channels"]) <= 2
        seen += [c["name"] for c in body["channels"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == names
    assert pages == 3


def test_a_half_written_channel_is_404_and_left_out_of_the_list(dynamodb: Any) -> None:
    """A channel item missing its required attributes (mid-update) is no channel: 404, skipped, never 500."""
    whole = create("whole")
    channel_id = create("half")["channel"]["channelId"]
    item, _ = stored_channel(dynamodb, channel_id)
    del item["stream_key_hash"]
    dynamodb.put_item(TableName=TABLE, Item=item)
    status, _, body = call("POST", f"/api/channels/{channel_id}/rotate-key", token=token_for())
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, _, body = call("GET", "/api/channels/me", token=token_for())
    assert status == 200 and [c["channelId"] for c in body["channels"]] == [whole["channel"]["channelId"]]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'["a list"]').decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": {"S": "x"}}).encode()).decode(),
        # a well-formed key of someone else's index partition
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "pk": {"S": "CHANNEL#abcdefghijkl"},
                    "sk": {"S": "CHANNEL"},
                    "gsi1pk": {"S": "OWNER#user-2"},
                    "gsi1sk": {"S": "CHANNEL#2026#abcdefghijkl"},
                }
            ).encode()
        ).decode(),
    ],
)
def test_tampered_cursor_is_422_not_500(dynamodb: Any, cursor: str) -> None:
    status, _, body = call("GET", "/api/channels/me", token=token_for(), query=f"cursor={cursor}")
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["fields"][0]["field"] == "query.cursor"


def test_cursor_rejected_by_dynamodb_is_422(dynamodb: Any) -> None:
    create("one"), create("two")
    _, _, page = call("GET", "/api/channels/me", token=token_for(), query="limit=1")
    cursor = page["nextCursor"]

    class RejectsStartKey:
        def query(self, **kwargs: Any) -> Any:
            assert "ExclusiveStartKey" in kwargs
            error = {"Error": {"Code": "ValidationException", "Message": "outside query boundaries"}}
            raise dynamodb.exceptions.ClientError(error, "Query")

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    api_handler.app.dependency_overrides[deps.get_dynamodb] = RejectsStartKey
    status, _, body = call("GET", "/api/channels/me", token=token_for(), query=f"cursor={cursor}")
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "query.cursor"


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_limit_out_of_range_is_422(dynamodb: Any, limit: str) -> None:
    status, _, body = call("GET", "/api/channels/me", token=token_for(), query=f"limit={limit}")
    assert status == 422
    assert body["error"]["fields"][0]["field"] == "query.limit"


def test_rotate_invalidates_the_old_key(dynamodb: Any) -> None:
    created = create()
    channel_id, old_key = created["channel"]["channelId"], created["streamKey"]
    status, headers, body = call("POST", f"/api/channels/{channel_id}/rotate-key", token=token_for())
    assert status == 200
    assert headers["cache-control"] == "no-store"
    new_key = body["streamKey"]
    assert new_key != old_key
    assert body["ingest"]["streamKey"] == new_key
    assert body["channel"]["playbackId"] == created["channel"]["playbackId"]
    _, stored = stored_channel(dynamodb, channel_id)
    assert stored.verify_stream_key(new_key)
    assert not stored.verify_stream_key(old_key)
    assert stored.key_rotated_at > stored.created_at


@pytest.mark.parametrize("channel_id", ["OTHER", "zzzzzzzzzzzz", "bad id with spaces", "x" * 300])
def test_rotate_of_someone_elses_or_unknown_channel_is_404(dynamodb: Any, channel_id: str) -> None:
    others = create(subject="user-2")
    target = others["channel"]["channelId"] if channel_id == "OTHER" else channel_id
    status, _, body = call("POST", f"/api/channels/{target}/rotate-key", token=token_for("user-1"))
    assert status == 404
    assert body["error"]["code"] == "not_found"
    _, stored = stored_channel(dynamodb, others["channel"]["channelId"])
    assert stored.verify_stream_key(others["streamKey"])  # untouched


def test_concurrent_rotation_loses_with_409(dynamodb: Any) -> None:
    created = create()
    channel_id = created["channel"]["channelId"]
    stale_item, _ = stored_channel(dynamodb, channel_id)
    assert call("POST", f"/api/channels/{channel_id}/rotate-key", token=token_for())[0] == 200

    class StaleReads:
        """The real client, except that reads return the item as it was before the other rotation."""

        def __init__(self, real: Any) -> None:
            self._real = real

        def get_item(self, **kwargs: Any) -> dict[str, Any]:
            return {"Item": stale_item}

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    api_handler.app.dependency_overrides[deps.get_dynamodb] = lambda: StaleReads(dynamodb)
    status, _, body = call("POST", f"/api/channels/{channel_id}/rotate-key", token=token_for())
    assert status == 409
    assert body["error"]["code"] == "conflict"


def test_owner_renames_a_channel_and_its_stream_card(dynamodb: Any) -> None:
    """The channel item and the stream item's title change; a running broadcast's manifests don't undo it."""
    created = create("Old name")
    channel_id, playback_id = created["channel"]["channelId"], created["channel"]["playbackId"]
    started = SessionManifestBody(
        channel_id=channel_id,
        playback_id=playback_id,
        session_id=new_session_id(),
        started_at=datetime.now(UTC),
        title="Old name",  # the node read the channel when the publisher connected
    )
    dynamodb.update_item(TableName=TABLE, **catalog.stream_update(started, keys.ManifestKind.STARTED))

    status, headers, body = call("PATCH", f"/api/channels/{channel_id}", body={"name": " New name "}, token=token_for())
    assert status == 200, body
    assert headers["cache-control"] == "no-store"
    assert body == {**created["channel"], "name": "New name"}
    assert stored_channel(dynamodb, channel_id)[1].name == "New name"
    assert _stream_title(dynamodb, playback_id) == "New name"

    ended = started.model_copy(update={"revision": 1, "ended_at": datetime.now(UTC)})
    dynamodb.update_item(TableName=TABLE, **catalog.stream_update(ended, keys.ManifestKind.ENDED))
    assert _stream_title(dynamodb, playback_id) == "New name"  # not the title the broadcast started with
    status, _, mine = call("GET", "/api/channels/me", token=token_for())
    assert [c["name"] for c in mine["channels"]] == ["New name"]


def test_renaming_a_channel_that_never_went_live_creates_no_stream(dynamodb: Any) -> None:
    created = create("Quiet")
    channel_id, playback_id = created["channel"]["channelId"], created["channel"]["playbackId"]
    status, _, body = call("PATCH", f"/api/channels/{channel_id}", body={"name": "Still quiet"}, token=token_for())
    assert (status, body["name"]) == (200, "Still quiet")
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=table.stream_key(playback_id))


@pytest.mark.parametrize("channel_id", ["OTHER", "zzzzzzzzzzzz", "bad id with spaces", "x" * 300])
def test_rename_of_someone_elses_or_unknown_channel_is_404(dynamodb: Any, channel_id: str) -> None:
    others = create("Theirs", subject="user-2")
    target = others["channel"]["channelId"] if channel_id == "OTHER" else channel_id
    status, _, body = call("PATCH", f"/api/channels/{target}", body={"name": "Mine now"}, token=token_for("user-1"))
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert stored_channel(dynamodb, others["channel"]["channelId"])[1].name == "Theirs"
    assert dynamodb.scan(TableName=TABLE)["Count"] == 1  # no item was created for an unknown id


def _stream_title(dynamodb: Any, playback_id: str) -> str:
    item = dynamodb.get_item(TableName=TABLE, Key=table.stream_key(playback_id), ConsistentRead=True)["Item"]
    return item["title"]["S"]


def test_channel_limit_per_owner(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_routes, "MAX_CHANNELS_PER_OWNER", 2)
    create("a"), create("b")
    status, _, body = call("POST", "/api/channels", body={"name": "c"}, token=token_for())
    assert status == 409
    assert body["error"]["code"] == "limit_exceeded"
    assert create("mine", subject="user-2")  # the limit is per owner


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        (None, "body"),
        ("{}", "body.name"),
        (json.dumps({"name": "x" * 101}), "body.name"),
        (json.dumps({"name": ""}), "body.name"),
        (json.dumps({"name": "   "}), "body.name"),
        (json.dumps({"name": "line\nbreak"}), "body.name"),
        (json.dumps({"name": 123}), "body.name"),
        (json.dumps({"name": ["a"]}), "body.name"),
        (json.dumps({"name": "ok", "owner": "someone-else"}), "body.owner"),
        ('{"name": "ok"} trailing garbage', "body"),
        ("not json at all", "body"),
        ("[]", "body"),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/api/channels"), ("PATCH", "/api/channels/abcdefghijkl")])
def test_bad_payload_is_422_naming_the_field(
    api_env: Any, raw_body: str | None, field: str, method: str, path: str
) -> None:
    """Creating and renaming validate a name the same way (an empty PATCH names no field: it changes nothing)."""
    if method == "PATCH" and raw_body == "{}":
        field = "body"
    status, headers, body = call(method, path, raw_body=raw_body, token=token_for())
    assert status == 422, body
    assert headers["cache-control"] == "no-store"
    error = body["error"]
    assert error["code"] == "validation_error"
    assert field in [f["field"] for f in error["fields"]]
    assert all(set(f) == {"field", "message"} for f in error["fields"])


def test_validation_errors_never_echo_the_input(api_env: Any) -> None:
    secret_looking = "live_abcdefghijkl_" + "S" * 200
    status, _, body = call("POST", "/api/channels", body={"name": secret_looking}, token=token_for())
    assert status == 422
    assert "SSSS" not in json.dumps(body)


# ------------------------------------------------------------------------------------------------ auth


def _expired_token() -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iat": now - 3600, "exp": now - 120, "iss": ISSUER, "aud": AUDIENCE}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _claims_token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iat": now, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE, **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer " + _expired_token(),
        "Bearer " + issue_token(OTHER_SECRET, "user-1", 600),
        "Bearer " + _claims_token(aud="someone-else"),
        "Bearer " + _claims_token(iss="someone-else"),
        "Bearer " + _claims_token(sub=None),
        "Bearer " + _claims_token(exp=None),
        "Bearer " + _claims_token(sub="x" * 300),
        "Bearer " + jwt.encode({"sub": "user-1", "exp": int(time.time()) + 600}, None, algorithm="none"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/channels"),
        ("GET", "/api/channels/me"),
        ("PATCH", "/api/channels/abcdefghijkl"),
        ("GET", "/api/channels/abcdefghijkl/recordings"),
    ],
)
def test_owner_endpoints_reject_missing_or_bad_tokens(dynamodb: Any, authorization, method, path) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    status, response_headers, body = call(method, path, body={"name": "x"}, headers=headers)
    assert status == 401
    assert response_headers["www-authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"] in ("missing bearer token", "invalid or expired bearer token")
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0


def test_expiry_allows_clock_skew_leeway(dynamodb: Any) -> None:
    token = _claims_token(exp=int(time.time()) - 10)
    assert call("GET", "/api/channels/me", token=token)[0] == 200


def test_issue_token_round_trip() -> None:
    token = issue_token(SECRET, "user-9", 60, name="Nine")
    assert verify_token(SECRET, token) == User(id="user-9", name="Nine")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == 60
    with pytest.raises(ValueError):
        issue_token(SECRET, "", 60)
    with pytest.raises(ValueError):
        issue_token(SECRET, "user", 0)


# ------------------------------------------------------------------------------------------------ status, docs


def test_status_ok_with_table(dynamodb: Any) -> None:
    status, headers, body = call("GET", "/api/status")
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"table": "ok"}
    assert body["version"]
    assert "time" in body


def test_status_503_without_table(api_env: Any) -> None:
    status, _, body = call("GET", "/api/status")
    assert status == 503
    assert body["status"] == "error"
    assert body["checks"] == {"table": "error"}


def test_docs_and_openapi_are_served(api_env: Any) -> None:
    status, headers, html = call("GET", "/docs")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "/openapi.json" in html
    status, _, spec = call("GET", "/openapi.json")
    assert status == 200
    assert spec["info"]["title"] == "CaptureStream"
    operation_ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert "channels-create_channel" in operation_ids
    assert set(spec["paths"]) >= {"/api/status", "/api/channels", "/api/channels/me"}
    assert "bearerAuth" in json.dumps(spec) or "HTTPBearer" in json.dumps(spec)


def test_unknown_route_and_method_are_json_errors(api_env: Any) -> None:
    status, _, body = call("GET", "/api/nope")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, _, body = call("DELETE", "/api/status")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


def test_unexpected_errors_are_opaque_500s(api_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def query(self, **kwargs: Any) -> Any:
            raise RuntimeError("internal detail that must not leak")

    api_handler.app.dependency_overrides[deps.get_dynamodb] = Broken
    with caplog.at_level(logging.ERROR):
        status, _, body = call("GET", "/api/channels/me", token=token_for())
    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert "internal detail" in caplog.text  # logged for operators, not returned


# ------------------------------------------------------------------------------------------------ secrecy, CORS


def test_no_key_hash_or_token_in_logs(dynamodb: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Our code and Mangum at DEBUG, everything else at INFO.

    botocore's own DEBUG wire logs print request/response bodies (so the stored hash); they must stay off.
    """
    token = token_for()
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="functions.api")
    caplog.set_level(logging.DEBUG, logger="mangum")
    with caplog.at_level(logging.INFO):
        created = create()
        channel_id = created["channel"]["channelId"]
        _, _, rotated = call("POST", f"/api/channels/{channel_id}/rotate-key", token=token)
        call("GET", "/api/channels/me", token=token)
        call("GET", "/api/channels/me", token=token + "x")
    secrets = [created["streamKey"], rotated["streamKey"], token]
    secrets += [hash_stream_key(k) for k in secrets[:2]]
    assert any(r.name.startswith("functions.api") for r in caplog.records), "expected our own log records"
    dumped = caplog.text + "".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    for secret in secrets:
        assert secret not in dumped
        assert secret[-16:] not in dumped


def test_cors_preflight_honours_the_allowlist(api_env: Any) -> None:
    preflight = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    status, headers, _ = call("OPTIONS", "/api/channels", headers=preflight)
    assert status == 200
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in headers

    status, headers, _ = call("OPTIONS", "/api/channels", headers={**preflight, "origin": "http://evil.test"})
    assert status == 400
    assert "access-control-allow-origin" not in headers


def test_cors_simple_request_gets_the_origin_only_when_allowed(dynamodb: Any) -> None:
    _, headers, _ = call("GET", "/api/status", headers={"origin": ORIGIN})
    assert headers["access-control-allow-origin"] == ORIGIN
    _, headers, _ = call("GET", "/api/status", headers={"origin": "http://evil.test"})
    assert "access-control-allow-origin" not in headers


async def test_handler_refuses_to_run_inside_an_event_loop(api_env: Any) -> None:
    with pytest.raises(RuntimeError, match="synchronous"):
        api_handler.handler(event("GET", "/api/status"), None)
    response = await asyncio.to_thread(api_handler.handler, event("GET", "/openapi.json"), None)
    assert response["statusCode"] == 200
