"""The node's HTTP listener outside playback: ``/healthz`` tells a load balancer when the node shuts down."""

from __future__ import annotations

import aiohttp

from ingest_node.http_app import NodeHttp


async def test_healthz_is_503_once_the_node_drains() -> None:
    http = NodeHttp()
    port = await http.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            http.draining = True
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 503 and await response.text() == "shutting down\n"
            async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200  # still served while the broadcasts end
    finally:
        await http.close()
