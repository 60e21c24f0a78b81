"""template.yaml: offline checks (cfn-lint, SAM transform, sam validate), least privilege, handler files, the
names shared with ``capturestream``, and the local spec that devstack builds from it."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from devstack.template_spec import (
    LOCAL_ACCOUNT_ID,
    HttpRoute,
    RedriveSpec,
    TemplateSpecError,
    Unresolved,
    load_stack_spec,
    parse_stack_spec,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".venv-tools" / "bin" / "sam"
MEDIA_BUCKET = f"capturestream-media-{LOCAL_ACCOUNT_ID}-us-east-1"
RAW = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
FUNCTIONS = sorted(k for k, v in RAW["Resources"].items() if v["Type"] == "AWS::Serverless::Function")
#: Managed policies SAM may attach; anything broader (e.g. AdministratorAccess) fails the least-privilege test.
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
}
#: Actions AWS only grants on Resource "*" (none needed yet; X-Ray comes through the managed policy).
STAR_RESOURCE_ACTIONS: set[str] = set()


def _cfn_lint() -> list[str]:
    """cfn-lint next to this interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).with_name("cfn-lint")
    found = str(beside) if beside.exists() else shutil.which("cfn-lint")
    if not found:
        pytest.skip("cfn-lint is not installed (pip install -e '.[dev]')")
    return [found]


# ------------------------------------------------------------------------------------------------- linters


