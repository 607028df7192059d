"""Settling an unknown outcome by reading: did the requested move happen?

After an attempt whose outcome is unknown (a timeout or a connection closed after the request went
out, a 5xx, Cal.com's 409 `booking_conflict_error` or its "already rescheduled" 400), the attempt
step reads the booking (`ProviderClient.read_booking`) and asks `settle` what the read shows, before
anything is sent again. Pure: no I/O, no message wording; only the structured read decides.

Cal.com gives a moved booking a new uid, so it can take two reads: the old uid (`cancelled`, with a
`rescheduledToUid`), then that successor (does it start at the requested start?). `settle` answers
`READ_NEXT` with the successor's uid after the first, and is called again with both states.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from relay.providers.base import BookingState, Provider, Settled, Settlement

if TYPE_CHECKING:
    from relay.command import RescheduleCommand

UNKNOWN = Settlement(Settled.UNKNOWN)
NOT_MOVED = Settlement(Settled.NOT_MOVED)


def same_instant(moment: datetime | None, start: datetime) -> bool:
    """Whether a read start is the requested start (both aware; a naive read time matches nothing)."""
    return moment is not None and moment.tzinfo is not None and moment == start


def settle(
    adapter: Provider,
    command: RescheduleCommand,
    state: BookingState,
    successor: BookingState | None = None,
) -> Settlement:
    """What the read booking (`state`, read under `command.booking_id`) says about the move.

    `successor`: the read of `state.rescheduled_to`, once `READ_NEXT` asked for it.
    """
    if not adapter.has_read or not state.found or state.recurring or state.seated:
        return UNKNOWN
    if state.rescheduled_to is not None:
        return _successor(command, state.rescheduled_to, successor)
    if adapter.booking_id_changes:
        # Every Cal.com move gives a new uid: a booking still active under its uid was not moved. A
        # cancelled one without a successor may be a move whose successor Cal.com cannot name.
        return NOT_MOVED if state.active else UNKNOWN
    if state.active and same_instant(state.start, command.start):
        return Settlement(Settled.MOVED, state.booking_id)
    # Elsewhere, or cancelled: sending the move again gets the provider's own definite answer.
    return NOT_MOVED


def _successor(command: RescheduleCommand, named: str, successor: BookingState | None) -> Settlement:
    """A booking moved away under a new id: the move is ours when the successor starts at our start."""
    if successor is None:
        return Settlement(Settled.READ_NEXT, named)
    if successor.booking_id != named:
        raise ValueError("the successor read is not of the booking the first read names")
    if not successor.found:
        return UNKNOWN
    if same_instant(successor.start, command.start):
        return Settlement(Settled.MOVED, successor.booking_id)
    return Settlement(Settled.MOVED_ELSEWHERE, successor.booking_id)
