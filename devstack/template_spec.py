"""template.yaml -> the typed spec of the local stack (what devstack provisions and wires).

This module owns the *reading* of template.yaml for local use; :mod:`devstack.provision` owns creating it.

Rules:
- template.yaml is the single source of truth. It is parsed with samtranslator's ``yaml_parse`` (understands
  ``!Ref``/``!Sub``/``!GetAtt``) and intrinsics are resolved by a small local resolver: pseudo parameters
  (``AWS::StackName`` = ``capturestream``, ``AWS::AccountId`` = ``123456789012``, moto's default,
  ``AWS::Region`` = ``us-east-1``, ``AWS::Partition`` = ``aws``), parameter defaults (overridable), and
  ``Ref``/``GetAtt`` of resources.
- Local physical names are ``<stack>-<LogicalId>`` unless the resource sets its name (the media bucket does).
- Values only known after provisioning or deployment (queue URLs, the table's stream ARN, API ids, secrets via
  ``{{resolve:...}}``) become :class:`Unresolved`; the caller fills them (``ProvisionedStack.environment_for``,
  or overrides such as the local ``WS_ENDPOINT`` and the devstack's own ``JWT_SECRET``).
- Anything that would change local behaviour but is not modelled here (an unknown resource type, property,
  event type or intrinsic) raises :class:`TemplateSpecError` naming the resource: silently ignoring it would let
  the local stack drift from AWS. Properties with no local meaning (encryption, IAM, tracing) are listed as
  ignored, explicitly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
LOCAL_STACK_NAME = "capturestream"
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
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


def load_stack_spec(
    path: Path | str | None = None,
    *,
    stack_name: str = LOCAL_STACK_NAME,
    region: str = LOCAL_REGION,
    account_id: str = LOCAL_ACCOUNT_ID,
    parameters: Mapping[str, str] | None = None,
) -> StackSpec:
    """Read template.yaml (the repository's by default) into a :class:`StackSpec`.

    Args:
        path: template to read; defaults to ``template.yaml`` at the repository root.
        stack_name: value of ``AWS::StackName`` (prefix of every local physical name).
        region: value of ``AWS::Region``.
        account_id: value of ``AWS::AccountId``.
        parameters: template parameter overrides (strings, comma lists for ``CommaDelimitedList``).

    Raises:
        TemplateSpecError: the template needs something the local stack cannot reproduce.
    """
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(Path(path or DEFAULT_TEMPLATE).read_text(encoding="utf-8"))
    return parse_stack_spec(
        template, stack_name=stack_name, region=region, account_id=account_id, parameters=parameters
    )


def parse_stack_spec(
    template: Mapping[str, Any],
    *,
    stack_name: str = LOCAL_STACK_NAME,
    region: str = LOCAL_REGION,
    account_id: str = LOCAL_ACCOUNT_ID,
    parameters: Mapping[str, str] | None = None,
) -> StackSpec:
    """Like :func:`load_stack_spec`, from an already parsed template (a dict)."""
    return _build(template, _Resolver(template, stack_name, region, account_id, parameters or {}))


# ---------------------------------------------------------------------------------------------- resolver

_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::Rule": "Name",
    "AWS::Serverless::Function": "FunctionName",
}
_ARN_FORMAT = {  # GetAtt <logical id>.Arn, from the local physical name
    "AWS::S3::Bucket": "arn:{p}:s3:::{n}",
    "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{n}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{n}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{n}",
    "AWS::Serverless::Function": "arn:{p}:lambda:{r}:{a}:function:{n}",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class _Resolver:
    """Resolves intrinsic functions against the local stack (see the module rules)."""

    template: Mapping[str, Any]
    stack_name: str
    region: str
    account_id: str
    overrides: Mapping[str, str]
    resources: Mapping[str, Any] = field(init=False)
    parameters: dict[str, Any] = field(init=False)
    pseudo: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.resources = self.template.get("Resources") or {}
        self.pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        declared = self.template.get("Parameters") or {}
        unknown = set(self.overrides) - set(declared)
        if unknown:
            raise TemplateSpecError("Parameters", f"no such parameter(s): {', '.join(sorted(unknown))}")
        self.parameters = {}
        for name, decl in declared.items():
            value = self.overrides.get(name, decl.get("Default"))
            if value is None:
                self.parameters[name] = Unresolved(f"!Ref {name}")
            elif decl.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                self.parameters[name] = [item.strip() for item in value.split(",")]
            else:
                self.parameters[name] = value if isinstance(value, list) else str(value)

    def type_of(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Type"])

    def physical_name(self, logical_id: str) -> Value:
        """Local name of a resource: its name property if set, else ``<stack>-<LogicalId>``."""
        props = self.resources[logical_id].get("Properties") or {}
        name_property = _NAME_PROPERTY.get(self.type_of(logical_id))
        if name_property and name_property in props:
            return self.resolve(props[name_property], logical_id)
        return f"{self.stack_name}-{logical_id}"

    def ref(self, name: str, where: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise TemplateSpecError(where, f"Ref to undeclared name {name!r}")
        if self.type_of(name) in (
            "AWS::S3::Bucket",
            "AWS::DynamoDB::Table",
            "AWS::Events::Rule",
            "AWS::Serverless::Function",
        ):
            return self.physical_name(name)
        return Unresolved(f"!Ref {name}", name)  # queue URL, API id, secret ARN: known after provisioning

    def get_att(self, logical_id: str, attribute: str, where: str) -> Value:
        if logical_id not in self.resources:
            raise TemplateSpecError(where, f"GetAtt of undeclared resource {logical_id!r}")
        arn_format = _ARN_FORMAT.get(self.type_of(logical_id))
        name = self.physical_name(logical_id)
        if isinstance(name, str) and attribute == "Arn" and arn_format:
            return arn_format.format(p="aws", r=self.region, a=self.account_id, n=name)
        if isinstance(name, str) and attribute == "QueueName" and self.type_of(logical_id) == "AWS::SQS::Queue":
            return name
        return Unresolved(f"!GetAtt {logical_id}.{attribute}", logical_id, attribute)

    def resolve(self, value: Any, where: str) -> Any:
        """Resolve every intrinsic in ``value`` (recursively); unknown intrinsics raise."""
        if isinstance(value, list):
            return [self.resolve(item, where) for item in value]
        if isinstance(value, str):
            return Unresolved(value) if "{{resolve:" in value else value
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical_id, attribute, where)
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                return self._join(arg, where)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateSpecError(where, f"intrinsic {key} is not supported by the local stack")
        return {k: self.resolve(v, where) for k, v in value.items()}

    def _sub(self, arg: Any, where: str) -> Value:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        parts: list[Value] = []

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = self.resolve(variables[name], where)
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.get_att(*name.split(".", 1), where)
            else:
                value = self.ref(name, where)
            parts.append(value)
            return value if isinstance(value, str) else ""

        result = _SUB_VARIABLE.sub(substitute, text)
        if any(not isinstance(part, str) for part in parts) or "{{resolve:" in result:
            return Unresolved(f"!Sub {text!r}")
        return result

    def _join(self, arg: Any, where: str) -> Value:
        delimiter, items = arg[0], self.resolve(arg[1], where)
        if isinstance(items, Unresolved) or any(isinstance(item, Unresolved) for item in items):
            return Unresolved(f"!Join {arg!r}")
        return str(delimiter).join(str(item) for item in items)

    def concrete(self, value: Any, where: str, what: str) -> Any:
        """Resolve ``value`` and insist that nothing in it is :class:`Unresolved`."""
        resolved = self.resolve(value, where)
        if _contains_unresolved(resolved):
            raise TemplateSpecError(where, f"{what} must be known before provisioning, got {value!r}")
        return resolved

    def referenced_ids(self, value: Any) -> set[str]:
        """Logical ids of resources referenced anywhere in ``value`` (Ref, GetAtt, ${...} in Sub)."""
        found: set[str] = set()
        if isinstance(value, list):
            for item in value:
                found |= self.referenced_ids(item)
        elif isinstance(value, dict):
            for key, arg in value.items():
                if key == "Ref" and isinstance(arg, str):
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    found.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
                elif key == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    found |= {m.split(".", 1)[0] for m in _SUB_VARIABLE.findall(text)}
                    found |= self.referenced_ids(arg[1:] if isinstance(arg, list) else [])
                else:
                    found |= self.referenced_ids(arg)
        return found & set(self.resources)


def _contains_unresolved(value: Any) -> bool:
    if isinstance(value, Unresolved):
        return True
    if isinstance(value, dict):
        return any(_contains_unresolved(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unresolved(v) for v in value)
    return False


def _freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


# ---------------------------------------------------------------------------------------------- parsers

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
}
#: Per type: (properties modelled here, properties with no local meaning). Anything else raises.
_PROPERTIES: dict[str, tuple[str, str]] = {
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
#: SAM event type -> accepted properties (e.g. ScalingConfig raises: the local poller does not model it).
_EVENT_PROPERTIES: dict[str, str] = {
    "SQS": "Queue BatchSize MaximumBatchingWindowInSeconds FunctionResponseTypes Enabled FilterCriteria",
    "DynamoDB": "Stream StartingPosition BatchSize MaximumBatchingWindowInSeconds Enabled MaximumRetryAttempts "
    "MaximumRecordAgeInSeconds BisectBatchOnFunctionError FunctionResponseTypes FilterCriteria DestinationConfig "
    "ParallelizationFactor",
    "Schedule": "Schedule Enabled Input Name Description",
    "ScheduleV2": "ScheduleExpression State Input Name Description",
    "HttpApi": "ApiId Method Path TimeoutInMillis",
}
_CORS_KEYS = "AllowOrigins AllowMethods AllowHeaders MaxAge ExposeHeaders AllowCredentials"


def _of_type(r: _Resolver, resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in r.resources.items():
        if resource.get("Type") == resource_type:
            props = dict(resource.get("Properties") or {})
            _check_keys(logical_id, props, *_PROPERTIES[resource_type])
            found.append((logical_id, props))
    return found


def _check_keys(where: str, props: Mapping[str, Any], handled: str, ignored: str = "") -> None:
    unknown = sorted(set(props) - set(handled.split()) - set(ignored.split()))
    if unknown:
        raise TemplateSpecError(where, f"{', '.join(unknown)} not modelled locally (teach devstack/template_spec.py)")


def _name(r: _Resolver, logical_id: str) -> str:
    name = r.physical_name(logical_id)
    if not isinstance(name, str):
        raise TemplateSpecError(logical_id, f"physical name must be known locally, got {name}")
    return name


def _target(r: _Resolver, raw: Any, where: str, resource_type: str) -> str:
    """The one resource of ``resource_type`` that ``raw`` references (e.g. ``!GetAtt CatalogQueue.Arn``)."""
    found = [i for i in sorted(r.referenced_ids(raw)) if r.type_of(i) == resource_type]
    if len(found) != 1:
        raise TemplateSpecError(where, f"must reference exactly one {resource_type} of this template, got {raw!r}")
    return found[0]


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _filters(r: _Resolver, raw: Any, where: str) -> tuple[str, ...]:
    filters = r.concrete(raw or {}, where, "FilterCriteria").get("Filters", [])
    return tuple(str(item["Pattern"]) for item in filters)


def _build(template: Mapping[str, Any], r: _Resolver) -> StackSpec:
    for logical_id, resource in r.resources.items():
        extra = sorted(set(resource) - _RESOURCE_ATTRIBUTES)
        if extra:  # Condition: the local stack does not evaluate conditions
            raise TemplateSpecError(logical_id, f"resource attribute(s) {', '.join(extra)} not supported locally")
        if resource.get("Type") not in _PROPERTIES and resource.get("Type") not in _NOT_PROVISIONED:
            raise TemplateSpecError(
                logical_id, f"type {resource.get('Type')} has no local counterpart (teach devstack/template_spec.py)"
            )
    globals_ = dict((template.get("Globals") or {}).get("Function") or {})
    functions: dict[str, FunctionSpec] = {}
    routes: dict[str, list[HttpRoute]] = {}
    for logical_id, resource in r.resources.items():
        if resource.get("Type") == "AWS::Serverless::Function":
            functions[logical_id] = _function(r, logical_id, globals_, dict(resource.get("Properties") or {}), routes)
    spec = StackSpec(
        stack_name=r.stack_name,
        region=r.region,
        account_id=r.account_id,
        parameters=_freeze(r.parameters),
        buckets=_freeze({i: _bucket(r, i, p) for i, p in _of_type(r, "AWS::S3::Bucket")}),
        tables=_freeze({i: _table(r, i, p) for i, p in _of_type(r, "AWS::DynamoDB::Table")}),
        queues=_freeze({i: _queue(r, i, p) for i, p in _of_type(r, "AWS::SQS::Queue")}),
        rules=_freeze({i: _rule(r, i, p) for i, p in _of_type(r, "AWS::Events::Rule")}),
        functions=_freeze(functions),
        websocket=_websocket(r),
        http_api=_http_api(r, routes),
    )
    for logical_id, kind in ((MEDIA_BUCKET_ID, spec.buckets), (MEDIA_TABLE_ID, spec.tables)):
        if logical_id not in kind:
            raise TemplateSpecError(logical_id, "missing: other code depends on this logical id")
    return spec


def _bucket(r: _Resolver, logical_id: str, props: dict[str, Any]) -> BucketSpec:
    notifications = props.get("NotificationConfiguration") or {}
    _check_keys(f"{logical_id}.NotificationConfiguration", notifications, "EventBridgeConfiguration")
    enabled = (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled", False)
    cors = r.concrete((props.get("CorsConfiguration") or {}).get("CorsRules", []), logical_id, "CorsRules")
    rules = []
    for rule in cors:  # CloudFormation CorsRule -> S3 API CORSRule
        api = {k: rule[k] for k in ("AllowedHeaders", "AllowedMethods", "AllowedOrigins") if k in rule}
        renamed = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
        api.update({renamed[k]: rule[k] for k in renamed if k in rule})
        rules.append(_freeze(api))
    return BucketSpec(
        logical_id, _name(r, logical_id), _bool(r.concrete(enabled, logical_id, "EventBridge")), tuple(rules)
    )


def _keys(raw: list[Mapping[str, Any]]) -> KeySchema:
    return tuple((str(k["AttributeName"]), str(k["KeyType"])) for k in raw)


def _table(r: _Resolver, logical_id: str, props: dict[str, Any]) -> TableSpec:
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
        ttl_attribute=ttl.get("AttributeName") if _bool(ttl.get("Enabled")) else None,
        stream_view_type=(props.get("StreamSpecification") or {}).get("StreamViewType"),
        billing_mode=props["BillingMode"],
    )


def _queue(r: _Resolver, logical_id: str, props: dict[str, Any]) -> QueueSpec:
    redrive = None
    if "RedrivePolicy" in props:
        raw = props["RedrivePolicy"]
        raw = json.loads(raw) if isinstance(raw, str) else raw
        dlq = _target(r, raw.get("deadLetterTargetArn"), f"{logical_id}.RedrivePolicy", "AWS::SQS::Queue")
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


def _rule(r: _Resolver, logical_id: str, props: dict[str, Any]) -> RuleSpec:
    if r.concrete(props.get("EventBusName", "default"), logical_id, "EventBusName") != "default":
        raise TemplateSpecError(logical_id, "only rules on the default event bus are modelled locally")
    pattern = props.get("EventPattern")
    pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
    if not pattern:
        raise TemplateSpecError(logical_id, "EventPattern is required locally (S3 events are matched by it)")
    targets = []
    for target in props.get("Targets", []):
        where = f"{logical_id}.Targets.{target.get('Id')}"
        _check_keys(where, target, "Id Arn", "RetryPolicy DeadLetterConfig")
        targets.append(RuleTarget(str(target["Id"]), _target(r, target["Arn"], where, "AWS::SQS::Queue")))
    state = r.concrete(props.get("State", "ENABLED"), logical_id, "State")
    return RuleSpec(
        logical_id,
        _name(r, logical_id),
        _freeze(r.concrete(pattern, logical_id, "EventPattern")),
        tuple(targets),
        enabled=state == "ENABLED",
    )


def _function(
    r: _Resolver, logical_id: str, globals_: dict[str, Any], props: dict[str, Any], routes: dict[str, list[HttpRoute]]
) -> FunctionSpec:
    variables = {
        **(globals_.get("Environment") or {}).get("Variables", {}),
        **(props.get("Environment") or {}).get("Variables", {}),
    }
    props = {**globals_, **props}
    _check_keys(logical_id, props, *_PROPERTIES["AWS::Serverless::Function"])
    environment: dict[str, Value] = {}
    for key, raw in variables.items():
        value = r.resolve(raw, logical_id)
        environment[key] = value if isinstance(value, Unresolved) else str(value)
    sqs, streams, schedules = [], [], []
    for name, event in (props.get("Events") or {}).items():
        where, kind = f"{logical_id}.Events.{name}", event.get("Type")
        if kind not in _EVENT_PROPERTIES:
            raise TemplateSpecError(where, f"event type {kind} not modelled locally")
        ep = event.get("Properties") or {}
        _check_keys(where, ep, _EVENT_PROPERTIES[kind])
        c = lambda key, default, where=where, ep=ep: r.concrete(ep.get(key, default), where, key)  # noqa: E731
        failures = "ReportBatchItemFailures" in c("FunctionResponseTypes", [])
        if kind == "SQS":
            sqs.append(
                SqsSource(
                    _target(r, ep.get("Queue"), where, "AWS::SQS::Queue"),
                    int(c("BatchSize", 10)),
                    int(c("MaximumBatchingWindowInSeconds", 0)),
                    failures,
                    _bool(c("Enabled", True)),
                    _filters(r, ep.get("FilterCriteria"), where),
                )
            )
        elif kind == "DynamoDB":
            on_failure = (ep.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            streams.append(
                StreamSource(
                    _target(r, ep.get("Stream"), where, "AWS::DynamoDB::Table"),
                    str(c("StartingPosition", "LATEST")),
                    int(c("BatchSize", 100)),
                    int(c("MaximumBatchingWindowInSeconds", 0)),
                    int(c("MaximumRetryAttempts", -1)),
                    int(c("MaximumRecordAgeInSeconds", -1)),
                    _bool(c("BisectBatchOnFunctionError", False)),
                    failures,
                    _bool(c("Enabled", True)),
                    _filters(r, ep.get("FilterCriteria"), where),
                    _target(r, on_failure, where, "AWS::SQS::Queue") if on_failure else None,
                )
            )
        elif kind in ("Schedule", "ScheduleV2"):
            enabled = _bool(c("Enabled", True)) and c("State", "ENABLED") == "ENABLED"
            schedules.append(
                ScheduleSource(name, str(c("Schedule", None) or c("ScheduleExpression", "")), enabled, c("Input", None))
            )
        else:  # HttpApi
            api = _target(r, ep["ApiId"], where, "AWS::Serverless::HttpApi") if "ApiId" in ep else "ServerlessHttpApi"
            route = HttpRoute(str(c("Method", "ANY")).upper(), str(c("Path", "/")), logical_id)
            routes.setdefault(api, []).append(route)
    return FunctionSpec(
        logical_id,
        str(r.concrete(props.get("CodeUri"), logical_id, "CodeUri")),
        str(r.concrete(props.get("Handler"), logical_id, "Handler")),
        str(props.get("Runtime", "")),
        int(r.concrete(props.get("Timeout", 3), logical_id, "Timeout")),
        int(r.concrete(props.get("MemorySize", 128), logical_id, "MemorySize")),
        _freeze(environment),
        tuple(sqs),
        tuple(streams),
        tuple(schedules),
    )


def _http_api(r: _Resolver, routes: dict[str, list[HttpRoute]]) -> HttpApiSpec | None:
    declared = {i: p for i, p in _of_type(r, "AWS::Serverless::HttpApi")}
    apis = sorted(set(declared) | set(routes))
    if len(apis) > 1:
        raise TemplateSpecError(apis[1], "the local HTTP adapter serves one HTTP API; found " + ", ".join(apis))
    if not apis:
        return None
    logical_id = apis[0]
    cors = r.concrete(declared.get(logical_id, {}).get("CorsConfiguration", {}), logical_id, "CorsConfiguration")
    cors = {"AllowOrigins": ["*"]} if cors is True else (cors or {})
    _check_keys(f"{logical_id}.CorsConfiguration", cors, _CORS_KEYS)
    return HttpApiSpec(
        logical_id,
        tuple(routes.get(logical_id, [])),
        tuple(cors.get("AllowOrigins", [])),
        tuple(cors.get("AllowMethods", [])),
        tuple(cors.get("AllowHeaders", [])),
        int(cors["MaxAge"]) if "MaxAge" in cors else None,
    )


def _websocket(r: _Resolver) -> WebSocketSpec | None:
    apis = _of_type(r, "AWS::ApiGatewayV2::Api")
    for logical_id, props in apis:
        if props.get("ProtocolType") != "WEBSOCKET":
            raise TemplateSpecError(logical_id, "HTTP APIs are served locally only as AWS::Serverless::HttpApi")
    if len(apis) > 1:
        raise TemplateSpecError(apis[1][0], "the local gateway emulates one WebSocket API")
    integrations: dict[str, str] = {}
    for logical_id, props in _of_type(r, "AWS::ApiGatewayV2::Integration"):
        if props.get("IntegrationType") != "AWS_PROXY":
            raise TemplateSpecError(logical_id, "only AWS_PROXY (Lambda) integrations are emulated")
        integrations[logical_id] = _target(r, props.get("IntegrationUri"), logical_id, "AWS::Serverless::Function")
    route_map: dict[str, str] = {}
    for logical_id, props in _of_type(r, "AWS::ApiGatewayV2::Route"):
        if props.get("AuthorizationType", "NONE") != "NONE":
            raise TemplateSpecError(logical_id, "route authorizers are not emulated (check tokens in the function)")
        integration = _target(r, props.get("Target"), logical_id, "AWS::ApiGatewayV2::Integration")
        route_map[str(r.concrete(props["RouteKey"], logical_id, "RouteKey"))] = integrations[integration]
    stages = _of_type(r, "AWS::ApiGatewayV2::Stage")
    if not apis:
        return None
    if len(stages) != 1:
        raise TemplateSpecError(apis[0][0], f"the local gateway needs exactly one stage, found {len(stages)}")
    stage_id, stage = stages[0]
    settings = r.concrete(stage.get("DefaultRouteSettings") or {}, stage_id, "DefaultRouteSettings")
    return WebSocketSpec(
        apis[0][0],
        str(r.concrete(apis[0][1].get("RouteSelectionExpression"), apis[0][0], "RouteSelection")),
        _freeze(route_map),
        str(r.concrete(stage["StageName"], stage_id, "StageName")),
        settings.get("ThrottlingBurstLimit"),
        settings.get("ThrottlingRateLimit"),
    )
