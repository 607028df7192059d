"""Seed bookings: five per provider, far in the future, with obviously fake personal data."""

from __future__ import annotations

from dataclasses import dataclass

SEED_COUNT = 5
BOOKING_DURATION_MINUTES = 30

# Seed start times (local wall time, zone); far enough ahead that they never become past bookings.
_SEED_SLOTS = (
    ("2031-03-03T10:00:00", "America/New_York"),
    ("2031-03-04T14:30:00", "Europe/Berlin"),
    ("2031-03-05T09:00:00", "Asia/Tokyo"),
    ("2031-03-06T16:00:00", "America/Los_Angeles"),
    ("2031-03-07T11:15:00", "Australia/Sydney"),
)

ICLOSED_FIRST_ID = 1001

# Fixed, valid version-4 UUIDs so tests and humans can paste them.
NOVACAL_IDS = (
    "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000001",
    "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000002",
    "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000003",
    "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000004",
    "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000005",
)


@dataclass
class IclosedSeed:
    id: int
    event_id: int
    contact_id: int
    user_id: int
    date_time: str  # local wall time in time_zone
    time_zone: str


@dataclass
class NovacalSeed:
    id: str
    number: int  # 1-based, used to make fake names and addresses
    start: str  # local wall time in time_zone
    time_zone: str


def iclosed_seeds() -> list[IclosedSeed]:
    return [
        IclosedSeed(
            id=ICLOSED_FIRST_ID + index,
            event_id=501 + index,
            contact_id=9001 + index,
            user_id=701,
            date_time=date_time,
            time_zone=zone,
        )
        for index, (date_time, zone) in enumerate(_SEED_SLOTS)
    ]


def novacal_seeds() -> list[NovacalSeed]:
    return [
        NovacalSeed(id=booking_id, number=index + 1, start=date_time, time_zone=zone)
        for index, (booking_id, (date_time, zone)) in enumerate(zip(NOVACAL_IDS, _SEED_SLOTS, strict=True))
    ]


# Cal.com: uids are opaque strings; the five in `bookings` can be moved, the others are for refusals.
CALCOM_UIDS = (
    "sandboxCalBooking00001",
    "sandboxCalBooking00002",
    "sandboxCalBooking00003",
    "sandboxCalBooking00004",
    "sandboxCalBooking00005",
)
CALCOM_CANCELLED_UID = "sandboxCalCancelled001"
CALCOM_REJECTED_UID = "sandboxCalRejected0001"
CALCOM_AWAITING_HOST_UID = "sandboxCalAwaitHost001"
CALCOM_SEATED_UID = "sandboxCalSeated000001"
CALCOM_SEAT_UIDS = ("sandboxCalSeat00000001", "sandboxCalSeat00000002")
CALCOM_RECURRING_UID = "sandboxCalRecurring001"
# Its attendee's email is on the host's block list: Cal.com refuses the booking (403).
CALCOM_BLOCKED_UID = "sandboxCalBlockedMail01"
CALCOM_BLOCKED_EMAILS = frozenset({"sandbox-attendee-11@example.test"})
# Movable bookings kept apart for the unknown-outcome tests (a slow commit, the throttler), so the
# five plain ones stay fresh for the tests and examples that start from them.
CALCOM_SLOW_COMMIT_UID = "sandboxCalSlowCommit01"
CALCOM_THROTTLED_UID = "sandboxCalThrottled001"
# Movable bookings of the "nothing crosses sources" tests (their uid chains), kept apart likewise.
CALCOM_APART_UIDS = ("sandboxCalApart000001", "sandboxCalApart000002")
CALCOM_FIRST_ID = 2001
# Event types by id: (slug, length in minutes); a booking's end is its start plus this length.
CALCOM_EVENT_TYPES = {11: ("sandbox-30min", 30), 12: ("sandbox-60min", 60), 13: ("sandbox-45min", 45)}


@dataclass
class CalcomSeed:
    uid: str
    number: int  # 1-based, used to make fake names
    event_type_id: int
    status: str
    start: str  # local wall time in time_zone
    time_zone: str
    seat_uids: tuple[str, ...] = ()  # a seated booking: one attendee per seat
    recurring_booking_uid: str | None = None


