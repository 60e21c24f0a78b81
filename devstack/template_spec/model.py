"""The typed spec of the local stack: frozen dataclasses, :class:`Unresolved` and :class:`TemplateSpecError`.

This module owns the *shape* of what devstack provisions and wires (buckets, tables, queues, rules, functions
and their event sources, the HTTP and WebSocket APIs). It has no template logic: :mod:`.resolver` resolves
intrinsics, :mod:`.resources` and :mod:`.functions` build these objects from template.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MEDIA_BUCKET_ID = "MediaBucket"
MEDIA_TABLE_ID = "MediaTable"


class TemplateSpecError(ValueError):
    """template.yaml uses something the local stack cannot reproduce faithfully."""

    def __init__(self, logical_id: str, message: str) -> None:
        super().__init__(f"template.yaml {logical_id}: {message}")
        self.logical_id = logical_id


@dataclass(frozen=True)
class Unresolved:
    """Sentinel for a value known only after provisioning/deployment (e.g. ``!GetAtt MediaTable.StreamArn``).

    Attributes:
        expression: the template expression, for error messages.
        logical_id: set when the whole value is one ``Ref``/``GetAtt`` of a resource, so a provisioner can fill it.
        attribute: the ``GetAtt`` attribute, or None for ``Ref``.
    """

    expression: str
    logical_id: str | None = None
    attribute: str | None = None


Value = str | Unresolved
KeySchema = tuple[tuple[str, str], ...]  # ((attribute name, HASH|RANGE), ...)


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index."""

    name: str
    key_schema: KeySchema
    projection_type: str = "ALL"
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table (``AWS::DynamoDB::Table``); attribute definitions as ((name, S|N|B), ...)."""

    logical_id: str
    name: str
    key_schema: KeySchema
    attribute_definitions: tuple[tuple[str, str], ...]
    gsis: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    stream_view_type: str | None = None
    billing_mode: str = "PAY_PER_REQUEST"


@dataclass(frozen=True)
class RedriveSpec:
    """Where a queue parks messages after ``max_receive_count`` receives."""

    dlq_logical_id: str
    max_receive_count: int


@dataclass(frozen=True)
class QueueSpec:
    """A standard SQS queue (defaults are the SQS defaults)."""

    logical_id: str
    name: str
    visibility_timeout: int = 30
    retention_seconds: int = 345600
    delay_seconds: int = 0
    redrive: RedriveSpec | None = None


@dataclass(frozen=True)
class BucketSpec:
    """An S3 bucket; ``cors_rules`` are in the S3 API shape (``put_bucket_cors``)."""

    logical_id: str
    name: str
    eventbridge_enabled: bool = False
    cors_rules: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class RuleTarget:
    """An EventBridge rule target; only SQS queues of this template are supported."""

    target_id: str
    queue_logical_id: str


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule on the default bus, with its pattern resolved (local bucket name included)."""

    logical_id: str
    name: str
    event_pattern: Mapping[str, Any]
    targets: tuple[RuleTarget, ...]
    enabled: bool = True


@dataclass(frozen=True)
class SqsSource:
    """An SQS event source mapping (SAM ``Type: SQS``)."""

    queue_logical_id: str
    batch_size: int = 10
    batching_window: int = 0
    report_batch_item_failures: bool = False
    enabled: bool = True
    filter_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamSource:
    """A DynamoDB Streams event source mapping (SAM ``Type: DynamoDB``); -1 means "infinite" as in Lambda."""

    table_logical_id: str
    starting_position: str
    batch_size: int = 100
    batching_window: int = 0
    maximum_retry_attempts: int = -1
    maximum_record_age: int = -1
    bisect_batch_on_error: bool = False
    report_batch_item_failures: bool = False
    enabled: bool = True
    filter_patterns: tuple[str, ...] = ()
    on_failure_queue_logical_id: str | None = None


@dataclass(frozen=True)
class ScheduleSource:
    """A scheduled invocation (SAM ``Type: Schedule``/``ScheduleV2``)."""

    name: str
    expression: str
    enabled: bool = True
    input: str | None = None


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP API route: ``method`` is upper case or ``ANY``; ``path`` may end in ``{proxy+}``."""

    method: str
    path: str
    function: str


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the local runtime needs it; ``environment`` has Globals merged in."""

    logical_id: str
    code_uri: str
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: Mapping[str, Value]
    sqs_sources: tuple[SqsSource, ...] = ()
    stream_sources: tuple[StreamSource, ...] = ()
    schedules: tuple[ScheduleSource, ...] = ()

    @property
    def module(self) -> str:
        """Import path of the handler module locally, e.g. ``functions.api.handler``."""
        package = self.code_uri.strip("/").replace("/", ".")
        return f"{package}.{self.handler.rsplit('.', 1)[0]}"

    @property
    def attribute(self) -> str:
        """Name of the handler callable inside :attr:`module`."""
        return self.handler.rsplit(".", 1)[1]

    @property
    def source_path(self) -> Path:
        """Repository-relative path of the handler module, e.g. ``functions/api/handler.py``."""
        return Path(*self.module.split(".")).with_suffix(".py")

    def resolved_environment(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The function's environment with every :class:`Unresolved` value replaced.

        Args:
            overrides: values by variable name; names the function does not declare are ignored, so one
                mapping can serve every function.

        Raises:
            TemplateSpecError: naming each variable still unresolved.
        """
        overrides = overrides or {}
        env = {k: overrides.get(k, v) for k, v in self.environment.items()}
        missing = [f"{k} ({v.expression})" for k, v in env.items() if isinstance(v, Unresolved)]
        if missing:
            raise TemplateSpecError(self.logical_id, "no local value for " + ", ".join(missing))
        return {k: str(v) for k, v in env.items()}


@dataclass(frozen=True)
class HttpApiSpec:
    """The HTTP API (``AWS::Serverless::HttpApi``, ``$default`` stage) and its routes."""

    logical_id: str
    routes: tuple[HttpRoute, ...]
    cors_allow_origins: tuple[str, ...] = ()
    cors_allow_methods: tuple[str, ...] = ()
    cors_allow_headers: tuple[str, ...] = ()
    cors_max_age: int | None = None


@dataclass(frozen=True)
class WebSocketSpec:
    """The WebSocket API: route key -> function logical id, and its stage."""

    logical_id: str
    route_selection_expression: str
    routes: Mapping[str, str]
    stage: str
    throttling_burst_limit: int | None = None
    throttling_rate_limit: float | None = None


@dataclass(frozen=True)
class StackSpec:
    """Everything devstack creates or emulates, keyed by logical id."""

    stack_name: str
    region: str
    account_id: str
    parameters: Mapping[str, Any]
    buckets: Mapping[str, BucketSpec]
    tables: Mapping[str, TableSpec]
    queues: Mapping[str, QueueSpec]
    rules: Mapping[str, RuleSpec]
    functions: Mapping[str, FunctionSpec]
    websocket: WebSocketSpec | None = None
    http_api: HttpApiSpec | None = None

    @property
    def bucket(self) -> BucketSpec:
        """The media bucket."""
        return self.buckets[MEDIA_BUCKET_ID]

    @property
    def table(self) -> TableSpec:
        """The single metadata table."""
        return self.tables[MEDIA_TABLE_ID]
