"""Test helpers that build AWS resources from template.yaml, so schemas are defined once.

(serverless-test-samples ``mock_test.py``: the mock table's KeySchema, AttributeDefinitions and indexes are
read from the template, never restated in tests.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]


@cache
def template() -> dict[str, Any]:
    """template.yaml parsed (short-form intrinsics understood)."""
    return yaml_parse((ROOT / "template.yaml").read_text())


def create_media_table(dynamodb: Any, name: str = "capturestream-MediaTable") -> str:
    """Create the single table exactly as template.yaml declares it (keys, GSI, stream); return its name."""
    props = template()["Resources"]["MediaTable"]["Properties"]
    dynamodb.create_table(
        TableName=name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        StreamSpecification={"StreamEnabled": True, **props["StreamSpecification"]},
    )
    return name
