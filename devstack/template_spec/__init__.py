"""template.yaml -> the typed spec of the local stack (what devstack provisions and wires).

This package owns the *reading* of template.yaml for local use; :mod:`devstack.provision` owns creating it.
This module holds the entry points (:func:`load_stack_spec`, :func:`parse_stack_spec`) and re-exports the
public names; the work is split by concept:

- :mod:`.model`: the frozen dataclasses of the spec, :class:`Unresolved` and :class:`TemplateSpecError`;
- :mod:`.resolver`: intrinsics (``Ref``/``Sub``/``GetAtt``/``Join``), pseudo parameters, physical names;
- :mod:`.resources`: the catalogue of supported types and properties; buckets, tables, queues, rules;
- :mod:`.functions`: functions and their event sources, the HTTP API, the WebSocket API.

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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .functions import function_specs, http_api_spec, websocket_spec
from .model import (
    MEDIA_BUCKET_ID,
    MEDIA_TABLE_ID,
    BucketSpec,
    FunctionSpec,
    HttpApiSpec,
    HttpRoute,
    IndexSpec,
    KeySchema,
    QueueSpec,
    RedriveSpec,
    RuleSpec,
    RuleTarget,
    ScheduleSource,
    SqsSource,
    StackSpec,
    StreamSource,
    TableSpec,
    TemplateSpecError,
    Unresolved,
    Value,
    WebSocketSpec,
)
from .resolver import Resolver
from .resources import bucket_spec, check_resource_types, freeze, of_type, queue_spec, rule_spec, table_spec

__all__ = [
    "DEFAULT_TEMPLATE",
    "LOCAL_ACCOUNT_ID",
    "LOCAL_REGION",
    "LOCAL_STACK_NAME",
    "MEDIA_BUCKET_ID",
    "MEDIA_TABLE_ID",
    "BucketSpec",
    "FunctionSpec",
    "HttpApiSpec",
    "HttpRoute",
    "IndexSpec",
    "KeySchema",
    "QueueSpec",
    "RedriveSpec",
    "RuleSpec",
    "RuleTarget",
    "ScheduleSource",
    "SqsSource",
    "StackSpec",
    "StreamSource",
    "TableSpec",
    "TemplateSpecError",
    "Unresolved",
    "Value",
    "WebSocketSpec",
    "load_stack_spec",
    "parse_stack_spec",
]

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
LOCAL_STACK_NAME = "capturestream"
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"


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
    return _build(template, Resolver(template, stack_name, region, account_id, parameters or {}))


def _build(template: Mapping[str, Any], r: Resolver) -> StackSpec:
    check_resource_types(r)
    functions, routes = function_specs(template, r)
    spec = StackSpec(
        stack_name=r.stack_name,
        region=r.region,
        account_id=r.account_id,
        parameters=freeze(r.parameters),
        buckets=freeze({i: bucket_spec(r, i, p) for i, p in of_type(r, "AWS::S3::Bucket")}),
        tables=freeze({i: table_spec(r, i, p) for i, p in of_type(r, "AWS::DynamoDB::Table")}),
        queues=freeze({i: queue_spec(r, i, p) for i, p in of_type(r, "AWS::SQS::Queue")}),
        rules=freeze({i: rule_spec(r, i, p) for i, p in of_type(r, "AWS::Events::Rule")}),
        functions=freeze(functions),
        websocket=websocket_spec(r),
        http_api=http_api_spec(r, routes),
    )
    for logical_id, kind in ((MEDIA_BUCKET_ID, spec.buckets), (MEDIA_TABLE_ID, spec.tables)):
        if logical_id not in kind:
            raise TemplateSpecError(logical_id, "missing: other code depends on this logical id")
    return spec
