"""The ``capturestream`` command: run the local system and talk to a running one.

Commands find a running system through ``--state-dir`` (default ``.capturestream/``), where ``up`` writes
``stack.json`` (every endpoint) and ``dev-token`` (a bearer token for the local owner). Channel commands go
through the REST API like any client would.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import StackConfig

STACK_FILE = "stack.json"
TOKEN_FILE = "dev-token"


class CliError(Exception):
    """A problem to report in one line and exit 1."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``capturestream`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CliError as error:
        print(f"capturestream: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="capturestream", description="CaptureStream: self-hostable live streaming")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole local system in the foreground (Ctrl-C stops it)")
    for name, field in StackConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"CAPTURESTREAM_{name.upper()}"
        up.add_argument(flag, default=None, help=f"{field.description or ''} (env {env}, default {field.default})")
    up.set_defaults(run=_cmd_up)

    channel = commands.add_parser("channel", help="manage channels on the running system").add_subparsers(
        dest="action", required=True
    )
    create = channel.add_parser("create", help="create a channel; prints its stream key (shown once)")
    create.add_argument("name")
    create.set_defaults(run=_cmd_channel_create)
    listing = channel.add_parser("list", help="list your channels")
    listing.set_defaults(run=_cmd_channel_list)
    rotate = channel.add_parser("rotate-key", help="issue a new stream key; the old one stops working")
    rotate.add_argument("channel_id")
    rotate.set_defaults(run=_cmd_channel_rotate)

    status = commands.add_parser("status", help="show the running system's endpoints and health")
    status.set_defaults(run=_cmd_status)
    token = commands.add_parser("token", help="print the local owner's bearer token")
    token.set_defaults(run=_cmd_token)

    for sub in (create, listing, rotate, status, token):
        sub.add_argument("--state-dir", type=Path, default=None, help="where `up` keeps stack.json")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _cmd_up(args: argparse.Namespace) -> int:
    from .stack import run  # imported here: `channel create` should not pay for the stack's imports

    overrides = {name: getattr(args, name) for name in StackConfig.model_fields if getattr(args, name) is not None}
    try:
        config = StackConfig(**overrides)
    except ValidationError as error:
        raise CliError(f"invalid option: {error}") from None
    return run(config)


def _state_dir(args: argparse.Namespace) -> Path:
    return args.state_dir or StackConfig().state_dir


def load_stack(state_dir: Path) -> dict[str, Any]:
    """The endpoints of the system running from ``state_dir``."""
    try:
        return json.loads((state_dir / STACK_FILE).read_text())
    except FileNotFoundError:
        raise CliError(f"no running system found in {state_dir}/ (start one with `capturestream up`)") from None


def _api(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
    state_dir = _state_dir(args)
    stack = load_stack(state_dir)
    token = (state_dir / TOKEN_FILE).read_text().strip()
    request = urllib.request.Request(
        stack["api_url"] + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}").get("error", {})
        raise CliError(f"{method} {path} failed: {error.code} {detail.get('message', error.reason)}") from None
    except urllib.error.URLError as error:
        raise CliError(f"cannot reach the API at {stack['api_url']}: {error.reason}") from None


def _print_channel(created: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(created))
        return
    channel = created["channel"]
    print(f"Channel   {channel['name']} ({channel['channelId']})")
    print(f"Server    {created['ingest']['server']}   (OBS: Settings → Stream → Service: Custom)")
    print(f"Stream key {created['streamKey']}   (shown once; keep it secret)")
    print(f"Watch     {created['watchUrl']}")


def _cmd_channel_create(args: argparse.Namespace) -> int:
    _print_channel(_api(args, "POST", "/api/channels", {"name": args.name}), args.json)
    return 0


def _cmd_channel_rotate(args: argparse.Namespace) -> int:
    _print_channel(_api(args, "POST", f"/api/channels/{args.channel_id}/rotate-key", {}), args.json)
    return 0


def _cmd_channel_list(args: argparse.Namespace) -> int:
    result = _api(args, "GET", "/api/channels/me")
    if args.json:
        print(json.dumps(result))
        return 0
    for channel in result.get("channels", []):
        print(f"{channel['channelId']}  {channel['name']}  playback {channel['playbackId']}")
    return 0


def live_streams(ws_url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The live streams, asked the way the web app asks: ``getStreams`` over the WebSocket API."""
    import asyncio

    import aiohttp

    async def ask() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, timeout=timeout) as ws:
            await ws.send_str(json.dumps({"type": "getStreams"}))
            reply = json.loads((await ws.receive(timeout=timeout)).data)
            return reply.get("streams", [])

    try:
        return asyncio.run(ask())
    except (OSError, TimeoutError, ValueError, aiohttp.ClientError) as error:
        raise CliError(f"cannot ask {ws_url} for the live streams: {error}") from None


def _cmd_status(args: argparse.Namespace) -> int:
    stack = load_stack(_state_dir(args))
    health = _api(args, "GET", "/api/status")
    streams = live_streams(stack["ws_url"])
    if args.json:
        print(json.dumps({"stack": stack, "status": health, "streams": streams}))
        return 0
    for name, value in stack.items():
        print(f"{name:<14} {value}")
    print(f"{'api status':<14} {health.get('status')}")
    print(f"{'live streams':<14} {len(streams)}")
    for stream in streams:
        print(
            f"  {stream['streamId']}  {stream.get('status', 'live'):<12} {stream.get('viewerCount', 0):>5} watching"
            f"  {stream.get('title') or '-'}  since {stream.get('startedAt', '?')}  {stream.get('playbackUrl', '')}"
        )
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    load_stack(state_dir)
    token = (state_dir / TOKEN_FILE).read_text().strip()
    print(json.dumps({"token": token}) if args.json else token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
