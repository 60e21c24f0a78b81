"""Per-resource-type builders for storage and messaging: S3 buckets, DynamoDB tables, SQS queues, EventBridge rules.

This module also owns the catalogue of what the local stack understands: the resource types it builds or
deliberately skips, and per type the properties it models or ignores (no local meaning). Anything else raises
:class:`~.model.TemplateSpecError` naming the resource, so the local stack cannot silently drift from AWS. The
small helpers shared with :mod:`.functions` (property checks, references, freezing) live here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .model import (
    BucketSpec,
    IndexSpec,
    KeySchema,
    QueueSpec,
    RedriveSpec,
    RuleSpec,
    RuleTarget,
    TableSpec,
    TemplateSpecError,
)
from .resolver import Resolver

_RESOURCE_ATTRIBUTES = {"Type", "Properties", "DependsOn", "Metadata", "DeletionPolicy", "UpdateReplacePolicy"}
#: Types with nothing to create locally: devstack's runtime plays their part, or they only matter in AWS.
_NOT_PROVISIONED = {
    "AWS::Serverless::LayerVersion",  # core/ is on sys.path locally
    "AWS::SecretsManager::Secret",  # devstack generates its own JWT secret
    "AWS::SQS::QueuePolicy",  # emulators do not enforce resource policies
    "AWS::Lambda::Permission",  # handlers are invoked in-process
    "AWS::ApiGatewayV2::Deployment",  # the local gateway serves the routes as declared
    "AWS::CloudWatch::Alarm",  # operations only, from here on
    "AWS::SNS::Topic",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::Logs::LogGroup",
    "AWS::S3::BucketPolicy",  # grants to CloudFront only; moto does not enforce them
    "AWS::CloudFront::Distribution",  # devstack/cdn_edge.py plays the distribution (web + media, one origin)
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::CachePolicy",
    "AWS::CloudFront::ResponseHeadersPolicy",  # the edge sends the same headers (a test compares them)
}
#: Per type: (properties modelled here, properties with no local meaning). Anything else raises.
PROPERTIES: dict[str, tuple[str, str]] = {
    "AWS::S3::Bucket": (
        "BucketName NotificationConfiguration CorsConfiguration",
        "PublicAccessBlockConfiguration OwnershipControls BucketEncryption LifecycleConfiguration "
        "VersioningConfiguration LoggingConfiguration Tags",
    ),
    "AWS::DynamoDB::Table": (
        "TableName AttributeDefinitions KeySchema GlobalSecondaryIndexes TimeToLiveSpecification "
        "StreamSpecification BillingMode",
        "PointInTimeRecoverySpecification SSESpecification DeletionProtectionEnabled TableClass "
        "ContributorInsightsSpecification Tags",
    ),
    "AWS::SQS::Queue": (
        "QueueName VisibilityTimeout MessageRetentionPeriod DelaySeconds RedrivePolicy",
        "SqsManagedSseEnabled KmsMasterKeyId KmsDataKeyReusePeriodSeconds MaximumMessageSize "
        "ReceiveMessageWaitTimeSeconds RedriveAllowPolicy Tags",
    ),
    "AWS::Events::Rule": ("Name EventPattern Targets State EventBusName", "Description"),
    "AWS::Serverless::Function": (
        "CodeUri Handler Runtime Timeout MemorySize Environment Events",
        "Description Policies Layers Architectures Tracing LoggingConfig Tags Role FunctionName "
        "ReservedConcurrentExecutions AutoPublishAlias EphemeralStorage",
    ),
    "AWS::Serverless::HttpApi": ("CorsConfiguration", "DefaultRouteSettings Description Tags"),
    "AWS::ApiGatewayV2::Api": ("Name ProtocolType RouteSelectionExpression", "Description Tags"),
    "AWS::ApiGatewayV2::Integration": ("ApiId IntegrationType IntegrationUri", "Description"),
    "AWS::ApiGatewayV2::Route": ("ApiId RouteKey Target AuthorizationType", "OperationName"),
    "AWS::ApiGatewayV2::Stage": (
        "ApiId StageName DefaultRouteSettings",
        "DeploymentId Description AccessLogSettings Tags",
    ),
}


def check_resource_types(r: Resolver) -> None:
    """Refuse resource attributes (``Condition``) and types the local stack neither builds nor skips on purpose."""
    for logical_id, resource in r.resources.items():
        extra = sorted(set(resource) - _RESOURCE_ATTRIBUTES)
        if extra:  # Condition: the local stack does not evaluate conditions
            raise TemplateSpecError(logical_id, f"resource attribute(s) {', '.join(extra)} not supported locally")
        if resource.get("Type") not in PROPERTIES and resource.get("Type") not in _NOT_PROVISIONED:
            raise TemplateSpecError(
                logical_id, f"type {resource.get('Type')} has no local counterpart (teach devstack/template_spec/)"
            )


def of_type(r: Resolver, resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, properties) of every resource of ``resource_type``, properties checked against the catalogue."""
    found = []
    for logical_id, resource in r.resources.items():
        if resource.get("Type") == resource_type:
            props = dict(resource.get("Properties") or {})
            check_keys(logical_id, props, *PROPERTIES[resource_type])
            found.append((logical_id, props))
    return found


def check_keys(where: str, props: Mapping[str, Any], handled: str, ignored: str = "") -> None:
    """Raise for any key of ``props`` neither ``handled`` nor ``ignored`` (space-separated names)."""
    unknown = sorted(set(props) - set(handled.split()) - set(ignored.split()))
    if unknown:
        raise TemplateSpecError(where, f"{', '.join(unknown)} not modelled locally (teach devstack/template_spec/)")


