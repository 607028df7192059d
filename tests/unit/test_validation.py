"""Validation and normalisation into a RescheduleCommand: no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from relay.command import RescheduleCommand
from relay.errors import RelayError
from relay.fields import canonicalise
from relay.providers import PROVIDERS
from relay.reschedule.attempts import Booking
from relay.reschedule.normalise import booking_of, normalise
from relay.reschedule.request import parse_request
from relay.settings import Settings, settings_from

SETTINGS = Settings(
    idempotency_table_name="idem", reschedules_table_name="resch", default_duration_minutes=30
)
NOVA_ID = "3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
NEXT_YEAR = datetime.now(UTC).year + 1


def command(fields: dict[str, Any], allowed: tuple[str, ...] = ("iclosed", "novacal")) -> RescheduleCommand:
    canonical, names = canonicalise(fields)
    return normalise(parse_request(canonical, names), SETTINGS, list(allowed), names)


def problems(fields: dict[str, Any], allowed: tuple[str, ...] = ("iclosed", "novacal")) -> dict[str, str]:
    with pytest.raises(RelayError) as caught:
        command(fields, allowed)
    assert caught.value.status == 422
    return {p.field: p.code for p in caught.value.errors}


def test_iclosed_wall_time_in_zone() -> None:
    cmd = command(
        {
            "provider": "iclosed",
            "id": 1001,
            "dateTime": f"{NEXT_YEAR}-01-15T10:00:00",
            "timeZone": "America/New_York",
        }
    )
    assert cmd.booking_id == "1001"
    assert cmd.start == datetime(NEXT_YEAR, 1, 15, 15, 0, tzinfo=UTC)
    assert cmd.timezone == "America/New_York"
    assert cmd.end is None


def test_offset_start_keeps_its_instant_and_defaults_zone_to_utc() -> None:
    cmd = command({"provider": "iclosed", "booking_id": "7", "start": f"{NEXT_YEAR}-02-01T10:00:00+01:00"})
    assert cmd.start == datetime(NEXT_YEAR, 2, 1, 9, 0, tzinfo=UTC)
    assert cmd.timezone == "UTC"


def test_date_and_time_with_am_pm_from_a_form() -> None:
    cmd = command(
        {
            "provider": "novacal",
            "booking_id": NOVA_ID,
            "date": f"{NEXT_YEAR}-03-02",
            "time": "3:30 PM",
            "timezone": "Europe/Berlin",
            "duration_minutes": "45",
        }
    )
    assert cmd.local(cmd.start).isoformat() == f"{NEXT_YEAR}-03-02T15:30:00+01:00"
    assert cmd.end == cmd.start + timedelta(minutes=45)


def test_novacal_end_defaults_to_the_setting() -> None:
    cmd = command({"provider": "novacal", "booking_id": NOVA_ID, "start": f"{NEXT_YEAR}-03-02T09:00:00Z"})
    assert cmd.end == cmd.start + timedelta(minutes=SETTINGS.default_duration_minutes)
    assert cmd.time_format == SETTINGS.default_time_format


def test_novacal_uuid_is_canonicalised_to_lower_case() -> None:
    cmd = command(
        {"provider": "novacal", "booking_id": NOVA_ID.upper(), "start": f"{NEXT_YEAR}-03-02T09:00:00Z"}
    )
    assert cmd.booking_id == NOVA_ID


def test_dst_gap_is_refused() -> None:
    # 02:30 on the second Sunday of March does not exist in New York.
    gap = _nth_sunday(NEXT_YEAR, 3, 2).isoformat() + "T02:30:00"
    assert problems({"provider": "iclosed", "id": 1, "start": gap, "timezone": "America/New_York"}) == {
        "start": "nonexistent_or_ambiguous"
    }


def test_dst_fold_without_offset_asks_for_one_and_with_offset_is_accepted() -> None:
    fold = _nth_sunday(NEXT_YEAR, 11, 1).isoformat() + "T01:30:00"
    with pytest.raises(RelayError) as caught:
        command({"provider": "iclosed", "id": 1, "start": fold, "timezone": "America/New_York"})
    assert "offset" in caught.value.errors[0].message
    first = command(
        {"provider": "iclosed", "id": 1, "start": fold + "-04:00", "timezone": "America/New_York"}
    )
    second = command(
        {"provider": "iclosed", "id": 1, "start": fold + "-05:00", "timezone": "America/New_York"}
    )
    assert second.start - first.start == timedelta(hours=1)


def _nth_sunday(year: int, month: int, n: int) -> date:
    day = date(year, month, 1)
    day += timedelta(days=(6 - day.weekday()) % 7)
    return day + timedelta(weeks=n - 1)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"start": "2020-01-01T10:00:00Z"}, {"start": "in_past"}),
        ({"start": f"{NEXT_YEAR + 5}-01-01T10:00:00Z"}, {"start": "too_far"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00"}, {"timezone": "missing"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00", "timezone": "EST5EDT/../../etc"}, {"timezone": "invalid"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00", "timezone": "Mars/Olympus"}, {"timezone": "invalid"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00", "timezone": "localtime"}, {"timezone": "invalid"}),
        ({"start": "tomorrow at ten"}, {"start": "invalid"}),
        ({"start": f"{NEXT_YEAR}-01-01"}, {"start": "invalid"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00.5Z"}, {"start": "invalid"}),
        ({}, {"start": "missing"}),
        ({"date": f"{NEXT_YEAR}-01-01"}, {"time": "missing"}),
        ({"date": f"{NEXT_YEAR}-01-01", "time": "25:00", "timezone": "UTC"}, {"time": "invalid"}),
        ({"date": f"{NEXT_YEAR}-13-01", "time": "10:00", "timezone": "UTC"}, {"date": "invalid"}),
        ({"date": "01/12/2027", "time": "25:00", "timezone": "UTC"}, {"date": "invalid", "time": "invalid"}),
        ({"start": f"{NEXT_YEAR}-01-01T10:00:00Z", "date": f"{NEXT_YEAR}-01-01"}, {"start": "conflict"}),
    ],
)
def test_time_problems(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert problems({"provider": "iclosed", "id": 5} | fields) == expected


def test_end_not_after_start_is_refused() -> None:
    start = f"{NEXT_YEAR}-03-02T09:00:00Z"
    assert problems({"provider": "novacal", "booking_id": NOVA_ID, "start": start, "end": start}) == {
        "end": "end_before_start"
    }


def test_end_and_duration_together_are_refused() -> None:
    fields = {
        "provider": "novacal",
        "booking_id": NOVA_ID,
        "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
        "end": f"{NEXT_YEAR}-03-02T10:00:00Z",
        "duration_minutes": 30,
    }
    assert problems(fields) == {"duration_minutes": "conflict"}


@pytest.mark.parametrize("booking", ["0", "-4", "1.5", "abc", "1001/../x", "1%2F2", "12?a=b", "9" * 19, True])
def test_iclosed_booking_id_must_be_a_positive_integer(booking: Any) -> None:
    found = problems({"provider": "iclosed", "id": booking, "start": f"{NEXT_YEAR}-03-02T09:00:00Z"})
    assert "id" in found


@pytest.mark.parametrize(
    "booking",
    [
        "1001",
        "../events",
        "3f2c1a9e8b7d4c6e9f102a3b4c5d6e7f",
        f"{{{NOVA_ID}}}",
        f"urn:uuid:{NOVA_ID}",
        NOVA_ID + "#x",
    ],
)
def test_novacal_booking_id_must_be_a_uuid(booking: str) -> None:
    assert "booking_id" in problems(
        {"provider": "novacal", "booking_id": booking, "start": f"{NEXT_YEAR}-03-02T09:00:00Z"}
    )


def test_unknown_fields_are_refused_by_name_mass_assignment() -> None:
    found = problems(
        {
            "provider": "iclosed",
            "id": 1,
            "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
            "status": "cancelled",
            "price": 0,
            "inviteeEmail": "x@example.test",
        }
    )
    assert found == {
        "status": "extra_forbidden",
        "price": "extra_forbidden",
        "inviteeEmail": "extra_forbidden",
    }


def test_fields_the_provider_would_ignore_are_refused_not_dropped() -> None:
    found = problems(
        {
            "provider": "iclosed",
            "id": 1,
            "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
            "end": f"{NEXT_YEAR}-03-02T10:00:00Z",
            "answers": {"a": "b"},
        }
    )
    assert found == {"end": "not_supported", "answers": "not_supported"}
    found = problems(
        {
            "provider": "novacal",
            "booking_id": NOVA_ID,
            "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
            "rescheduleReason": "moved",
            "userId": 3,
        }
    )
    assert found == {"rescheduleReason": "not_supported", "userId": "not_supported"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_minutes", "1.5"),
        ("duration_minutes", True),
        ("duration_minutes", "1e3"),
        ("duration_minutes", 0),
        ("duration_minutes", 100000),
        ("time_format", "13"),
        ("time_format", 12.0),
        ("answers", {"a": 1}),
        ("answers", "text"),
    ],
)
def test_form_strings_are_coerced_deliberately_not_loosely(field: str, value: Any) -> None:
    fields = {
        "provider": "novacal",
        "booking_id": NOVA_ID,
        "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
        field: value,
    }
    assert field in " ".join(problems(fields))


def test_digit_strings_become_integers() -> None:
    cmd = command(
        {
            "provider": "novacal",
            "booking_id": NOVA_ID,
            "start": f"{NEXT_YEAR}-03-02T09:00:00Z",
            "time_format": "12",
            "duration_minutes": " 60 ",
        }
    )
    assert cmd.time_format == 12
    assert cmd.end == cmd.start + timedelta(minutes=60)


@pytest.mark.parametrize(("field", "limit"), [("reason", 500), ("notes", 2000)])
def test_text_is_bounded_and_free_of_control_characters(field: str, limit: int) -> None:
    base = {"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-03-02T09:00:00Z"}
    assert field in problems(base | {field: "x" * (limit + 1)})
    assert field in problems(base | {field: "bell\x07"})
    assert command(base | {field: "line one\nline two"}).model_dump()[field] == "line one\nline two"


def test_provider_is_inferred_only_when_the_source_allows_exactly_one() -> None:
    fields = {"booking_id": NOVA_ID, "start": f"{NEXT_YEAR}-03-02T09:00:00Z"}
    assert command(fields, allowed=("novacal",)).provider == "novacal"
    assert problems(fields) == {"provider": "missing"}


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        {
            "provider": "novacal",
            "booking_id": "nope",
            "start": "2020-01-01T00:00:00Z",
            "timezone": "Nowhere/Land",
        }
    )
    assert set(found) == {"booking_id", "timezone"}


def test_settings_bound_the_default_time_format_and_read_upper_cased_names() -> None:
    env = {"IDEMPOTENCY_TABLE_NAME": "idem", "RESCHEDULES_TABLE_NAME": "resch", "DEFAULT_TIME_FORMAT": "12"}
    assert settings_from(env).default_time_format == 12
    with pytest.raises(ValidationError):
        settings_from(env | {"DEFAULT_TIME_FORMAT": "13"})


@pytest.mark.parametrize("spelling", ["iClosed", "ICLOSED", "iclosed"])
def test_provider_is_matched_case_insensitively(spelling: str) -> None:
    assert (
        command({"provider": spelling, "id": 1001, "start": f"{NEXT_YEAR}-01-15T10:00:00Z"}).provider
        == "iclosed"
    )


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("america/new_york", "America/New_York"), ("EUROPE/LONDON", "Europe/London"), ("utc", "UTC")],
)
def test_time_zones_are_matched_case_insensitively_to_iana_names(given: str, canonical: str) -> None:
    cmd = command({"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-01-15T10:00:00", "timezone": given})
    assert cmd.timezone == canonical


@pytest.mark.parametrize(
    ("legacy", "meant"),
    [
        ("EST", "America/New_York"),
        ("est", "America/New_York"),
        ("MST", "America/Denver"),
        ("HST", "Pacific/Honolulu"),
        ("PST8PDT", "America/Los_Angeles"),
        ("PST", "America/Los_Angeles"),
    ],
)
def test_legacy_fixed_offset_zones_are_refused_naming_the_iana_zone(legacy: str, meant: str) -> None:
    with pytest.raises(RelayError) as caught:
        command({"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-07-15T10:00:00", "timezone": legacy})
    [problem] = caught.value.errors
    assert (problem.field, problem.code) == ("timezone", "invalid")
    assert meant in problem.message


def test_a_fixed_utc_offset_zone_is_refused() -> None:
    assert problems(
        {"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-07-15T10:00:00", "timeZone": "Etc/GMT+5"}
    ) == {"timeZone": "invalid"}


def test_example_booking_ids_in_messages_are_usable() -> None:
    for name, adapter in PROVIDERS.items():
        assert adapter.normalise_booking_id(adapter.example_booking_id)
        with pytest.raises(RelayError) as caught:
            command({"provider": name, "id": "not an id!", "start": f"{NEXT_YEAR}-01-15T10:00:00Z"})
        [message] = [p.message for p in caught.value.errors if p.field == "id"]
        assert adapter.example_booking_id in message


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("true", True), ("1", True), ("0", False), (False, False)]
)
def test_dry_run_is_a_flag_forms_can_send(value: Any, expected: bool) -> None:
    fields = {"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-01-15T10:00:00Z", "dry_run": value}
    assert command(fields).dry_run is expected


@pytest.mark.parametrize("value", ["yes", 2, "maybe"])
def test_dry_run_refuses_what_is_not_a_flag(value: Any) -> None:
    fields = {"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-01-15T10:00:00Z", "dry_run": value}
    assert set(problems(fields)) == {"dry_run"}


def test_dry_run_does_not_change_what_makes_two_requests_the_same() -> None:
    fields = {"provider": "iclosed", "id": 1, "start": f"{NEXT_YEAR}-01-15T10:00:00Z"}
    assert command(fields | {"dry_run": True}).key_material() == command(fields).key_material()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"provider": "iClosed", "id": 1001, "start": "garbage"}, Booking("iclosed", "default", "1001")),
        (
            {"provider": "novacal", "booking_id": NOVA_ID.upper(), "account": "acme"},
            Booking("novacal", "acme", NOVA_ID),
        ),
        (
            {"id": "1002", "timezone": "EST"},
            Booking("iclosed", "default", "1002"),
        ),  # the one allowed provider
        ({"provider": "iclosed", "id": "x1"}, None),
        ({"provider": "nope", "id": "1"}, None),
        ({"provider": "iclosed", "id": "1", "account": "Not Valid!"}, None),
        ({"id": "1", "eventCallId": "2"}, None),
    ],
)
def test_a_refused_requests_booking_is_known_when_provider_and_id_parse(
    fields: dict[str, Any], expected: Booking | None
) -> None:
    allowed = ["iclosed"] if "provider" not in fields else ["iclosed", "novacal"]
    assert booking_of(fields, allowed_providers=allowed) == expected
