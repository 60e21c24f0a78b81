"""Local event source mappings: what invokes ``functions/`` in the devstack, with Lambda's semantics.

Each source owns one aiobotocore client, starts with ``await source.start()`` and stops promptly with
``await source.stop()``; counters are in ``source.stats``.

- :class:`SqsEventSource`: SQS queue -> function (batching, partial batch responses, redrive via SQS).
- :class:`DynamoDbStreamEventSource`: DynamoDB stream -> function (per-shard order, retries, bisect,
  on-failure destination).
- :class:`TtlSweeper`: DynamoDB TTL expiry, which moto stores but never applies.
- :class:`ScheduledInvoker`: ``rate(...)`` schedules (EventBridge scheduled rules) -> function.
"""

from devstack.event_sources._base import EventSource, SourceStats
from devstack.event_sources.dynamodb_streams import DynamoDbStreamEventSource, StreamStats
from devstack.event_sources.schedule import ScheduledInvoker, ScheduleStats
from devstack.event_sources.sqs import SqsEventSource, SqsStats
from devstack.event_sources.ttl import TtlStats, TtlSweeper

__all__ = [
    "DynamoDbStreamEventSource",
    "EventSource",
    "ScheduleStats",
    "ScheduledInvoker",
    "SourceStats",
    "SqsEventSource",
    "SqsStats",
    "StreamStats",
    "TtlStats",
    "TtlSweeper",
]
