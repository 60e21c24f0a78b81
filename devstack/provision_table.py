"""DynamoDB tables of the local stack: create, reconcile in place, wait until ACTIVE.

This module owns :func:`provision_table` (called by :func:`devstack.provision.provision`) and its result,
:class:`ProvisionedTable`. Reconciliation never loses items: missing GSIs, TTL and the stream are added in place;
a different key schema or stream view type raises :class:`~devstack.provision_errors.ProvisionError` instead of
recreating the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from devstack.provision_errors import ProvisionError, error_code, naming
from devstack.template_spec import TableSpec

__all__ = ["ProvisionedTable", "provision_table"]

logger = logging.getLogger("devstack.provision")  # the provisioning log, as before the split

_TABLE_ACTIVE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProvisionedTable:
    """A table as the endpoint reports it; ``stream_arn`` feeds the DynamoDB Streams poller."""

    logical_id: str
    name: str
    arn: str
    stream_arn: str | None


def provision_table(dynamodb: Any, table: TableSpec) -> ProvisionedTable:
    """Create ``table`` or reconcile the existing one in place, wait until it is ACTIVE, then enable TTL."""
    with naming(table.logical_id):
        try:
            description = dynamodb.describe_table(TableName=table.name)["Table"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            description = dynamodb.create_table(**_create_table_arguments(table))["TableDescription"]
        else:
            _reconcile_table(dynamodb, table, description)
        description = _wait_active(dynamodb, table.name, description)
        if table.ttl_attribute:
            ttl = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
            if (
                ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING")
                or ttl.get("AttributeName") != table.ttl_attribute
            ):
                dynamodb.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True},
                )
    return ProvisionedTable(table.logical_id, table.name, description["TableArn"], description.get("LatestStreamArn"))


def _key_schema(schema: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"AttributeName": name, "KeyType": kind} for name, kind in schema]


def _gsi(index: Any) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": index.projection_type}
    if index.non_key_attributes:
        projection["NonKeyAttributes"] = list(index.non_key_attributes)
    return {"IndexName": index.name, "KeySchema": _key_schema(index.key_schema), "Projection": projection}


def _create_table_arguments(table: TableSpec) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": _key_schema(table.key_schema),
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in table.attribute_definitions],
        "BillingMode": table.billing_mode,
    }
    if table.gsis:
        arguments["GlobalSecondaryIndexes"] = [_gsi(index) for index in table.gsis]
    if table.stream_view_type:
        arguments["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    return arguments


def _reconcile_table(dynamodb: Any, table: TableSpec, description: Mapping[str, Any]) -> None:
    """Fix in place what can be fixed without losing items; refuse the rest."""
    if description["KeySchema"] != _key_schema(table.key_schema):
        raise ProvisionError(
            f"{table.logical_id}: table {table.name} exists with key schema {description['KeySchema']}, "
            f"template.yaml says {_key_schema(table.key_schema)}; delete the local table (its data) to recreate it"
        )
    existing = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    definitions = [{"AttributeName": n, "AttributeType": t} for n, t in table.attribute_definitions]
    for index in table.gsis:
        if index.name not in existing:
            logger.info("adding GSI %s to %s", index.name, table.name)
            dynamodb.update_table(
                TableName=table.name,
                AttributeDefinitions=definitions,
                GlobalSecondaryIndexUpdates=[{"Create": _gsi(index)}],
            )
    stream = description.get("StreamSpecification") or {}
    if table.stream_view_type and not stream.get("StreamEnabled"):
        dynamodb.update_table(
            TableName=table.name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": table.stream_view_type},
        )
    elif table.stream_view_type and stream.get("StreamViewType") != table.stream_view_type:
        raise ProvisionError(
            f"{table.logical_id}: stream view type is {stream.get('StreamViewType')}, template.yaml says "
            f"{table.stream_view_type}; delete the local table to recreate it"
        )


def _wait_active(dynamodb: Any, name: str, description: Mapping[str, Any]) -> Mapping[str, Any]:
    deadline = time.monotonic() + _TABLE_ACTIVE_TIMEOUT
    while description.get("TableStatus") != "ACTIVE" or any(
        index.get("IndexStatus", "ACTIVE") != "ACTIVE" for index in description.get("GlobalSecondaryIndexes", [])
    ):
        if time.monotonic() > deadline:
            raise ProvisionError(f"table {name} not ACTIVE after {_TABLE_ACTIVE_TIMEOUT:.0f} s")
        time.sleep(0.05)
        description = dynamodb.describe_table(TableName=name)["Table"]
    return description
