"""Nothing crosses sources (issue 23, part 3): history cursors, refusals of what a source may not
move, the Cal.com uid chain, and what "last move" means when two sources move one booking."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from local.sandbox.bookings import CALCOM_APART_UIDS
from local.stack import TABLE_NAMES, Stack
from tests.helpers import WEBSITE, Answer, Invoker, Sandbox, future, new_key, stored_record
from tests.integration.test_callers import post_signed, signed_headers


def _history(invoke: Invoker, path: str) -> Answer:
    return invoke("GET", path)  # the zapier source's API key


def _signed_get(invoke: Invoker, path: str) -> Answer:
    return invoke("GET", path, headers=signed_headers(f"GET {path}"), key=None)


def _decodings(cursor: str) -> str:
    """Everything a cursor could say: itself and its base64 decodings (standard and URL-safe)."""
    found = [cursor]
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            found.append(decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8", "replace"))
        except ValueError:
            continue
    return " ".join(found)


def test_a_history_cursor_never_carries_another_sources_keys(invoke: Invoker, stack: Stack) -> None:
    # Given one booking that the zapier source tried once, and the signing source six times since
    booking = str(random.randint(10_000_000, 99_999_999))  # a booking of this test alone
    path = f"/v1/bookings/iclosed/{booking}/reschedules"

    def attempt(day: int) -> dict[str, Any]:
        return {
            "provider": "iclosed",
            "booking_id": booking,
            "start": future(days=day),
            "timezone": "UTC",
            "dry_run": True,
        }

    mine = invoke("POST", "/v1/reschedules", body=attempt(90))
    assert mine.status == 200, mine.body
    theirs = [post_signed(invoke, attempt(91 + n)) for n in range(6)]
    assert all(a.status == 200 for a in theirs), [a.body for a in theirs]
    their_ids = [a.body["reschedule_id"] for a in theirs]
    their_times = [stored_record(stack, i)["attempted_at"] for i in their_ids]
    # When the zapier source pages through its history one attempt at a time
    seen: list[str] = []
    cursors: list[str] = []
    page = _history(invoke, f"{path}?limit=1")
    for _ in range(10):
        assert page.status == 200, page.body
        seen += [item["reschedule_id"] for item in page.body["reschedules"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
        page = _history(invoke, f"{path}?limit=1&cursor={cursor}")
    # Then it finds exactly its own attempt, and no cursor says anything of the other source's
    assert seen == [mine.body["reschedule_id"]]
    assert cursors  # the first page stopped on the other source's attempts
    for cursor in cursors:
        told = _decodings(cursor)
        assert not [i for i in their_ids if i in told]
        assert not [t for t in their_times if t[:19] in told]
    # And a cursor is no use to another source, nor on another booking
    refused = _signed_get(invoke, f"{path}?limit=1&cursor={cursors[0]}")
    assert (refused.status, refused.body["errors"][0]["field"]) == (422, "cursor")
    other = _history(invoke, f"/v1/bookings/iclosed/1{booking}/reschedules?cursor={cursors[0]}")
    assert other.status == 422


def test_refusals_of_a_provider_the_source_may_not_use_leave_the_bookings_chain_alone(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    # Given a Cal.com booking the zapier source moved (Cal.com gave it a new uid)
    uid = CALCOM_APART_UIDS[0]
    first = invoke(
        "POST", "/v1/reschedules", body={"provider": "calcom", "booking_id": uid, "start": _utc_slot(57, 14)},
        headers={"idempotency-key": new_key()},
    )  # fmt: skip
    assert first.status == 200, first.body
    # When a source that may not use Cal.com sends 210 moves of the original uid (issue 23's figure)
    body = {"provider": "calcom", "booking_id": uid, "start": _utc_slot(58, 9)}
    refusals = [
        invoke(
            "POST", "/v1/reschedules", body=body, key=WEBSITE.api_key, headers={"idempotency-key": new_key()}
        )
        for _ in range(210)
    ]
    # Then each is refused and recorded for that source, but not under the booking
    assert {(r.status, r.body["code"]) for r in refusals} == {(403, "provider_not_allowed")}
    record = stored_record(stack, refusals[-1].body["reschedule_id"])
    assert record["source"] == WEBSITE.name
    assert "booking_key" not in record
    assert "booking_id" not in record
    history = invoke("GET", f"/v1/bookings/calcom/{uid}/reschedules?limit=100")
    listed = {r["reschedule_id"] for r in history.body["reschedules"]}
    assert first.body["reschedule_id"] in listed
    assert not listed & {r.body["reschedule_id"] for r in refusals}
    # And the owner's next move of the original uid still goes to the latest uid (not a 409)
    second = invoke(
        "POST", "/v1/reschedules", body={"provider": "calcom", "booking_id": uid, "start": _utc_slot(59, 15)},
        headers={"idempotency-key": new_key()},
    )  # fmt: skip
    assert second.status == 200, second.body
    assert second.body["provider_result"]["rescheduledFromUid"] == first.body["new_booking_id"]


def test_the_uid_chain_is_an_item_written_with_the_success(
    invoke: Invoker, sandboxes: dict[str, Sandbox], stack: Stack
) -> None:
    uid = CALCOM_APART_UIDS[1]
    moved = invoke(
        "POST", "/v1/reschedules", body={"provider": "calcom", "booking_id": uid, "start": _utc_slot(60, 10)},
        headers={"idempotency-key": new_key()},
    )  # fmt: skip
    assert moved.status == 200, moved.body
    item = stack.client("dynamodb").get_item(
        TableName=TABLE_NAMES["IdempotencyTable"], Key={"id": {"S": f"chain#calcom#{uid}"}}
    )["Item"]
    assert item["new_booking_id"]["S"] == moved.body["new_booking_id"]
    assert item["reschedule_id"]["S"] == moved.body["reschedule_id"]


def test_last_move_is_per_source_when_two_sources_move_one_booking(
    invoke: Invoker, sandboxes: dict[str, Sandbox]
) -> None:
    # Given the zapier source moved a booking to T1 (no Idempotency-Key: keyed by its content)
    slot_1 = {"provider": "iclosed", "booking_id": 1004, "start": future(days=95, hour=9), "timezone": "UTC"}
    slot_2 = slot_1 | {"start": future(days=95, hour=15)}
    assert invoke("POST", "/v1/reschedules", body=slot_1).status == 200
    # When the signing source moves the same booking to T2, and the zapier source sends T1 again
    assert post_signed(invoke, slot_2).status == 200
    repeat = invoke("POST", "/v1/reschedules", body=slot_1)
    # Then the zapier source's repeat is a replay: its own last move of the booking is still T1
    # (another source's move neither runs nor reveals anything through it)
    assert (repeat.status, repeat.body["replayed"]) == (200, True)
    assert len(sandboxes["iclosed"].calls()) == 2
    # While its own move elsewhere makes T1 a new move again (A -> B -> A moves the booking back)
    assert invoke("POST", "/v1/reschedules", body=slot_2).body["replayed"] is False
    back = invoke("POST", "/v1/reschedules", body=slot_1)
    assert (back.status, back.body["replayed"]) == (200, False)
    assert len(sandboxes["iclosed"].calls()) == 4


def _utc_slot(days: int, hour: int) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
