"""Create the local stack described by a :class:`~devstack.template_spec.StackSpec`, idempotently.

This module owns turning the spec into real resources in any S3/SQS/EventBridge/DynamoDB endpoint: the
embedded moto server, LocalStack, or MinIO (S3) plus moto/LocalStack (the rest). It runs once at start-up,
with plain boto3. Tables (create, reconcile, wait) are in :mod:`devstack.provision_table`, the shared error
type in :mod:`devstack.provision_errors`; both results and the error are re-exported here.

Rules:
- Idempotent and non-destructive: a second run is a no-op. Existing resources are reconciled in place
  (queue attributes, CORS, notifications, rule patterns and targets, missing GSIs/TTL/stream) and never
  deleted or recreated, so no data is lost. A difference that cannot be fixed in place (a table's key
  schema) raises :class:`ProvisionError` instead of wiping the table.
- Order follows the dependencies: dead-letter queues before the queues that redrive to them, queues before
  the rules that target them.
- ARNs and URLs come from the endpoint's answers, never from the spec, so LocalStack's account id or queue
  URL shape cannot break the wiring.
- Not provisioned (see template_spec): queue policies (emulators do not enforce them), functions (devstack
  invokes handlers in-process), the APIs (devstack's gateway and HTTP adapter), alarms, secrets.
- A separate S3 server (MinIO, ``s3_endpoint_url``) keeps its own notification wiring, and an S3 endpoint that
  refuses EventBridge notifications or bucket CORS is not fatal: the result says
  ``eventbridge_notifications=False`` and devstack must route bucket events itself (webhook normalizer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.provision_errors import ProvisionError, error_code, naming
from devstack.provision_table import ProvisionedTable, provision_table
from devstack.template_spec import (
    MEDIA_BUCKET_ID,
    MEDIA_TABLE_ID,
    BucketSpec,
    FunctionSpec,
    QueueSpec,
    RuleSpec,
    StackSpec,
    Unresolved,
)

__all__ = ["ProvisionError", "ProvisionedQueue", "ProvisionedStack", "ProvisionedTable", "provision"]

logger = logging.getLogger(__name__)

_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


@dataclass(frozen=True)
class ProvisionedQueue:
    """A queue as the endpoint reports it."""

    logical_id: str
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class ProvisionedStack:
    """What pollers and adapters need to talk to the provisioned stack.

    Attributes:
        spec: the spec that was provisioned.
        endpoint_url: the endpoint used (None: boto3's standard resolution, e.g. ``AWS_ENDPOINT_URL``).
        buckets: bucket name by logical id.
        tables: tables by logical id.
        queues: queues by logical id.
        rules: EventBridge rule ARN by logical id.
        eventbridge_notifications: False when the S3 endpoint refused EventBridge notifications (MinIO).
        seconds: wall time the provisioning took.
    """

    spec: StackSpec
    endpoint_url: str | None
    buckets: Mapping[str, str]
    tables: Mapping[str, ProvisionedTable]
    queues: Mapping[str, ProvisionedQueue]
    rules: Mapping[str, str]
    eventbridge_notifications: bool
    seconds: float

    @property
    def bucket(self) -> str:
        """Name of the media bucket."""
        return self.buckets[MEDIA_BUCKET_ID]

    @property
    def table(self) -> ProvisionedTable:
        """The metadata table."""
        return self.tables[MEDIA_TABLE_ID]

    def value_of(self, value: Unresolved) -> str | None:
        """The provisioned value of a ``Ref``/``GetAtt`` the spec could not resolve, or None if unknown here.

        Covers queue URLs (``!Ref Queue``), queue/table/bucket/rule ARNs and the table's ``StreamArn``.
        """
        logical_id, attribute = value.logical_id, value.attribute
        if logical_id in self.queues:
            queue = self.queues[logical_id]
            return {None: queue.url, "QueueUrl": queue.url, "Arn": queue.arn, "QueueName": queue.name}.get(attribute)
        if logical_id in self.tables:
            table = self.tables[logical_id]
            return {None: table.name, "Arn": table.arn, "StreamArn": table.stream_arn}.get(attribute)
        if logical_id in self.buckets:
            name = self.buckets[logical_id]
            return {None: name, "Arn": f"arn:aws:s3:::{name}"}.get(attribute)
        if logical_id in self.rules:
            return {"Arn": self.rules[logical_id]}.get(attribute)
        return None

    def environment_for(
        self, function: FunctionSpec | str, overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """A function's environment with provisioned values and ``overrides`` filled in.

        Args:
            function: a function spec or its logical id.
            overrides: values by variable name for what only devstack knows (``WS_ENDPOINT``, ``JWT_SECRET``);
                they win over everything else. Names the function does not declare are ignored.

        Raises:
            devstack.template_spec.TemplateSpecError: a variable is still unresolved.
        """
        spec = self.spec.functions[function] if isinstance(function, str) else function
        filled = {
            name: found
            for name, value in spec.environment.items()
            if isinstance(value, Unresolved) and (found := self.value_of(value)) is not None
        }
        return spec.resolved_environment({**filled, **(overrides or {})})


def provision(
    spec: StackSpec,
    endpoint_url: str | None = None,
    *,
    s3_endpoint_url: str | None = None,
    session: boto3.Session | None = None,
) -> ProvisionedStack:
    """Create (or reconcile) every bucket, table, queue and rule of ``spec``.

    Args:
        spec: from :func:`devstack.template_spec.load_stack_spec`.
        endpoint_url: e.g. the embedded moto server or ``http://localhost:4566`` (LocalStack). None uses
            boto3's standard resolution (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ...).
        s3_endpoint_url: a separate S3 server (MinIO); defaults to ``endpoint_url``. Its bucket notification
            configuration is left alone (MinIO delivers events by webhook, set up by ``mc event add``), so the
            result has ``eventbridge_notifications=False``.
        session: boto3 session to build clients from; by default one for ``spec.region``, with throwaway
            credentials when the environment has none and an endpoint is given.

    Returns:
        The provisioned names, URLs and ARNs.

    Raises:
        ProvisionError: naming the resource that failed.
    """
    started = time.perf_counter()
    session = session or boto3.Session(region_name=spec.region)
    if session.get_credentials() is None and (endpoint_url or s3_endpoint_url):
        session = boto3.Session(region_name=spec.region, aws_access_key_id="test", aws_secret_access_key="test")

    def client(service: str, url: str | None = endpoint_url) -> Any:
        return session.client(service, endpoint_url=url, region_name=spec.region, config=_CLIENT_CONFIG)

    s3, sqs, dynamodb, events = (
        client("s3", s3_endpoint_url or endpoint_url),
        client("sqs"),
        client("dynamodb"),
        client("events"),
    )
    queues = _provision_queues(sqs, spec.queues)
    tables = {logical_id: provision_table(dynamodb, table) for logical_id, table in spec.tables.items()}
    foreign_s3 = s3_endpoint_url is not None and s3_endpoint_url != endpoint_url
    notifications = all(
        [_provision_bucket(s3, b, spec.region, notifications=not foreign_s3) for b in spec.buckets.values()]
    )
    rules = {logical_id: _provision_rule(events, rule, queues) for logical_id, rule in spec.rules.items()}
    _warn_on_account_mismatch(spec, queues)
    seconds = time.perf_counter() - started
    logger.info("provisioned %s in %.3f s (endpoint %s)", spec.stack_name, seconds, endpoint_url or "default")
    return ProvisionedStack(
        spec=spec,
        endpoint_url=endpoint_url,
        buckets=MappingProxyType({i: b.name for i, b in spec.buckets.items()}),
        tables=MappingProxyType(tables),
        queues=MappingProxyType(queues),
        rules=MappingProxyType(rules),
        eventbridge_notifications=notifications,
        seconds=seconds,
    )


def _provision_rule(events: Any, rule: RuleSpec, queues: Mapping[str, ProvisionedQueue]) -> str:
    """put_rule + put_targets are upserts; targets no longer in the template are removed."""
    with naming(rule.logical_id):
        arn = events.put_rule(
            Name=rule.name,
            EventPattern=json.dumps(dict(rule.event_pattern)),
            State="ENABLED" if rule.enabled else "DISABLED",
        )["RuleArn"]
        wanted = [{"Id": t.target_id, "Arn": queues[t.queue_logical_id].arn} for t in rule.targets]
        current = events.list_targets_by_rule(Rule=rule.name).get("Targets", [])
        stale = [t["Id"] for t in current if t["Id"] not in {w["Id"] for w in wanted}]
        if stale:
            events.remove_targets(Rule=rule.name, Ids=stale)
        if wanted and events.put_targets(Rule=rule.name, Targets=wanted).get("FailedEntryCount"):
            raise ProvisionError(f"{rule.logical_id}: put_targets failed for {wanted}")
    return str(arn)


def _provision_queues(sqs: Any, specs: Mapping[str, QueueSpec]) -> dict[str, ProvisionedQueue]:
    done: dict[str, ProvisionedQueue] = {}
    pending = dict(specs)
    while pending:  # dead-letter queues first
        ready = [q for q in pending.values() if q.redrive is None or q.redrive.dlq_logical_id in done]
        if not ready:
            raise ProvisionError(f"{', '.join(pending)}: redrive policies form a cycle or name unknown queues")
        for queue in ready:
            with naming(queue.logical_id):
                done[queue.logical_id] = _provision_queue(sqs, queue, done)
            del pending[queue.logical_id]
    return done


def _provision_queue(sqs: Any, queue: QueueSpec, done: Mapping[str, ProvisionedQueue]) -> ProvisionedQueue:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout),
        "MessageRetentionPeriod": str(queue.retention_seconds),
        "DelaySeconds": str(queue.delay_seconds),
    }
    if queue.redrive:
        dlq_arn = done[queue.redrive.dlq_logical_id].arn
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.redrive.max_receive_count}
        )
    try:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" not in error_code(exc) and "QueueDoesNotExist" not in error_code(exc):
            raise
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    else:
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if queue.redrive is None and current.get("RedrivePolicy"):
            attributes["RedrivePolicy"] = ""  # the template dropped it: clear it
        changed = {k: v for k, v in attributes.items() if _normalized(current.get(k)) != _normalized(v)}
        if changed:
            logger.info("reconciling queue %s: %s", queue.name, sorted(changed))
            sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
    return ProvisionedQueue(queue.logical_id, queue.name, url, current["QueueArn"])


def _normalized(value: str | None) -> Any:
    """Compare JSON attributes (RedrivePolicy) by value: emulators differ in spacing and number types."""
    try:
        loaded = json.loads(value) if value else value
    except ValueError:
        return value
    if isinstance(loaded, dict):
        return {k: str(v) for k, v in loaded.items()}
    return str(loaded) if loaded is not None else ""


def _provision_bucket(s3: Any, bucket: BucketSpec, region: str, *, notifications: bool = True) -> bool:
    """Create/reconcile one bucket.

    Args:
        notifications: manage the bucket's notification configuration. False for a foreign S3 server (MinIO):
            its own event wiring (``mc event add``) must not be overwritten.

    Returns:
        True if the bucket sends EventBridge notifications as the template says.
    """
    with naming(bucket.logical_id):
        try:
            s3.head_bucket(Bucket=bucket.name)
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            try:
                s3.create_bucket(Bucket=bucket.name, **location)
            except ClientError as race:
                if error_code(race) != "BucketAlreadyOwnedByYou":
                    raise
        if bucket.cors_rules:
            try:
                s3.put_bucket_cors(
                    Bucket=bucket.name, CORSConfiguration={"CORSRules": [dict(r) for r in bucket.cors_rules]}
                )
            except ClientError as exc:  # MinIO: no bucket CORS API, server-wide MINIO_API_CORS_ALLOW_ORIGIN instead
                if error_code(exc) != "NotImplemented":
                    raise
                logger.warning("S3 endpoint has no bucket CORS API; %s keeps the server's CORS", bucket.name)
        if not notifications:
            return not bucket.eventbridge_enabled
        configuration = {"EventBridgeConfiguration": {}} if bucket.eventbridge_enabled else {}
        try:
            s3.put_bucket_notification_configuration(Bucket=bucket.name, NotificationConfiguration=configuration)
        except ClientError as exc:
            if not bucket.eventbridge_enabled:
                raise
            logger.warning(
                "S3 endpoint refused EventBridge notifications for %s (%s): devstack must route bucket events "
                "itself (e.g. the MinIO webhook normalizer)",
                bucket.name,
                error_code(exc),
            )
            return False
    return True


def _warn_on_account_mismatch(spec: StackSpec, queues: Mapping[str, ProvisionedQueue]) -> None:
    for queue in queues.values():
        account = queue.arn.split(":")[4] if queue.arn.count(":") >= 5 else spec.account_id
        if account != spec.account_id:
            logger.warning(
                "endpoint account %s differs from the spec's %s: ARNs the spec resolved are wrong; load the spec "
                "with account_id=%r (LocalStack: use a 12-digit AWS_ACCESS_KEY_ID)",
                account,
                spec.account_id,
                account,
            )
        return
