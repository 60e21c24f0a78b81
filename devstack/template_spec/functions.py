"""Per-resource-type builders for compute: functions with their event sources, the HTTP API, the WebSocket API.

This module owns reading ``AWS::Serverless::Function`` (``Globals`` merged in, environment resolved, SQS /
DynamoDB / Schedule / HttpApi events), the ``AWS::Serverless::HttpApi`` routes and CORS that the local HTTP
adapter serves, and the ``AWS::ApiGatewayV2::*`` WebSocket API that the local gateway emulates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import (
    FunctionSpec,
    HttpApiSpec,
    HttpRoute,
    ScheduleSource,
    SqsSource,
    StreamSource,
    TemplateSpecError,
    Unresolved,
    Value,
    WebSocketSpec,
)
from .resolver import Resolver
from .resources import PROPERTIES, as_bool, check_keys, freeze, of_type, referenced_id

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


def _filters(r: Resolver, raw: Any, where: str) -> tuple[str, ...]:
    filters = r.concrete(raw or {}, where, "FilterCriteria").get("Filters", [])
    return tuple(str(item["Pattern"]) for item in filters)


def function_specs(
    template: Mapping[str, Any], r: Resolver
) -> tuple[dict[str, FunctionSpec], dict[str, list[HttpRoute]]]:
    """Every function of the template, and the HTTP API routes their ``HttpApi`` events declare (by API id)."""
    globals_ = dict((template.get("Globals") or {}).get("Function") or {})
    functions: dict[str, FunctionSpec] = {}
    routes: dict[str, list[HttpRoute]] = {}
    for logical_id, resource in r.resources.items():
        if resource.get("Type") == "AWS::Serverless::Function":
            functions[logical_id] = _function_spec(
                r, logical_id, globals_, dict(resource.get("Properties") or {}), routes
            )
    return functions, routes


def _function_spec(
    r: Resolver, logical_id: str, globals_: dict[str, Any], props: dict[str, Any], routes: dict[str, list[HttpRoute]]
) -> FunctionSpec:
    variables = {
        **(globals_.get("Environment") or {}).get("Variables", {}),
        **(props.get("Environment") or {}).get("Variables", {}),
    }
    props = {**globals_, **props}
    check_keys(logical_id, props, *PROPERTIES["AWS::Serverless::Function"])
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
        check_keys(where, ep, _EVENT_PROPERTIES[kind])
        c = lambda key, default, where=where, ep=ep: r.concrete(ep.get(key, default), where, key)  # noqa: E731
        failures = "ReportBatchItemFailures" in c("FunctionResponseTypes", [])
        if kind == "SQS":
            sqs.append(
                SqsSource(
                    referenced_id(r, ep.get("Queue"), where, "AWS::SQS::Queue"),
                    int(c("BatchSize", 10)),
                    int(c("MaximumBatchingWindowInSeconds", 0)),
                    failures,
                    as_bool(c("Enabled", True)),
                    _filters(r, ep.get("FilterCriteria"), where),
                )
            )
        elif kind == "DynamoDB":
            on_failure = (ep.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            streams.append(
                StreamSource(
                    referenced_id(r, ep.get("Stream"), where, "AWS::DynamoDB::Table"),
                    str(c("StartingPosition", "LATEST")),
                    int(c("BatchSize", 100)),
                    int(c("MaximumBatchingWindowInSeconds", 0)),
                    int(c("MaximumRetryAttempts", -1)),
                    int(c("MaximumRecordAgeInSeconds", -1)),
                    as_bool(c("BisectBatchOnFunctionError", False)),
                    failures,
                    as_bool(c("Enabled", True)),
                    _filters(r, ep.get("FilterCriteria"), where),
                    referenced_id(r, on_failure, where, "AWS::SQS::Queue") if on_failure else None,
                )
            )
        elif kind in ("Schedule", "ScheduleV2"):
            enabled = as_bool(c("Enabled", True)) and c("State", "ENABLED") == "ENABLED"
            schedules.append(
                ScheduleSource(name, str(c("Schedule", None) or c("ScheduleExpression", "")), enabled, c("Input", None))
            )
        else:  # HttpApi
            api = (
                referenced_id(r, ep["ApiId"], where, "AWS::Serverless::HttpApi")
                if "ApiId" in ep
                else "ServerlessHttpApi"
            )
            route = HttpRoute(str(c("Method", "ANY")).upper(), str(c("Path", "/")), logical_id)
            routes.setdefault(api, []).append(route)
    return FunctionSpec(
        logical_id,
        str(r.concrete(props.get("CodeUri"), logical_id, "CodeUri")),
        str(r.concrete(props.get("Handler"), logical_id, "Handler")),
        str(props.get("Runtime", "")),
        int(r.concrete(props.get("Timeout", 3), logical_id, "Timeout")),
        int(r.concrete(props.get("MemorySize", 128), logical_id, "MemorySize")),
        freeze(environment),
        tuple(sqs),
        tuple(streams),
        tuple(schedules),
    )


def http_api_spec(r: Resolver, routes: dict[str, list[HttpRoute]]) -> HttpApiSpec | None:
    declared = {i: p for i, p in of_type(r, "AWS::Serverless::HttpApi")}
    apis = sorted(set(declared) | set(routes))
    if len(apis) > 1:
        raise TemplateSpecError(apis[1], "the local HTTP adapter serves one HTTP API; found " + ", ".join(apis))
    if not apis:
        return None
    logical_id = apis[0]
    cors = r.concrete(declared.get(logical_id, {}).get("CorsConfiguration", {}), logical_id, "CorsConfiguration")
    cors = {"AllowOrigins": ["*"]} if cors is True else (cors or {})
    check_keys(f"{logical_id}.CorsConfiguration", cors, _CORS_KEYS)
    return HttpApiSpec(
        logical_id,
        tuple(routes.get(logical_id, [])),
        tuple(cors.get("AllowOrigins", [])),
        tuple(cors.get("AllowMethods", [])),
        tuple(cors.get("AllowHeaders", [])),
        int(cors["MaxAge"]) if "MaxAge" in cors else None,
    )


def websocket_spec(r: Resolver) -> WebSocketSpec | None:
    apis = of_type(r, "AWS::ApiGatewayV2::Api")
    for logical_id, props in apis:
        if props.get("ProtocolType") != "WEBSOCKET":
            raise TemplateSpecError(logical_id, "HTTP APIs are served locally only as AWS::Serverless::HttpApi")
    if len(apis) > 1:
        raise TemplateSpecError(apis[1][0], "the local gateway emulates one WebSocket API")
    integrations: dict[str, str] = {}
    for logical_id, props in of_type(r, "AWS::ApiGatewayV2::Integration"):
        if props.get("IntegrationType") != "AWS_PROXY":
            raise TemplateSpecError(logical_id, "only AWS_PROXY (Lambda) integrations are emulated")
        integrations[logical_id] = referenced_id(
            r, props.get("IntegrationUri"), logical_id, "AWS::Serverless::Function"
        )
    route_map: dict[str, str] = {}
    for logical_id, props in of_type(r, "AWS::ApiGatewayV2::Route"):
        if props.get("AuthorizationType", "NONE") != "NONE":
            raise TemplateSpecError(logical_id, "route authorizers are not emulated (check tokens in the function)")
        integration = referenced_id(r, props.get("Target"), logical_id, "AWS::ApiGatewayV2::Integration")
        route_map[str(r.concrete(props["RouteKey"], logical_id, "RouteKey"))] = integrations[integration]
    stages = of_type(r, "AWS::ApiGatewayV2::Stage")
    if not apis:
        return None
    if len(stages) != 1:
        raise TemplateSpecError(apis[0][0], f"the local gateway needs exactly one stage, found {len(stages)}")
    stage_id, stage = stages[0]
    settings = r.concrete(stage.get("DefaultRouteSettings") or {}, stage_id, "DefaultRouteSettings")
    return WebSocketSpec(
        apis[0][0],
        str(r.concrete(apis[0][1].get("RouteSelectionExpression"), apis[0][0], "RouteSelection")),
        freeze(route_map),
        str(r.concrete(stage["StageName"], stage_id, "StageName")),
        settings.get("ThrottlingBurstLimit"),
        settings.get("ThrottlingRateLimit"),
    )
