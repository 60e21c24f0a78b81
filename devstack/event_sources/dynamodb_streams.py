"""The DynamoDB Streams event source mapping: read each shard in order, invoke, checkpoint, retry.

Rules (AWS Lambda Developer Guide: with-ddb, services-ddb-params, services-ddb-batchfailurereporting,
services-dynamodb-errors):
    * Shards are discovered at ``start()`` (iterators at ``starting_position`` are taken before ``start()``
      returns, so LATEST means "from now") and then every ``shard_discovery_interval`` seconds; shards
      found later are read from TRIM_HORIZON, and a child shard waits until its parent is finished.
    * One consumer per shard reads in sequence order. When a fetch returned records the next one follows
      immediately; an idle shard is polled every ``poll_interval`` seconds, and every
      ``idle_poll_interval`` seconds (Lambda's base rate: 4 times a second) once it has been idle for
      ``idle_after`` seconds. The slower idle rate exists because moto keeps every shard iterator it ever
      issued (about 2 KB per GetRecords call, never freed).
    * Where the endpoint serves the devstack's stream-change wait (the embedded moto child, see
      :mod:`.change_feed`), an idle shard is not polled at all: its consumer waits until a write is stored (at
      most ``feed_fallback`` seconds), then reads, never sooner than ``poll_interval`` after its previous read,
      so a busy table is still read at most every ``poll_interval``; shard discovery waits for writes too.
    * A source with a batching window reads at Lambda's own rate, every ``idle_poll_interval`` at most, instead
      of every ``poll_interval``: its batches wait out the window anyway, and on a busy table (30 streams: ~25
      writes a second) reading 25 times a second to gather, or to find every record filtered out, cost the
      endpoint and ``up`` ~5 ms of CPU a read.
    * A failed GetRecords (expired or unknown iterator, endpoint error) re-acquires the iterator after the
      last record read, so nothing is skipped; only a shard with nothing read yet restarts at its
      starting position.
    * ``FilterCriteria`` patterns are applied here, as Lambda's pollers do, and also sent along with each
      GetRecords (a devstack header the embedded moto child honours, :mod:`devstack.moto_tuning`): the endpoint
      then leaves out what the patterns would drop, so those records are neither serialized nor parsed, and
      reports how many it left out (counted as ``filtered``) and the last sequence number it read.
    * The event is exactly Lambda's: ``{"Records": [{eventID, eventName, eventVersion, eventSource,
      awsRegion, dynamodb: {ApproximateCreationDateTime (epoch seconds), Keys, NewImage, OldImage,
      SequenceNumber, SizeBytes, StreamViewType}, eventSourceARN}]}`` with binary values base64-encoded.
    * A failed batch blocks its shard and is retried (with a small backoff) up to
      ``maximum_retry_attempts`` times (-1: forever), then discarded; an invocation record
      (``DDBStreamBatchInfo``) goes to ``on_failure_queue_url`` if set. The records themselves are not sent.
    * ``bisect_on_function_error`` halves a failing batch before retrying; splitting does not count as a
      retry. With ``report_batch_item_failures`` the checkpoint moves to the lowest reported sequence number
      and only the records from there on are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

from devstack.event_sources._base import TRANSIENT_ERRORS, Backoff, EventSource, SourceStats
from devstack.event_sources.batch_response import InvalidBatchResponse, failed_item_identifiers
from devstack.event_sources.change_feed import StreamChangeFeed
from devstack.event_sources.filters import RecordFilter
from devstack.event_sources.stream_records import on_failure_record, stream_record
from devstack.lambda_runtime import FunctionError, LocalFunction
from devstack.moto_tuning import FILTER_HEADER, FILTERED_HEADER, LAST_SEQUENCE_HEADER

__all__ = ["DynamoDbStreamEventSource", "StreamStats"]

logger = logging.getLogger(__name__)

_MAX_GET_RECORDS = 1000  # GetRecords limit per call


@dataclass
class StreamStats(SourceStats):
    """Stream counters: ``retries`` of failed batches, ``discarded_*`` after retries ran out, ``filtered`` records
    that matched no ``FilterCriteria`` pattern."""

    retries: int = 0
    discarded_batches: int = 0
    discarded_records: int = 0
    on_failure_sent: int = 0
    filtered: int = 0


class DynamoDbStreamEventSource(EventSource):
    """Deliver a DynamoDB stream's records to a :class:`LocalFunction` like a Lambda event source mapping.

    Args:
        stream_arn: The table's stream ARN (``LatestStreamArn``).
        function: The function to invoke.
        batch_size: Maximum records per invocation (1-10000; Lambda's default is 100).
        starting_position: ``"LATEST"`` or ``"TRIM_HORIZON"`` for the shards open at ``start()``.
        maximum_retry_attempts: Retries of a failed batch before it is discarded; -1 retries forever.
        bisect_on_function_error: Halve a batch after a function error before retrying it.
        report_batch_item_failures: ``FunctionResponseTypes: [ReportBatchItemFailures]``.
        on_failure_queue_url: SQS queue that receives an invocation record for each discarded batch.
        poll_interval: Seconds between GetRecords calls on a shard that had records recently.
        idle_poll_interval: Seconds between GetRecords calls once a shard is idle (set it equal to
            ``poll_interval`` to always poll fast).
        idle_after: Seconds without records after which a shard counts as idle.
        shard_discovery_interval: Seconds between DescribeStream calls looking for new shards.
        change_feed: Wait for writes through the endpoint's stream-change feed where it has one (else poll).
        feed_fallback: Longest wait for the feed before a shard is read anyway (seconds).
        endpoint_url: Explicit endpoint (default: standard botocore resolution).
        stop_grace: Seconds ``stop()`` lets an in-progress batch finish.
    """

    def __init__(
        self,
        stream_arn: str,
        function: LocalFunction,
        *,
        batch_size: int = 100,
        starting_position: Literal["LATEST", "TRIM_HORIZON"] = "LATEST",
        maximum_retry_attempts: int = -1,
        bisect_on_function_error: bool = False,
        report_batch_item_failures: bool = True,
        on_failure_queue_url: str | None = None,
        poll_interval: float = 0.04,
        idle_poll_interval: float = 0.25,
        idle_after: float = 30.0,
        shard_discovery_interval: float = 1.0,
        endpoint_url: str | None = None,
        stop_grace: float = 0.8,
        filter_patterns: tuple[str, ...] = (),
        maximum_batching_window: float = 0.0,
        change_feed: bool = True,
        feed_fallback: float = 10.0,
    ) -> None:
        if not 0 <= maximum_batching_window <= 300:
            raise ValueError("maximum_batching_window must be 0-300 seconds")
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be 1-10000")
        if starting_position not in ("LATEST", "TRIM_HORIZON"):
            raise ValueError("starting_position must be LATEST or TRIM_HORIZON")
        if not -1 <= maximum_retry_attempts <= 10_000:
            raise ValueError("maximum_retry_attempts must be -1 (forever) or 0-10000")
        self.region = stream_arn.split(":")[3]
        super().__init__("dynamodbstreams", endpoint_url=endpoint_url, region_name=self.region, stop_grace=stop_grace)
        self.stream_arn = stream_arn
        self.function = function
        self.batch_size = batch_size
        self.starting_position = starting_position
        self.maximum_retry_attempts = maximum_retry_attempts
        self.bisect_on_function_error = bisect_on_function_error
        self.report_batch_item_failures = report_batch_item_failures
        self.on_failure_queue_url = on_failure_queue_url
        self.poll_interval = poll_interval
        self.idle_poll_interval = idle_poll_interval
        #: Seconds between reads of a busy shard (see the module rules).
        self.read_interval = (
            poll_interval
            if maximum_batching_window <= 0
            else max(poll_interval, min(idle_poll_interval, maximum_batching_window))
        )
        self.idle_after = idle_after
        self.shard_discovery_interval = shard_discovery_interval
        self.record_filter = RecordFilter(filter_patterns)
        self._filter_header = json.dumps(list(filter_patterns)) if filter_patterns else None
        self.maximum_batching_window = maximum_batching_window
        self._stats = StreamStats()
        self._sqs: Any = None
        self._shards: dict[str, asyncio.Task[None]] = {}
        self._initial: list[tuple[dict[str, Any], str | None]] = []
        self.change_feed = change_feed
        self.feed_fallback = feed_fallback
        self._feed: StreamChangeFeed | None = None

    def __str__(self) -> str:
        table = self.stream_arn.split(":table/", 1)[-1].split("/", 1)[0]
        return f"DynamoDbStreamEventSource({table} -> {self.function.name})"

    @property
    def stats(self) -> StreamStats:
        """The source's counters."""
        return self._stats

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        if self._filter_header is not None:
            self.client.meta.events.register("before-sign.dynamodb-streams.GetRecords", self._send_patterns)
        if self.on_failure_queue_url:
            self._sqs = await self._open_client(stack, "sqs")
        self._shards = {}
        self._initial = []
        self._feed = None
        if self.change_feed:
            feed = StreamChangeFeed(self.client.meta.endpoint_url)
            if await feed.open(stack):
                self._feed = feed
        for shard in await self._describe_shards():
            iterator = await self._iterator(shard["ShardId"], self.starting_position)
            self._initial.append((shard, iterator))

    def _send_patterns(self, request: Any, **_: Any) -> None:
        """botocore hook: the FilterCriteria patterns go along with each GetRecords (see the module rules)."""
        request.headers[FILTER_HEADER] = self._filter_header

    def _workers(self) -> list[Awaitable[None]]:
        for shard, iterator in self._initial:
            self._start_shard(shard, iterator, self.starting_position)
        feed = self._feed
        return [self._discover_loop()] + ([self._until_stopped(feed.follow())] if feed is not None else [])

    @property
    def feed_version(self) -> int:
        """The stream-change version now (-1 without a feed); a consumer notes it before each read."""
        return self._feed.version if self._feed is not None and self._feed.available else -1

    async def _wait_for_writes(self, seen: int, fallback: float) -> bool:
        """With a feed: wait for a write beyond version ``seen`` (at most ``fallback`` s); False without a feed.
        Returns True when the wait happened (the caller then reads), False when the caller must poll."""
        feed = self._feed
        if feed is None or not feed.available:
            return False
        await self._until_stopped(feed.wait_beyond(seen, fallback))
        return True

    def _start_shard(self, shard: dict[str, Any], iterator: str | None, position: str) -> None:
        parent = self._shards.get(shard.get("ParentShardId", ""))
        consumer = _ShardConsumer(self, shard["ShardId"], iterator, position, parent)
        self._shards[shard["ShardId"]] = self._spawn(consumer.run(), name=f"{self}-{shard['ShardId']}")

    async def _discover_loop(self) -> None:
        backoff = Backoff(initial=0.5, maximum=5.0)
        seen = self.feed_version
        while not await self._sleep(self.shard_discovery_interval):
            # moto adds shards only with writes: wait for one (a shard poll reads at least every fallback)
            await self._wait_for_writes(seen, 3 * self.feed_fallback)
            seen = self.feed_version
            try:
                shards = await self._describe_shards()
            except TRANSIENT_ERRORS as exc:
                await self._endpoint_error(backoff, "DescribeStream", exc)
                continue
            backoff.reset()
            for shard in shards:
                if shard["ShardId"] not in self._shards:
                    logger.info("%s: new shard %s", self, shard["ShardId"])
                    self._start_shard(shard, None, "TRIM_HORIZON")

    async def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = (await self.client.describe_stream(**params))["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            params["ExclusiveStartShardId"] = last

    async def _iterator(self, shard_id: str, iterator_type: str, sequence_number: str | None = None) -> str | None:
        params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id, "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            params["SequenceNumber"] = sequence_number
        return (await self.client.get_shard_iterator(**params)).get("ShardIterator")

    async def _send_on_failure(
        self, shard_id: str, batch: list[dict[str, Any]], attempts: int, unhandled: bool
    ) -> None:
        """Send the invocation record of a discarded batch to the on-failure queue (best effort)."""
        if self._sqs is None:
            return
        document = on_failure_record(
            function_arn=self.function.arn,
            stream_arn=self.stream_arn,
            shard_id=shard_id,
            batch=batch,
            attempts=attempts,
            unhandled=unhandled,
        )
        try:
            await self._sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(document))
        except TRANSIENT_ERRORS as exc:
            logger.error("%s: could not send the on-failure record for shard %s: %s", self, shard_id, exc)
            return
        self._stats.on_failure_sent += 1


class _ShardConsumer:
    """Reads one shard in order and delivers batches, blocking on failures (Lambda's per-shard poller)."""

    def __init__(
        self,
        source: DynamoDbStreamEventSource,
        shard_id: str,
        iterator: str | None,
        position: str,
        parent: asyncio.Task[None] | None,
    ) -> None:
        self.source = source
        self.shard_id = shard_id
        self.iterator = iterator
        self.position = position
        self.parent = parent
        self.buffer: list[dict[str, Any]] = []
        self.gathering_since: float | None = None  # loop time the current batch's first record was buffered
        self.last_sequence: str | None = None
        self.attempts = 0
        self.limit = source.batch_size
        self.retry_backoff = Backoff(initial=0.05, maximum=2.0)
        self.needs_iterator = iterator is None
        self.last_records_at = 0.0
        self.seen_version = -1  # the stream-change version noted before the last read
        self.read_at = 0.0  # loop time of the last read

    async def run(self) -> None:
        """Consume the shard until it is closed and drained, or the source stops."""
        source = self.source
        if self.parent is not None:  # a child shard waits for its parent (per-key ordering)
            await source._until_stopped(asyncio.shield(self.parent))
        loop = asyncio.get_running_loop()
        self.last_records_at = loop.time()
        backoff = Backoff()
        while not source.stopping:
            if self.needs_iterator or (self.iterator is not None and len(self.buffer) < source.batch_size):
                self.seen_version, self.read_at = source.feed_version, loop.time()
                try:
                    await self._fetch()
                except TRANSIENT_ERRORS as exc:
                    self.needs_iterator = True
                    await source._endpoint_error(backoff, f"GetRecords({self.shard_id})", exc)
                    continue
                backoff.reset()
            if self.buffer and self._gathering(loop.time()):
                if await source._sleep(source.read_interval):
                    return
            elif self.buffer:
                self.last_records_at = loop.time()
                self.gathering_since = None
                await self._deliver_safely(self.buffer[: min(self.limit, source.batch_size)])
            elif self.iterator is None:
                logger.info("%s: shard %s is closed and fully processed", source, self.shard_id)
                return
            elif await self._idle(loop.time()):
                return

    def _gathering(self, now: float) -> bool:
        """True while a batch waits out ``maximum_batching_window`` (Lambda: the batch goes when the window
        ends, the batch is full, or the payload would exceed 6 MB; a retry never waits again)."""
        source = self.source
        if source.maximum_batching_window <= 0 or self.attempts or source.stopping:
            return False
        if len(self.buffer) >= source.batch_size:
            return False
        if self.gathering_since is None:
            self.gathering_since = now
        return now - self.gathering_since < source.maximum_batching_window

    async def _idle(self, now: float) -> bool:
        """Wait before the next read of an idle shard: for a write (feed) or a poll interval. True: stopping."""
        source = self.source
        if await source._wait_for_writes(self.seen_version, source.feed_fallback):
            return await source._sleep(self.read_at + source.read_interval - asyncio.get_running_loop().time())
        return await source._sleep(self._idle_delay(now))

    def _idle_delay(self, now: float) -> float:
        source = self.source
        idle = now - self.last_records_at >= source.idle_after
        return source.idle_poll_interval if idle else source.read_interval

    async def _new_iterator(self) -> str | None:
        """An iterator after the last record read, or at the starting position for a shard never read."""
        if self.last_sequence is None:
            return await self.source._iterator(self.shard_id, self.position)
        return await self.source._iterator(self.shard_id, "AFTER_SEQUENCE_NUMBER", self.last_sequence)

    async def _fetch(self) -> None:
        if self.needs_iterator:
            self.iterator = await self._new_iterator()
            self.needs_iterator = False
        client = self.source.client
        try:
            response = await client.get_records(ShardIterator=self.iterator, Limit=_MAX_GET_RECORDS)
        except client.exceptions.ExpiredIteratorException:
            self.needs_iterator = True
            return
        records = response.get("Records", [])
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if FILTERED_HEADER.lower() in headers:  # the endpoint applied the patterns already
            self.source.stats.filtered += int(headers[FILTERED_HEADER.lower()])
            self.last_sequence = headers.get(LAST_SEQUENCE_HEADER.lower(), self.last_sequence)
        elif records:
            self.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        if records:
            source = self.source
            if source.record_filter:  # FilterCriteria: unmatched records are consumed, never delivered
                shaped = [stream_record(r, source.stream_arn, source.region) for r in records]
                records = [
                    r for r, lambda_record in zip(records, shaped, strict=True) if source.record_filter(lambda_record)
                ]
                source.stats.filtered += len(shaped) - len(records)
            self.buffer.extend(records)
        self.iterator = response.get("NextShardIterator")

    async def _deliver_safely(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self._deliver(batch)
        except Exception:  # a bug here must not kill the shard's consumer: count it as a failed attempt
            logger.exception("%s: unexpected error delivering shard %s", self.source, self.shard_id)
            await self._retry_or_discard(batch, unhandled=True)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        source = self.source
        event = {"Records": [stream_record(record, source.stream_arn, source.region) for record in batch]}
        source.stats.invocations += 1
        source.stats.records += len(batch)
        try:
            response = await source.function.invoke(event)
        except FunctionError as exc:
            await self._function_failed(batch, exc)
            return
        try:
            failed = self._failed_sequence_numbers(batch, response)
        except InvalidBatchResponse as exc:
            logger.warning("%s: batch response treated as a complete failure: %s", source, exc)
            await self._retry_or_discard(batch, unhandled=False)
            return
        if not failed:
            del self.buffer[: len(batch)]
            self.attempts, self.limit = 0, source.batch_size
            self.retry_backoff.reset()
            return
        first_failed = min(
            index for index, record in enumerate(batch) if record["dynamodb"]["SequenceNumber"] in failed
        )
        del self.buffer[:first_failed]  # checkpoint at the lowest failed sequence number
        await self._retry_or_discard(batch[first_failed:], unhandled=False)

    def _failed_sequence_numbers(self, batch: list[dict[str, Any]], response: Any) -> set[str]:
        if not self.source.report_batch_item_failures:
            return set()
        sequence_numbers = {record["dynamodb"]["SequenceNumber"] for record in batch}
        return set(failed_item_identifiers(response, sequence_numbers))

    async def _function_failed(self, batch: list[dict[str, Any]], exc: FunctionError) -> None:
        source = self.source
        logger.warning(
            "%s: function failed on %d record(s) of shard %s (%s: %s)",
            source,
            len(batch),
            self.shard_id,
            exc.error_type,
            exc.error_message,
        )
        if source.bisect_on_function_error and len(batch) > 1:
            self.limit = len(batch) // 2  # splitting does not use up the retry quota
            source.stats.failures += 1
            return
        await self._retry_or_discard(batch, unhandled=True)

    async def _retry_or_discard(self, batch: list[dict[str, Any]], *, unhandled: bool) -> None:
        """Count a failed attempt of ``batch`` (now at the head of the buffer); discard it when out of retries."""
        source = self.source
        source.stats.failures += 1
        self.attempts += 1
        retries_left = source.maximum_retry_attempts == -1 or self.attempts <= source.maximum_retry_attempts
        if retries_left:
            source.stats.retries += 1
            await source._sleep(self.retry_backoff.next_delay())
            return
        logger.error(
            "%s: discarding %d record(s) of shard %s (%s-%s) after %d attempt(s)",
            source,
            len(batch),
            self.shard_id,
            batch[0]["dynamodb"]["SequenceNumber"],
            batch[-1]["dynamodb"]["SequenceNumber"],
            self.attempts,
        )
        source.stats.discarded_batches += 1
        source.stats.discarded_records += len(batch)
        await source._send_on_failure(self.shard_id, batch, self.attempts, unhandled)
        del self.buffer[: len(batch)]
        self.attempts, self.limit = 0, source.batch_size
        self.retry_backoff.reset()
