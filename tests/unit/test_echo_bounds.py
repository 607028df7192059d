"""What the relay repeats of a caller, or of itself, is bounded: answers, details, log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

from aws_lambda_powertools import Logger

from local.stack import CODE_DIR
from relay.errors import MAX_ECHO, FieldProblem, bounded, echo, malformed, not_configured
from relay.logs import MAX_TRACEBACK_CHARACTERS, BoundedFormatter, door_logger
from relay.web.problems import problem_response

GIANT = "k" * 60_000


def _longest_run(text: str, char: str = "k") -> int:
    return max((len(run) for run in re.findall(f"{char}+", text)), default=0)


def test_a_caller_value_is_cut_to_the_echo_bound() -> None:
    assert len(bounded(GIANT)) == MAX_ECHO
    assert bounded("short") == "short"
    assert _longest_run(echo(GIANT)) < MAX_ECHO
    # A lone surrogate (JSON can spell one) becomes a visible escape, so the text always encodes.
    assert bounded("a\ud800b").encode("utf-8") == b"a\\ud800b"


def test_a_field_problem_never_carries_a_whole_caller_field_name() -> None:
    problem = FieldProblem(GIANT, "Unknown field.", "extra_forbidden")
    assert len(problem.field) == MAX_ECHO
    assert _longest_run(json.dumps(problem.as_dict())) < MAX_ECHO


def test_a_detail_is_bounded_even_when_a_caller_value_slips_into_it() -> None:
    error = malformed(f"The JSON object has the key {GIANT!r} more than once.", "duplicate_key")
    assert len(error.detail) <= 512


def test_not_configured_names_no_secret_path_in_the_answer() -> None:
    error = not_configured("secret 'reschedule-relay/providers/acuity/default' lacks a valid 'user_id'.")
    answer = problem_response(error, "req-1").body
    assert "reschedule-relay/" not in answer
    assert "providers/" not in answer
    assert "user_id" not in answer
    # The operator's log line gets the cause (app.handle_relay_error logs it as `cause`).
    assert error.log_detail is not None
    assert "providers/acuity/default" in error.log_detail
    assert json.loads(answer)["code"] == "not_configured"


def test_problem_types_point_at_the_projects_own_docs() -> None:
    body = json.loads(
        problem_response(malformed("x", "invalid_json"), None, "https://docs.example.test/api").body
    )
    assert body["type"] == "https://docs.example.test/api#invalid_json"
    default = json.loads(problem_response(malformed("x", "invalid_json"), None).body)
    assert default["type"] == "docs/api.md#invalid_json"
    assert (Path(CODE_DIR).parent.parent / "docs" / "api.md").exists()


def test_no_code_points_problem_types_at_a_domain_the_project_does_not_own() -> None:
    for path in Path(CODE_DIR).rglob("*.py"):
        assert "reschedule-relay.dev" not in path.read_text(), path


def _deep(levels: int) -> None:
    if levels:
        _deep(levels - 1)
    raise ValueError("x" * 100_000)


def test_a_logged_traceback_is_bounded() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(BoundedFormatter())
    log = logging.getLogger("test-bounded-traceback")
    log.addHandler(handler)
    log.propagate = False
    try:
        _deep(300)
    except ValueError:
        log.exception("unhandled error")
    line = stream.getvalue().strip()
    assert "\n" not in line  # one JSON line
    record = json.loads(line)
    assert len(record["exception"]) <= MAX_TRACEBACK_CHARACTERS
    assert record["exception"].startswith("Traceback")
    assert "ValueError" in record["exception"]  # the tail (the exception itself) is kept
    assert len(line) < MAX_TRACEBACK_CHARACTERS + 2048


def test_the_door_logger_is_bounded_even_when_a_plain_logger_came_first() -> None:
    # A module imported before the door's logger that makes Logger() without child=True.
    Logger(service="test-door-logger-order")
    logger = door_logger_for("test-door-logger-order")
    assert isinstance(logger.registered_formatter, BoundedFormatter)
    assert isinstance(door_logger().registered_formatter, BoundedFormatter)


def door_logger_for(service: str) -> Logger:
    """door_logger() under another service name, so this test's loggers stay apart from the doors'."""
    previous = os.environ.get("POWERTOOLS_SERVICE_NAME")
    os.environ["POWERTOOLS_SERVICE_NAME"] = service
    try:
        return door_logger()
    finally:
        if previous is None:
            del os.environ["POWERTOOLS_SERVICE_NAME"]
        else:
            os.environ["POWERTOOLS_SERVICE_NAME"] = previous
