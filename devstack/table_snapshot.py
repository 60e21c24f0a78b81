"""Keeps the embedded DynamoDB table across ``capturestream up`` restarts (moto keeps nothing on disk).

Without this, every restart would forget channels, so a streamer's OBS key would stop working. The table is
saved to ``<state-dir>/table.json`` (DynamoDB wire-format items) periodically and on a clean stop, and loaded
back right after provisioning, before any event source starts (so stream consumers starting at LATEST don't
replay the restore).

Rules:
- Writes are atomic (temp file + rename): a crash mid-save leaves the previous snapshot.
- Only the embedded moto endpoint is snapshotted; an external endpoint (LocalStack, a real account) keeps its
  own data.
- Media objects in S3 are not covered here (recordings get their own durability with the recording issue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "table.json"
_BATCH = 25  # BatchWriteItem limit


async def save(dynamodb: Any, table_name: str, path: Path) -> int:
    """Scan ``table_name`` into ``path``; return the number of items saved."""
    items: list[dict[str, Any]] = []
    paginator = dynamodb.get_paginator("scan")
    async for page in paginator.paginate(TableName=table_name, ConsistentRead=True):
        items.extend(page.get("Items", []))
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"table": table_name, "items": items}, handle)
    os.replace(temporary, path)
    return len(items)


async def restore(dynamodb: Any, table_name: str, path: Path) -> int:
    """Write every item of the snapshot at ``path`` back into ``table_name``; return how many."""
    if not path.exists():
        return 0
    items = json.loads(path.read_text())["items"]
    for start in range(0, len(items), _BATCH):
        pending = {table_name: [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]}
        for attempt in range(8):
            response = await dynamodb.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            await asyncio.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"could not restore {len(pending[table_name])} items into {table_name}")
    return len(items)


class TableSnapshotter:
    """Restores the table on start, then saves it every ``interval`` seconds and once more on stop."""

    def __init__(self, dynamodb: Any, table_name: str, state_dir: Path, *, interval: float = 30.0) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._path = state_dir / SNAPSHOT_FILE
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Restore the last snapshot and start periodic saves; return the number of items restored."""
        restored = await restore(self._dynamodb, self._table, self._path)
        if restored:
            log.info("restored %d items into %s from %s", restored, self._table, self._path)
        self._task = asyncio.create_task(self._loop(), name="table-snapshot")
        return restored

    async def stop(self) -> None:
        """Stop periodic saves and save one last time."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        saved = await save(self._dynamodb, self._table, self._path)
        log.info("saved %d items of %s to %s", saved, self._table, self._path)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await save(self._dynamodb, self._table, self._path)
            except Exception:  # a failed periodic save must not stop the stack; the next one retries
                log.exception("periodic table snapshot failed")
