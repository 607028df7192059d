"""Schemathesis against openapi.json through the API emulator: no 500s, and every answer matches the
document (status, content type, body schema)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.stack import Stack
from tests.helpers import ZAPIER
from tools.openapi import OPENAPI_PATH

MAX_EXAMPLES = 60
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def _operations() -> list[str]:
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    # Every operation of our own document loads (an Err would raise in ok()).
    return [result.ok().label for result in schema.get_all_operations()]  # type: ignore[union-attr]


@pytest.mark.parametrize("label", _operations())
def test_api_conforms_to_its_document(label: str, stack: Stack) -> None:
    assert stack.api is not None
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    schema.config.update(base_url=stack.api.url)
    operation = schema.find_operation_by_label(label)
    assert operation is not None

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {ZAPIER.api_key}"}, timeout=30)
        assert response.status_code != 500, response.text
        case.validate_response(response, checks=CHECKS)

    check()
