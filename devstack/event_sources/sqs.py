"""The SQS event source mapping: long-poll a queue, invoke a function, delete what succeeded.

Rules (AWS Lambda Developer Guide: with-sqs, services-sqs-scaling, services-sqs-errorhandling):
    * ``pollers`` receive loops per queue are always long-polling, so a message that lands is received at
      once (Lambda keeps 2-5 concurrent batches when traffic is low). Each loop processes its own batch.
    * The event is exactly Lambda's: ``{"Records": [{messageId, receiptHandle, body, attributes,
      messageAttributes, [md5OfMessageAttributes], md5OfBody, eventSource, eventSourceARN, awsRegion}]}``,
      with message attributes camel-cased, list values present and binary values base64-encoded.
    * Success deletes the whole batch. A function error (exception, timeout, marshal error) deletes
      nothing: the messages come back after the queue's visibility timeout and the queue's own
      RedrivePolicy moves them to the DLQ after ``maxReceiveCount`` receives.
    * With ``report_batch_item_failures`` every message except the reported ``itemIdentifier`` values is
      deleted; an unusable response fails the whole batch (see :mod:`.batch_response`). Without it the
      response is ignored.
    * As CreateEventSourceMapping does, ``start()`` rejects a queue whose visibility timeout is shorter than
      the function timeout, and ``batch_size`` > 10 without a batching window of at least 1 s.
    * Message bodies are never logged above DEBUG.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from devstack.event_sources._base import TRANSIENT_ERRORS, Backoff, EventSource, SourceStats
from devstack.event_sources.batch_response import InvalidBatchResponse, failed_item_identifiers
from devstack.lambda_runtime import FunctionError, LocalFunction

__all__ = ["SqsEventSource", "SqsStats", "sqs_record"]

logger = logging.getLogger(__name__)

_MAX_RECEIVE = 10  # SQS ReceiveMessage limit per call
_DELETE_ATTEMPTS = 3


@dataclass
class SqsStats(SourceStats):
    """SQS counters: ``deleted`` messages and ``partial_batches`` (batches with reported item failures)."""

    deleted: int = 0
    partial_batches: int = 0


class SqsEventSource(EventSource):
    """Deliver an SQS queue's messages to a :class:`LocalFunction` like a Lambda event source mapping.

    Args:
        queue_url: The queue URL (used for the API calls).
        queue_arn: The queue ARN (``eventSourceARN``; its region becomes ``awsRegion``).
        function: The function to invoke.
        batch_size: Maximum records per invocation (1-10000; Lambda's default is 10).
        maximum_batching_window: Seconds to keep gathering records after the first one arrives (0-300).
        report_batch_item_failures: ``FunctionResponseTypes: [ReportBatchItemFailures]``.
        pollers: Concurrent receive loops (each one long-polls and processes its own batch).
        wait_time_seconds: Long-poll duration per ReceiveMessage call (1-20). ``stop()`` does not wait for
            it, but note that a receive abandoned by ``stop()`` may still take a message on the server,
            which then reappears only after the visibility timeout (true of SQS as well).
        endpoint_url: Explicit endpoint (default: standard botocore resolution).
        stop_grace: Seconds ``stop()`` lets an in-progress batch finish.
    """

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        function: LocalFunction,
        *,
        batch_size: int = 10,
        maximum_batching_window: float = 0.0,
        report_batch_item_failures: bool = True,
        pollers: int = 2,
        wait_time_seconds: int = 20,
        endpoint_url: str | None = None,
        stop_grace: float = 0.8,
    ) -> None:
        _validate(batch_size, maximum_batching_window, pollers, wait_time_seconds)
        self.region = _arn_region(queue_arn)
        super().__init__(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=self.region,
            stop_grace=stop_grace,
            max_pool_connections=2 * pollers + 2,
        )
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.batch_size = batch_size
        self.maximum_batching_window = maximum_batching_window
        self._hurry = False
        self.report_batch_item_failures = report_batch_item_failures
        self.pollers = pollers
        self.wait_time_seconds = wait_time_seconds
        self._stats = SqsStats()

    def __str__(self) -> str:
        return f"SqsEventSource({self.queue_arn.rsplit(':', 1)[-1]} -> {self.function.name})"

    @property
    def stats(self) -> SqsStats:
        """The source's counters."""
        return self._stats

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> None:
        response = await self.client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        )
        attributes = response["Attributes"]
        if attributes["QueueArn"] != self.queue_arn:
            raise ValueError(f"queue {self.queue_url} has ARN {attributes['QueueArn']}, not {self.queue_arn}")
        visibility = int(attributes["VisibilityTimeout"])
        if visibility < self.function.timeout:
            raise ValueError(
                f"Queue visibility timeout: {visibility} seconds is less than Function timeout: "
                f"{self.function.timeout:g} seconds"
            )

    def _workers(self) -> list[Awaitable[None]]:
        return [self._poll_loop() for _ in range(self.pollers)]

    async def _poll_loop(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            try:
                messages = await self._receive_batch()
            except TRANSIENT_ERRORS as exc:
                await self._endpoint_error(backoff, "ReceiveMessage", exc)
                continue
            backoff.reset()
            if not messages:
                continue
            try:
                await self._process(messages)
            except Exception:  # a bug here must not cost the queue a poller; SQS redelivers the batch
                self._stats.failures += 1
                logger.exception("%s: unexpected error processing a batch of %d", self, len(messages))

    def hurry(self) -> None:
        """From now on deliver each batch as soon as it is received, without waiting out the batching window
        (before a shutdown: the queue drains in moments instead of a window's worth of seconds)."""
        self._hurry = True

    async def _receive_batch(self) -> list[dict[str, Any]]:
        """Long-poll for the first messages, then gather more for up to the batching window."""
        messages = await self._until_stopped(self._receive(min(self.batch_size, _MAX_RECEIVE), self.wait_time_seconds))
        if not messages or self.maximum_batching_window <= 0:
            return messages or []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.maximum_batching_window
        while len(messages) < self.batch_size and not self.stopping and not self._hurry:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wanted = min(self.batch_size - len(messages), _MAX_RECEIVE)
            try:
                more = await self._until_stopped(self._receive(wanted, 1 if remaining >= 1 else 0))
            except TRANSIENT_ERRORS as exc:  # deliver what was gathered rather than drop it
                logger.warning("%s: ReceiveMessage failed while batching (%s)", self, exc)
                break
            messages.extend(more or [])
            if not more and remaining < 1:
                await self._sleep(min(remaining, 0.05))
        return messages

    async def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = await self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    async def _process(self, messages: list[dict[str, Any]]) -> None:
        """Invoke the function with one batch and delete the messages that succeeded."""
        event = {"Records": [sqs_record(message, self.queue_arn, self.region) for message in messages]}
        self._stats.invocations += 1
        self._stats.records += len(messages)
        logger.debug("%s: invoking with %d message(s): %s", self, len(messages), event)
        try:
            response = await self.function.invoke(event)
        except FunctionError as exc:
            self._stats.failures += 1
            logger.warning(
                "%s: function failed on a batch of %d (%s: %s); the messages return after the visibility timeout",
                self,
                len(messages),
                exc.error_type,
                exc.error_message,
            )
            return
        await self._delete(self._succeeded(messages, response))

    def _succeeded(self, messages: list[dict[str, Any]], response: Any) -> list[dict[str, Any]]:
        if not self.report_batch_item_failures:
            return messages
        try:
            failed = set(failed_item_identifiers(response, {message["MessageId"] for message in messages}))
        except InvalidBatchResponse as exc:
            self._stats.failures += 1
            logger.warning("%s: batch response treated as a complete failure: %s", self, exc)
            return []
        if failed:
            self._stats.partial_batches += 1
            logger.info("%s: %d of %d message(s) reported as failed", self, len(failed), len(messages))
        return [message for message in messages if message["MessageId"] not in failed]

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        """DeleteMessageBatch in chunks of 10, retrying transient errors a few times (then SQS redelivers)."""
        for start in range(0, len(messages), _MAX_RECEIVE):
            chunk = messages[start : start + _MAX_RECEIVE]
            entries = [{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(chunk)]
            backoff = Backoff()
            for attempt in range(1, _DELETE_ATTEMPTS + 1):
                try:
                    response = await self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except TRANSIENT_ERRORS as exc:
                    if attempt == _DELETE_ATTEMPTS:
                        logger.error("%s: giving up deleting %d message(s): %s", self, len(entries), exc)
                        break
                    await self._endpoint_error(backoff, "DeleteMessageBatch", exc)
                    continue
                self._stats.deleted += len(response.get("Successful", []))
                for failure in response.get("Failed", []):
                    logger.warning("%s: delete failed: %s", self, failure.get("Message", failure))
                break


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """Build one Lambda SQS event record from a ReceiveMessage result.

    Args:
        message: One entry of ``ReceiveMessage``'s ``Messages`` (as parsed by botocore).
        queue_arn: The queue ARN (``eventSourceARN``).
        region: The queue's region (``awsRegion``).

    Returns:
        The record, keyed and ordered like the records Lambda delivers.
    """
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(md5OfBody=message["MD5OfBody"], eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region)
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[3]:
        raise ValueError(f"not an ARN with a region: {arn!r}")
    return parts[3]


def _validate(batch_size: int, window: float, pollers: int, wait_time_seconds: int) -> None:
    """The CreateEventSourceMapping limits for SQS (services-sqs-parameters)."""
    if not 1 <= batch_size <= 10_000:
        raise ValueError("batch_size must be 1-10000")
    if not 0 <= window <= 300:
        raise ValueError("maximum_batching_window must be 0-300 seconds")
    if batch_size > _MAX_RECEIVE and window < 1:
        raise ValueError("batch_size above 10 requires maximum_batching_window of at least 1 second")
    if pollers < 1:
        raise ValueError("pollers must be >= 1")
    if not 1 <= wait_time_seconds <= 20:
        raise ValueError("wait_time_seconds must be 1-20")