def test_cfn_lint_is_clean_including_informational_checks() -> None:
    result = subprocess.run(
        [*_cfn_lint(), "--include-checks", "I", "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    not SAM.exists(), reason="SAM CLI tools venv absent: run scripts/sam-tools.sh to create .venv-tools"
)
def test_sam_validate_lint() -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# ------------------------------------------------------------------------------------------- SAM transform


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    """Offline SAM -> CloudFormation transform (samtranslator, no AWS calls); see shared/LOCAL_AWS.md §3."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    template = copy.deepcopy(RAW)
    for resource in template["Resources"].values():  # the raw translator wants packaged (s3://) code
        key = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}.get(
            resource["Type"]
        )
        if key and not str(resource["Properties"][key]).startswith("s3://"):
            resource["Properties"][key] = f"s3://artifacts/{resource['Properties'][key].strip('/')}.zip"
    # CloudFormation hands CommaDelimitedList values to the transform as lists; mirror that.
    origins = RAW["Parameters"]["CorsAllowOrigins"]["Default"].split(",")
    params = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "000000000000",
        "AWS::Partition": "aws",
        "AWS::StackName": "capturestream",
        "CorsAllowOrigins": origins,
    }
    to_py27_compatible_template(template, params)
    translated = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1")).translate(
        template, parameter_values=params, get_managed_policy_map=lambda: {}
    )
    return undo_mark_unicode_str_in_template(translated)


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _refs(value: Any) -> set[str]:
    """Names referenced by Ref / GetAtt / ${...} anywhere in ``value``."""
    if isinstance(value, list):
        return set().union(*map(_refs, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, arg in value.items():
        if key == "Ref":
            found.add(arg)
        elif key == "Fn::GetAtt":
            found.add(arg.split(".")[0] if isinstance(arg, str) else arg[0])
        elif key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]*)\}", text)}
            found |= _refs(arg[1] if isinstance(arg, list) else {})
        else:
            found |= _refs(arg)
    return found


def test_every_sqs_event_source_reports_partial_batch_failures(cfn: dict[str, Any]) -> None:
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    assert mappings, "the transform produced no event source mappings"
    for name, mapping in mappings.items():
        assert mapping["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name


def test_no_queue_policy_references_a_bucket(cfn: dict[str, Any]) -> None:
    buckets = set(_of_type(cfn, "AWS::S3::Bucket"))
    policies = _of_type(cfn, "AWS::SQS::QueuePolicy")
    assert policies
    for name, policy in policies.items():  # the S3 -> SQS dependency-cycle trap (shared/LOCAL_AWS.md §3)
        assert not _refs(policy) & buckets, f"{name} references {_refs(policy) & buckets}"
        depends_on = policy.get("DependsOn", [])
        assert not set([depends_on] if isinstance(depends_on, str) else depends_on) & buckets, name


def test_iam_is_least_privilege(cfn: dict[str, Any]) -> None:
    roles = _of_type(cfn, "AWS::IAM::Role") | _of_type(cfn, "AWS::IAM::Policy")
    assert roles
    for name, role in roles.items():
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES, name
        documents = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
        documents += [role["Properties"]["PolicyDocument"]] if "PolicyDocument" in role["Properties"] else []
        for document in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                assert not [a for a in actions if a == "*" or a.endswith(":*")], f"{name}: wildcard action"
                if "*" in resources:
                    assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{name}: {actions} on Resource *"


def test_manage_connections_is_scoped_to_the_stage(cfn: dict[str, Any]) -> None:
    statements = [
        s
        for role in _of_type(cfn, "AWS::IAM::Role").values()
        for p in role["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
        if s["Action"] == "execute-api:ManageConnections"
    ]
    assert statements
    for statement in statements:
        for resource in statement["Resource"]:
            assert re.search(
                r"\$\{WebSocketApi\}/\$\{StageName\}/(POST|GET|DELETE)/@connections/\*$", resource["Fn::Sub"]
            )


def test_queue_visibility_covers_six_function_timeouts() -> None:
    spec = load_stack_spec()
    for function in spec.functions.values():
        for source in function.sqs_sources:
            queue = spec.queues[source.queue_logical_id]
            assert queue.visibility_timeout >= 6 * function.timeout, (queue.logical_id, function.logical_id)
            assert queue.redrive is not None, f"{queue.logical_id} needs a DLQ"


def test_every_dlq_has_a_depth_alarm() -> None:
    spec = load_stack_spec()
    dlqs = {q.redrive.dlq_logical_id for q in spec.queues.values() if q.redrive}
    alarmed = {
        _refs(a["Properties"]["Dimensions"]).pop()
        for a in _of_type(RAW, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert dlqs and dlqs <= alarmed


# ------------------------------------------------------------------------------------------- CloudFront


def _distribution() -> dict[str, Any]:
    (distribution,) = _of_type(RAW, "AWS::CloudFront::Distribution").values()
    return distribution["Properties"]["DistributionConfig"]


def _origin_bucket(config: dict[str, Any], origin_id: str) -> str:
    (origin,) = [o for o in config["Origins"] if o["Id"] == origin_id]
    return origin["DomainName"]["Fn::GetAtt"][0]


def test_distribution_serves_the_public_media_prefixes_and_the_web_app_only() -> None:
    from devstack.cdn_edge import MEDIA_PREFIXES

    config = _distribution()
    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(behaviors) == {f"{prefix}*" for prefix in MEDIA_PREFIXES} == {"live/*", "vod/*", "thumbs/*"}
    assert not [p for p in behaviors if "sessions" in p]  # manifests name the channel and the ingest host
    assert {_origin_bucket(config, b["TargetOriginId"]) for b in behaviors.values()} == {"MediaBucket"}
    assert _origin_bucket(config, config["DefaultCacheBehavior"]["TargetOriginId"]) == "WebBucket"
    assert config["DefaultRootObject"] == "index.html"
    for behavior in [config["DefaultCacheBehavior"], *behaviors.values()]:
        assert behavior["ViewerProtocolPolicy"] in ("redirect-to-https", "https-only")
        assert set(behavior["AllowedMethods"]) <= {"GET", "HEAD", "OPTIONS"}


def test_buckets_are_private_and_read_through_origin_access_control() -> None:
    config = _distribution()
    (oac,) = _of_type(RAW, "AWS::CloudFront::OriginAccessControl")
    for origin in config["Origins"]:
        assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy OAI
    for bucket in ("MediaBucket", "WebBucket"):
        block = RAW["Resources"][bucket]["Properties"]["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4, bucket
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"] for p in _of_type(RAW, "AWS::S3::BucketPolicy").values()
    }
    assert set(policies) == {"MediaBucket", "WebBucket"}
    granted = {}
    for bucket, policy in policies.items():
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
        assert statement["Action"] == "s3:GetObject"  # no ListBucket: nothing can enumerate keys
        source = statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
        assert source.endswith(":distribution/${Distribution}")  # this distribution only
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        granted[bucket] = {r["Fn::Sub"].rsplit("}/", 1)[1] for r in resources}
    assert granted == {"MediaBucket": {"live/*", "vod/*", "thumbs/*"}, "WebBucket": {"*"}}


def _headers_policy(behavior: dict[str, Any]) -> dict[str, Any]:
    return RAW["Resources"][behavior["ResponseHeadersPolicyId"]["Ref"]]["Properties"]["ResponseHeadersPolicyConfig"]


def test_pages_get_the_same_headers_as_the_local_edge() -> None:
    from devstack.cdn_edge import PERMISSIONS_POLICY, REFERRER_POLICY, content_security_policy

    web = _headers_policy(_distribution()["DefaultCacheBehavior"])
    security = web["SecurityHeadersConfig"]
    assert security["ContentTypeOptions"] == {"Override": True}
    assert security["ReferrerPolicy"] == {"Override": True, "ReferrerPolicy": REFERRER_POLICY}
    csp = security["ContentSecurityPolicy"]
    assert csp["Override"] is True
    connect = [
        "wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}",
        "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}",
    ]
    assert csp["ContentSecurityPolicy"]["Fn::Sub"] == content_security_policy(connect)
    (permissions,) = web["CustomHeadersConfig"]["Items"]
    assert permissions == {"Header": "Permissions-Policy", "Override": True, "Value": PERMISSIONS_POLICY}
    assert "CorsConfig" not in web  # the REST API has its own allowlist (CorsAllowOrigins); pages need none


def test_media_is_public_with_cors_and_nosniff() -> None:
    from devstack.cdn_edge import CORS_HEADERS

    for behavior in _distribution()["CacheBehaviors"]:
        media = _headers_policy(behavior)
        assert media["SecurityHeadersConfig"]["ContentTypeOptions"] == {"Override": True}
        cors = media["CorsConfig"]
        assert cors["AccessControlAllowOrigins"]["Items"] == [CORS_HEADERS["Access-Control-Allow-Origin"]]
        assert ", ".join(cors["AccessControlAllowMethods"]["Items"]) == CORS_HEADERS["Access-Control-Allow-Methods"]
        assert ", ".join(cors["AccessControlExposeHeaders"]["Items"]) == CORS_HEADERS["Access-Control-Expose-Headers"]
        assert cors["AccessControlAllowCredentials"] is False and cors["OriginOverride"] is True


# ---------------------------------------------------------------------------------- handlers and settings


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_handler_resolves_to_a_handler_module(logical_id: str) -> None:
    function = load_stack_spec().functions[logical_id]
    path = ROOT / function.source_path
    if not path.exists():
        pytest.skip(f"pending: {function.source_path} for {logical_id} is not written yet")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert function.attribute in names, f"{function.source_path} defines no top-level {function.attribute!r}"


def _settings_classes_used(package: Path) -> list[type]:
    from pydantic_settings import BaseSettings

    from capturestream import settings

    used = {m for f in package.rglob("*.py") for m in re.findall(r"\b(\w+Settings)\b", f.read_text("utf-8"))}
    return [
        cls
        for name in sorted(used)
        if isinstance(cls := getattr(settings, name, None), type) and issubclass(cls, BaseSettings)
    ]


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_environment_matches_the_settings_the_function_reads(logical_id: str) -> None:
    function = load_stack_spec().functions[logical_id]
    package = ROOT / function.source_path.parent
    classes = _settings_classes_used(package) if package.exists() else []
    if not classes:
        pytest.skip(f"pending: {package.relative_to(ROOT)} reads no capturestream settings class yet")
    aliases = {field.alias for cls in classes for field in cls.model_fields.values() if field.alias}
    missing = aliases - set(function.environment)
    assert not missing, f"{logical_id} reads {sorted(missing)} but template.yaml does not set them"
    stray = set(function.environment) - aliases
    assert not stray, f"{logical_id} gets {sorted(stray)} that no settings class of it reads"


def test_table_and_rules_match_the_core_contract() -> None:
    from capturestream import keys, recordings, table

    spec = load_stack_spec()
    assert spec.table.key_schema == ((table.PK, "HASH"), (table.SK, "RANGE"))
    assert [(g.name, g.key_schema) for g in spec.table.gsis] == [
        (table.GSI1, ((table.GSI1_PK, "HASH"), (table.GSI1_SK, "RANGE"))),
        (recordings.GSI2, ((recordings.GSI2_PK, "HASH"), (recordings.GSI2_SK, "RANGE"))),
    ]
    assert spec.table.ttl_attribute == table.TTL_ATTRIBUTE
    for rule in spec.rules.values():
        for matcher in rule.event_pattern["detail"]["object"]["key"]:
            (kind, value), *rest = matcher.items()
            assert not rest and kind in ("prefix", "wildcard"), f"{rule.logical_id}: only prefixes and wildcards"
            assert value.startswith(keys.TRIGGER_PREFIXES), rule.logical_id
            assert not value.startswith(keys.DERIVED_PREFIXES), f"{rule.logical_id} would loop"


# ----------------------------------------------------------------------------------------- the local spec


@pytest.fixture(scope="module")
def spec():  # noqa: ANN201 - StackSpec
    return load_stack_spec()


def test_spec_table(spec) -> None:  # noqa: ANN001
    table = spec.table
    assert table.name == "capturestream-MediaTable"
    assert table.key_schema == (("pk", "HASH"), ("sk", "RANGE"))
    assert set(table.attribute_definitions) == {
        ("pk", "S"),
        ("sk", "S"),
        ("gsi1pk", "S"),
        ("gsi1sk", "S"),
        ("gsi2pk", "S"),
        ("gsi2sk", "S"),
    }
    gsi, gsi2 = table.gsis
    assert (gsi.name, gsi.key_schema, gsi.projection_type) == ("gsi1", (("gsi1pk", "HASH"), ("gsi1sk", "RANGE")), "ALL")
    assert (gsi2.name, gsi2.projection_type) == ("gsi2", "ALL")
    assert (table.ttl_attribute, table.stream_view_type, table.billing_mode) == (
        "expires_at",
        "NEW_AND_OLD_IMAGES",
        "PAY_PER_REQUEST",
    )


def test_spec_bucket(spec) -> None:  # noqa: ANN001
    assert spec.bucket.name == MEDIA_BUCKET
    assert spec.bucket.eventbridge_enabled
    (cors,) = spec.bucket.cors_rules
    assert cors["AllowedMethods"] == ["GET", "HEAD"] and cors["AllowedOrigins"] == ["*"]
    assert cors["MaxAgeSeconds"] == 3600 and "ExposeHeaders" in cors  # S3 API names, not CloudFormation's


def test_spec_rule_pattern_is_resolved_with_the_local_bucket_name(spec) -> None:  # noqa: ANN001
    rule = spec.rules["CatalogRule"]
    assert rule.name == "capturestream-CatalogRule" and rule.enabled
    assert dict(rule.event_pattern) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [MEDIA_BUCKET]}, "object": {"key": [{"prefix": "sessions/"}]}},
    }
    assert [(t.target_id, t.queue_logical_id) for t in rule.targets] == [("CatalogQueue", "CatalogQueue")]


def test_spec_queues_and_redrive(spec) -> None:  # noqa: ANN001
    queue, dlq = spec.queues["CatalogQueue"], spec.queues["CatalogDLQ"]
    assert (queue.name, queue.visibility_timeout, queue.retention_seconds) == (
        "capturestream-CatalogQueue",
        180,
        345600,
    )
    assert queue.redrive == RedriveSpec("CatalogDLQ", 5)
    assert (dlq.name, dlq.retention_seconds, dlq.redrive) == ("capturestream-CatalogDLQ", 1209600, None)


def test_spec_functions_merge_globals(spec) -> None:  # noqa: ANN001
    catalog = spec.functions["CatalogFunction"]
    assert (catalog.module, catalog.attribute) == ("functions.catalog_media.handler", "handler")
    assert (catalog.runtime, catalog.timeout, catalog.memory) == ("python3.12", 30, 512)
    assert dict(catalog.environment) == {
        "TABLE_NAME": "capturestream-MediaTable",
        "MEDIA_BUCKET": MEDIA_BUCKET,
        "LOG_LEVEL": "INFO",
    }
    manifests, segments = sorted(catalog.sqs_sources, key=lambda source: source.queue_logical_id)
    assert (manifests.queue_logical_id, manifests.batch_size, manifests.batching_window) == ("CatalogQueue", 10, 0)
    assert (segments.queue_logical_id, segments.batch_size, segments.batching_window) == ("SegmentQueue", 100, 5)
    assert all(s.report_batch_item_failures and s.enabled for s in (manifests, segments))
    api = spec.functions["ApiFunction"].environment
    assert api["TABLE_NAME"] == "capturestream-MediaTable" and api["LOG_LEVEL"] == "INFO"
    assert api["CORS_ALLOW_ORIGINS"] == "http://localhost:8000,http://127.0.0.1:8000"
    assert api["RTMP_INGEST_URL"] == api["CDN_BASE_URL"] == api["WEB_BASE_URL"] == ""
    assert isinstance(api["JWT_SECRET"], Unresolved)  # a {{resolve:secretsmanager}} reference


def test_spec_unresolved_values_must_be_supplied(spec) -> None:  # noqa: ANN001
    ws = spec.functions["WsFunction"]
    assert isinstance(ws.environment["WS_ENDPOINT"], Unresolved)
    with pytest.raises(TemplateSpecError, match="WsFunction.*WS_ENDPOINT.*JWT_SECRET"):
        ws.resolved_environment()
    env = ws.resolved_environment({"WS_ENDPOINT": "http://127.0.0.1:3001/dev", "JWT_SECRET": "s" * 48, "X": "y"})
    assert env["WS_ENDPOINT"] == "http://127.0.0.1:3001/dev" and "X" not in env


def test_spec_websocket_and_http_routes(spec) -> None:  # noqa: ANN001
    ws = spec.websocket
    assert ws.route_selection_expression == "$request.body.type" and ws.stage == "dev"
    assert dict(ws.routes) == {"$connect": "WsFunction", "$disconnect": "WsFunction", "$default": "WsFunction"}
    assert (ws.throttling_burst_limit, ws.throttling_rate_limit) == (500, 1000)
    assert spec.http_api.routes == (
        HttpRoute("ANY", "/api/{proxy+}", "ApiFunction"),
        HttpRoute("GET", "/docs", "ApiFunction"),
        HttpRoute("GET", "/openapi.json", "ApiFunction"),
    )
    assert spec.http_api.cors_allow_origins == ("http://localhost:8000", "http://127.0.0.1:8000")


def test_spec_overrides_stack_name_and_parameters() -> None:
    spec = load_stack_spec(
        stack_name="other",
        account_id="000000000000",
        parameters={"StageName": "prod", "CorsAllowOrigins": "https://a.example, https://b.example"},
    )
    assert spec.bucket.name == "other-media-000000000000-us-east-1"
    assert spec.table.name == "other-MediaTable" and spec.queues["CatalogQueue"].name == "other-CatalogQueue"
    assert spec.websocket.stage == "prod"
    assert spec.functions["ApiFunction"].environment["CORS_ALLOW_ORIGINS"] == "https://a.example,https://b.example"
    with pytest.raises(TemplateSpecError, match="NoSuchParameter"):
        load_stack_spec(parameters={"NoSuchParameter": "x"})


def _mutated(change) -> dict[str, Any]:  # noqa: ANN001
    template = copy.deepcopy(RAW)
    change(template["Resources"])
    return template


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r.update(Feed={"Type": "AWS::Kinesis::Stream", "Properties": {}}),
            "Feed: type AWS::Kinesis::Stream has no local counterpart",
        ),
        (lambda r: r["CatalogQueue"]["Properties"].update(FifoQueue=True), "CatalogQueue: FifoQueue not modelled"),
        (
            lambda r: r["CatalogRule"]["Properties"]["Targets"][0].update(Arn={"Fn::GetAtt": ["ApiFunction", "Arn"]}),
            "CatalogRule.Targets.CatalogQueue: must reference exactly one AWS::SQS::Queue",
        ),
        (
            lambda r: r["CatalogRule"]["Properties"]["Targets"][0].update(InputPath="$.detail"),
            "CatalogRule.Targets.CatalogQueue: InputPath not modelled",
        ),
        (lambda r: r["MediaTable"].update(Condition="IsProd"), "MediaTable: resource attribute.*Condition"),
        (
            lambda r: r["CatalogFunction"]["Properties"]["Events"]["Catalog"]["Properties"].update(ScalingConfig={}),
            "CatalogFunction.Events.Catalog: ScalingConfig not modelled",
        ),
        (
            lambda r: r["CatalogFunction"]["Properties"]["Events"].update(S3={"Type": "S3", "Properties": {}}),
            "CatalogFunction.Events.S3: event type S3 not modelled",
        ),
        (
            lambda r: r["MediaBucket"]["Properties"]["NotificationConfiguration"].update(QueueConfigurations=[]),
            "MediaBucket.NotificationConfiguration: QueueConfigurations not modelled",
        ),
        (
            lambda r: r["MediaTable"]["Properties"].update(TableName={"Fn::If": ["IsProd", "a", "b"]}),
            "MediaTable: intrinsic Fn::If is not supported",
        ),
        (
            lambda r: r["WsConnectRoute"]["Properties"].update(AuthorizationType="CUSTOM"),
            "WsConnectRoute: route authorizers are not emulated",
        ),
        (
            lambda r: r.pop("MediaTable"),
            "Ref to undeclared name 'MediaTable'",
        ),
    ],
)
def test_spec_refuses_what_it_cannot_reproduce(change, message: str) -> None:  # noqa: ANN001
    with pytest.raises(TemplateSpecError, match=message):
        parse_stack_spec(_mutated(change))


def test_spec_models_stream_and_schedule_sources_for_later_functions() -> None:
    def add_notifier(resources: dict[str, Any]) -> None:
        resources["NotifyFunction"] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/",
                "Handler": "notify_viewers.handler.handler",
                "Environment": {"Variables": {"STREAM": {"Fn::GetAtt": ["MediaTable", "StreamArn"]}}},
                "Events": {
                    "Stream": {
                        "Type": "DynamoDB",
                        "Properties": {
                            "Stream": {"Fn::GetAtt": ["MediaTable", "StreamArn"]},
                            "StartingPosition": "LATEST",
                            "BatchSize": 50,
                            "MaximumRetryAttempts": 2,
                            "BisectBatchOnFunctionError": True,
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["CatalogDLQ", "Arn"]}}},
                        },
                    },
                    "Reap": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}},
                },
            },
        }

    notify = parse_stack_spec(_mutated(add_notifier)).functions["NotifyFunction"]
    (stream,) = notify.stream_sources
    assert (stream.table_logical_id, stream.starting_position, stream.batch_size) == ("MediaTable", "LATEST", 50)
    assert (stream.maximum_retry_attempts, stream.bisect_batch_on_error, stream.report_batch_item_failures) == (
        2,
        True,
        True,
    )
    assert stream.on_failure_queue_logical_id == "CatalogDLQ"
    assert notify.environment["STREAM"] == Unresolved("!GetAtt MediaTable.StreamArn", "MediaTable", "StreamArn")
    assert [(s.name, s.expression, s.enabled) for s in notify.schedules] == [("Reap", "rate(1 minute)", True)]


def test_notifier_reads_stream_state_at_once_and_audience_changes_in_windows(spec) -> None:  # noqa: ANN001
    """Stream state and chat go out immediately; joins and leaves are gathered so a crowd is one viewerCount."""
    sources = {s.batching_window: s for s in spec.functions["NotifierFunction"].stream_sources}
    assert set(sources) == {0, 2}
    assert [json.loads(p) for p in sources[0].filter_patterns] == [
        {"dynamodb": {"Keys": {"sk": {"S": ["STREAM"]}}}},
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "CHAT#"}]}}}},
    ]
    assert [json.loads(p) for p in sources[2].filter_patterns] == [
        {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "SUB#"}]}}}}
    ]
    for source in sources.values():
        assert source.on_failure_queue_logical_id == "NotifierDLQ" and source.report_batch_item_failures