def _name(r: Resolver, logical_id: str) -> str:
    name = r.physical_name(logical_id)
    if not isinstance(name, str):
        raise TemplateSpecError(logical_id, f"physical name must be known locally, got {name}")
    return name


def referenced_id(r: Resolver, raw: Any, where: str, resource_type: str) -> str:
    """The one resource of ``resource_type`` that ``raw`` references (e.g. ``!GetAtt CatalogQueue.Arn``)."""
    found = [i for i in sorted(r.referenced_ids(raw)) if r.type_of(i) == resource_type]
    if len(found) != 1:
        raise TemplateSpecError(where, f"must reference exactly one {resource_type} of this template, got {raw!r}")
    return found[0]


def as_bool(value: Any) -> bool:
    """A template boolean: ``true`` or ``"true"`` (any case)."""
    return value is True or str(value).lower() == "true"


def freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy, for the frozen spec."""
    return MappingProxyType(dict(mapping))


def bucket_spec(r: Resolver, logical_id: str, props: dict[str, Any]) -> BucketSpec:
    notifications = props.get("NotificationConfiguration") or {}
    check_keys(f"{logical_id}.NotificationConfiguration", notifications, "EventBridgeConfiguration")
    enabled = (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled", False)
    cors = r.concrete((props.get("CorsConfiguration") or {}).get("CorsRules", []), logical_id, "CorsRules")
    rules = []
    for rule in cors:  # CloudFormation CorsRule -> S3 API CORSRule
        api = {k: rule[k] for k in ("AllowedHeaders", "AllowedMethods", "AllowedOrigins") if k in rule}
        renamed = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
        api.update({renamed[k]: rule[k] for k in renamed if k in rule})
        rules.append(freeze(api))
    return BucketSpec(
        logical_id, _name(r, logical_id), as_bool(r.concrete(enabled, logical_id, "EventBridge")), tuple(rules)
    )


def _keys(raw: list[Mapping[str, Any]]) -> KeySchema:
    return tuple((str(k["AttributeName"]), str(k["KeyType"])) for k in raw)


def table_spec(r: Resolver, logical_id: str, props: dict[str, Any]) -> TableSpec:
    props = r.concrete(props, logical_id, "table properties")
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        raise TemplateSpecError(logical_id, "only BillingMode PAY_PER_REQUEST is modelled locally")
    gsis = tuple(
        IndexSpec(
            str(g["IndexName"]),
            _keys(g["KeySchema"]),
            str(g["Projection"].get("ProjectionType", "ALL")),
            tuple(g["Projection"].get("NonKeyAttributes", [])),
        )
        for g in props.get("GlobalSecondaryIndexes", [])
    )
    ttl = props.get("TimeToLiveSpecification") or {}
    return TableSpec(
        logical_id,
        _name(r, logical_id),
        _keys(props["KeySchema"]),
        tuple((str(a["AttributeName"]), str(a["AttributeType"])) for a in props["AttributeDefinitions"]),
        gsis,
        ttl_attribute=ttl.get("AttributeName") if as_bool(ttl.get("Enabled")) else None,
        stream_view_type=(props.get("StreamSpecification") or {}).get("StreamViewType"),
        billing_mode=props["BillingMode"],
    )


def queue_spec(r: Resolver, logical_id: str, props: dict[str, Any]) -> QueueSpec:
    redrive = None
    if "RedrivePolicy" in props:
        raw = props["RedrivePolicy"]
        raw = json.loads(raw) if isinstance(raw, str) else raw
        dlq = referenced_id(r, raw.get("deadLetterTargetArn"), f"{logical_id}.RedrivePolicy", "AWS::SQS::Queue")
        redrive = RedriveSpec(dlq, int(r.concrete(raw.get("maxReceiveCount", 10), logical_id, "maxReceiveCount")))
    number = {
        k: int(r.concrete(v, logical_id, k))
        for k, v in props.items()
        if k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
    }
    return QueueSpec(
        logical_id,
        _name(r, logical_id),
        visibility_timeout=number.get("VisibilityTimeout", 30),
        retention_seconds=number.get("MessageRetentionPeriod", 345600),
        delay_seconds=number.get("DelaySeconds", 0),
        redrive=redrive,
    )


def rule_spec(r: Resolver, logical_id: str, props: dict[str, Any]) -> RuleSpec:
    if r.concrete(props.get("EventBusName", "default"), logical_id, "EventBusName") != "default":
        raise TemplateSpecError(logical_id, "only rules on the default event bus are modelled locally")
    pattern = props.get("EventPattern")
    pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
    if not pattern:
        raise TemplateSpecError(logical_id, "EventPattern is required locally (S3 events are matched by it)")
    targets = []
    for target in props.get("Targets", []):
        where = f"{logical_id}.Targets.{target.get('Id')}"
        check_keys(where, target, "Id Arn", "RetryPolicy DeadLetterConfig")
        targets.append(RuleTarget(str(target["Id"]), referenced_id(r, target["Arn"], where, "AWS::SQS::Queue")))
    state = r.concrete(props.get("State", "ENABLED"), logical_id, "State")
    return RuleSpec(
        logical_id,
        _name(r, logical_id),
        freeze(r.concrete(pattern, logical_id, "EventPattern")),
        tuple(targets),
        enabled=state == "ENABLED",
    )
