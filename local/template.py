"""Read the SAM template (the deployable truth) so the local stack and the tests derive from it.

CloudFormation short tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) become their long forms
(``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``, ``{"Fn::Sub": ...}``), exactly as CloudFormation
sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
FUNCTION_LOGICAL_ID = "RescheduleFunction"

# Lambda's own defaults, used when neither the function nor Globals set a timeout or a memory size.
LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3
LAMBDA_DEFAULT_MEMORY_MB = 128

_FN_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short tags.

    Timestamps stay strings: CloudFormation has no date type (``Version: 2012-10-17`` is a string).
    """


CloudFormationLoader.yaml_implicit_resolvers = {
    first_char: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first_char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_value(loader: CloudFormationLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(
        None, None, f"unexpected node {type(node).__name__}", node.start_mark
    )


def _fn_constructor(name: str) -> Any:
    def construct(loader: CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
        return {name: _construct_value(loader, node)}

    return construct


def _construct_get_att(loader: CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_value(loader, node)
    if isinstance(value, str):
        # "!GetAtt Resource.Attribute.With.Dots": only the first dot separates the resource.
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


CloudFormationLoader.add_constructor("!Ref", _fn_constructor("Ref"))
CloudFormationLoader.add_constructor("!Condition", _fn_constructor("Condition"))
CloudFormationLoader.add_constructor("!GetAtt", _construct_get_att)
for _tag in _FN_TAGS:
    CloudFormationLoader.add_constructor(f"!{_tag}", _fn_constructor(f"Fn::{_tag}"))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template into plain dicts with long-form intrinsics."""
    with path.open(encoding="utf-8") as stream:
        template: object = yaml.load(stream, Loader=CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict) or "Resources" not in template:
        raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
    return template


def _function_properties(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][FUNCTION_LOGICAL_ID].get("Properties", {})
    return properties


def _global_function_properties(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    return properties


def function_timeout_seconds(template: dict[str, Any]) -> int:
    """The relay function's timeout: its own setting, else Globals, else Lambda's default."""
    timeout = _function_properties(template).get(
        "Timeout", _global_function_properties(template).get("Timeout", LAMBDA_DEFAULT_TIMEOUT_SECONDS)
    )
    return int(timeout)


def function_memory_mb(template: dict[str, Any]) -> int:
    """The relay function's memory size: its own setting, else Globals, else Lambda's default."""
    memory = _function_properties(template).get(
        "MemorySize", _global_function_properties(template).get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB)
    )
    return int(memory)


def function_environment(template: dict[str, Any]) -> dict[str, Any]:
    """The relay function's environment Variables as written (values may be intrinsics).

    Globals' variables come first and the function's own override them, as SAM merges them.
    """
    global_vars = _global_function_properties(template).get("Environment", {}).get("Variables", {})
    own_vars = _function_properties(template).get("Environment", {}).get("Variables", {})
    return {**global_vars, **own_vars}
