"""What ``up`` tells the web app (``/config.json``) and the developer (the banner) about the ingest node."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import Endpoints, banner, web_runtime_config


def endpoints(*, capture_ws_url: str | None) -> Endpoints:
    return Endpoints(
        s3_endpoint="http://127.0.0.1:4566",
        region="us-east-1",
        bucket="media",
        rtmp_url="rtmp://127.0.0.1:1935/live",
        api_url="http://127.0.0.1:8000",
        ws_url="ws://127.0.0.1:3001/dev",
        web_url="http://127.0.0.1:8000",
        cdn_url="http://127.0.0.1:8000",
        capture_ws_url=capture_ws_url,
        ingest_http_url="http://127.0.0.1:41234",
    )


def test_playback_url_is_the_node_http_origin_with_go_live_off() -> None:
    """``--capture-port 0`` turns go-live off, not the node's HTTP listener: the low-latency modes still play."""
    config = web_runtime_config(endpoints(capture_ws_url=None))
    assert config["captureWsUrl"] is None
    assert config["playbackUrl"] == "http://127.0.0.1:41234"


def test_playback_url_does_not_come_from_the_go_live_socket() -> None:
    config = web_runtime_config(endpoints(capture_ws_url="ws://127.0.0.1:8090/capture"))
    assert config["captureWsUrl"] == "ws://127.0.0.1:8090/capture"
    assert config["playbackUrl"] == "http://127.0.0.1:41234"


def test_stack_json_names_the_node_http_origin() -> None:
    assert endpoints(capture_ws_url=None).as_dict()["ingest_http_url"] == "http://127.0.0.1:41234"


def test_banner_shows_the_low_latency_origin() -> None:
    text = banner(endpoints(capture_ws_url=None), 1.0, Path("/tmp/state"), "token")
    assert "http://127.0.0.1:41234/live/<playbackId>.flv" in text
    assert "off (--capture-port 0)" in text
