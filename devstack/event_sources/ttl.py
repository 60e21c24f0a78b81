"""DynamoDB Time to Live for emulators that store the TTL setting but never expire items (moto).

Rules (Amazon DynamoDB Developer Guide, "Time to Live", "Working with expired items"):
    * An item is expired when its TTL attribute is a top-level Number (epoch seconds) below the current
      time. Other types, and values more than five years in the past, are ignored, as DynamoDB does.
    * Every ``interval`` seconds the table is scanned for expired items and each is deleted with a
      condition that re-checks the expiry, so an item whose TTL was extended (or removed) since the scan
      is kept, just as DynamoDB keeps an item updated before its background deletion.
    * Deletions are ordinary DeleteItems, so they reach the table's stream as REMOVE records with the old
      image. Unlike AWS, they carry no ``userIdentity`` of the DynamoDB service principal.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from devstack.event_sources._base import TRANSIENT_ERRORS, Backoff, EventSource, SourceStats

__all__ = ["TtlStats", "TtlSweeper"]

logger = logging.getLogger(__name__)

_FIVE_YEARS = 5 * 365 * 24 * 3600


@dataclass
class TtlStats(SourceStats):
    """TTL counters: ``sweeps`` done, items ``expired`` (deleted) and ``kept`` (TTL changed meanwhile)."""

    sweeps: int = 0
    expired: int = 0
    kept: int = 0


class TtlSweeper(EventSource):
    """Periodically delete a table's expired items, as DynamoDB's TTL process would.

    Args:
        table_name: The table to sweep.
        ttl_attribute: The TTL attribute name (``TimeToLiveSpecification.AttributeName``).
        interval: Seconds between sweeps (the first sweep runs right after ``start()``).
        clock: Returns the current epoch time in seconds (injectable for tests).
        endpoint_url: Explicit endpoint (default: standard botocore resolution).
        region_name: Region of the table (default: the environment's).
        stop_grace: Seconds ``stop()`` lets a sweep in progress finish.
    """

    def __init__(
        self,
        table_name: str,
        ttl_attribute: str,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        stop_grace: float = 0.8,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        super().__init__("dynamodb", endpoint_url=endpoint_url, region_name=region_name, stop_grace=stop_grace)
        self.table_name = table_name
        self.ttl_attribute = ttl_attribute
        self.interval = interval
        self._clock = clock
        self._key_names: list[str] = []
        self._stats = TtlStats()

    def __str__(self) -> str:
        return f"TtlSweeper({self.table_name}.{self.ttl_attribute})"

    @property
    def stats(self) -> TtlStats:
        """The sweeper's counters."""
        return self._stats

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        table = (await self.client.describe_table(TableName=self.table_name))["Table"]
        self._key_names = [element["AttributeName"] for element in table["KeySchema"]]

    def _workers(self) -> list[Awaitable[None]]:
        return [self._sweep_loop()]

    async def _sweep_loop(self) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        while not self.stopping:
            try:
                await self.sweep()
            except TRANSIENT_ERRORS as exc:
                await self._endpoint_error(backoff, "TTL sweep", exc)
                continue
            backoff.reset()
            await self._sleep(self.interval)

    async def sweep(self) -> int:
        """Run one sweep now.

        Returns:
            The number of items deleted.
        """
        now = int(self._clock())
        deleted = 0
        async for key in self._expired_keys(now):
            if await self.expire(key, now):
                deleted += 1
        self._stats.sweeps += 1
        if deleted:
            logger.info("%s: deleted %d expired item(s)", self, deleted)
        return deleted

    async def expire(self, key: dict[str, Any], now: int) -> bool:
        """Delete one item if it is still expired at ``now``.

        Args:
            key: The item's primary key (DynamoDB JSON).
            now: The epoch second the expiry is judged against.

        Returns:
            True if the item was deleted, False if it no longer exists or is no longer expired.
        """
        try:
            await self.client.delete_item(
                TableName=self.table_name,
                Key=key,
                ConditionExpression="attribute_type(#ttl, :number) AND #ttl < :now AND #ttl >= :oldest",
                ExpressionAttributeNames={"#ttl": self.ttl_attribute},
                ExpressionAttributeValues=self._expiry_values(now),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            self._stats.kept += 1
            return False
        self._stats.expired += 1
        return True

    async def _expired_keys(self, now: int) -> Any:
        """Yield the keys of the items expired at ``now`` (paginated Scan, keys only)."""
        names = {f"#k{index}": name for index, name in enumerate(self._key_names)}
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "attribute_type(#ttl, :number) AND #ttl < :now AND #ttl >= :oldest",
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": {"#ttl": self.ttl_attribute, **names},
            "ExpressionAttributeValues": self._expiry_values(now),
        }
        while True:
            page = await self.client.scan(**params)
            for item in page.get("Items", []):
                yield {name: item[name] for name in self._key_names}
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _expiry_values(now: int) -> dict[str, Any]:
        return {":number": {"S": "N"}, ":now": {"N": str(now)}, ":oldest": {"N": str(now - _FIVE_YEARS)}}
