"""Intrinsic resolution of template.yaml against the local stack: ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::Join``.

This module owns turning template expressions into local values, and local physical names:

- Pseudo parameters: ``AWS::StackName``, ``AWS::AccountId``, ``AWS::Region`` (given by the caller),
  ``AWS::Partition`` = ``aws``, ``AWS::URLSuffix`` = ``amazonaws.com``; parameters take their defaults unless
  overridden (``CommaDelimitedList`` becomes a list).
- Local physical names are ``<stack>-<LogicalId>`` unless the resource sets its name property; ``Ref`` of a
  bucket, table, rule or function and ``GetAtt <id>.Arn`` are computed from that name.
- What is only known after provisioning or deployment (queue URLs, stream ARNs, API ids, ``{{resolve:...}}``
  secrets) becomes :class:`~.model.Unresolved`; any other intrinsic raises :class:`~.model.TemplateSpecError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import TemplateSpecError, Unresolved, Value

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
class Resolver:
    """Resolves intrinsic functions against the local stack (see the module docstring)."""

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