def calcom_seeds() -> list[CalcomSeed]:
    slots = [*_SEED_SLOTS, *_SEED_SLOTS, *_SEED_SLOTS]
    plan: list[tuple[str, int, str, tuple[str, ...], str | None]] = [
        (CALCOM_UIDS[0], 11, "accepted", (), None),
        (CALCOM_UIDS[1], 12, "accepted", (), None),
        (CALCOM_UIDS[2], 11, "pending", (), None),  # its event type needs confirmation
        (CALCOM_UIDS[3], 13, "accepted", (), None),
        (CALCOM_UIDS[4], 12, "accepted", (), None),
        (CALCOM_CANCELLED_UID, 11, "cancelled", (), None),
        (CALCOM_REJECTED_UID, 11, "rejected", (), None),
        (CALCOM_AWAITING_HOST_UID, 11, "awaiting_host", (), None),
        (CALCOM_SEATED_UID, 12, "accepted", CALCOM_SEAT_UIDS, None),
        (CALCOM_RECURRING_UID, 11, "accepted", (), "sandboxCalSeries000001"),
        (CALCOM_BLOCKED_UID, 11, "accepted", (), None),  # attendee number 11: a blocked email
        (CALCOM_SLOW_COMMIT_UID, 12, "accepted", (), None),
        (CALCOM_THROTTLED_UID, 13, "accepted", (), None),
        (CALCOM_APART_UIDS[0], 11, "accepted", (), None),
        (CALCOM_APART_UIDS[1], 12, "accepted", (), None),
    ]
    return [
        CalcomSeed(
            uid=uid,
            number=index + 1,
            event_type_id=event_type_id,
            status=status,
            start=slots[index][0],
            time_zone=slots[index][1],
            seat_uids=seats,
            recurring_booking_uid=series,
        )
        for index, (uid, event_type_id, status, seats, series) in enumerate(plan)
    ]


# Acuity: positive integer ids; the five in `bookings` can be moved, the others are for refusals.
ACUITY_IDS = (700001, 700002, 700003, 700004, 700005)
ACUITY_CANCELED_ID = 700006  # `reschedule_canceled`
ACUITY_NOT_ALLOWED_ID = 700007  # canClientReschedule false: `reschedule_not_allowed` unless admin=true
ACUITY_SERIES_ID = 700008  # part of a recurring series: `reschedule_series`
# Calendars by id: (name, time zone); an appointment's date and time are shown in its calendar's zone.
ACUITY_CALENDARS = {1: ("Sandbox Calendar 1", "America/New_York"), 2: ("Sandbox Calendar 2", "Europe/Berlin")}
# Appointment types by id: (name, length in minutes).
ACUITY_APPOINTMENT_TYPES = {40: ("Sandbox Consultation", 30), 41: ("Sandbox Session", 60)}


@dataclass
class AcuitySeed:
    id: int
    number: int
    appointment_type_id: int
    calendar_id: int
    start: str  # local wall time in the client's time_zone
    time_zone: str
    canceled: bool = False
    can_client_reschedule: bool = True
    series: bool = False


def acuity_seeds() -> list[AcuitySeed]:
    slots = [*_SEED_SLOTS, *_SEED_SLOTS]
    plan = [
        (ACUITY_IDS[0], 40, 1, {}),
        (ACUITY_IDS[1], 41, 2, {}),
        (ACUITY_IDS[2], 40, 1, {}),
        (ACUITY_IDS[3], 41, 1, {}),
        (ACUITY_IDS[4], 40, 2, {}),
        (ACUITY_CANCELED_ID, 40, 1, {"canceled": True}),
        (ACUITY_NOT_ALLOWED_ID, 40, 1, {"can_client_reschedule": False}),
        (ACUITY_SERIES_ID, 40, 1, {"series": True}),
    ]
    return [
        AcuitySeed(
            id=appointment_id,
            number=index + 1,
            appointment_type_id=type_id,
            calendar_id=calendar_id,
            start=slots[index][0],
            time_zone=slots[index][1],
            **flags,
        )
        for index, (appointment_id, type_id, calendar_id, flags) in enumerate(plan)
    ]
