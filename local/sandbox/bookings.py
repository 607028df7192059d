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
