"""A sandbox given a state file keeps its bookings across restarts (the local stack's `make run`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.sandbox import PROVIDERS, start_sandbox
from tests.local.sandbox.helpers import TOKENS, send_valid, snapshot


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_restarted_sandbox_has_the_bookings_it_had(name: str, tmp_path: Path) -> None:
    state = tmp_path / f"{name}.json"
    # Given a sandbox that moved a booking
    with start_sandbox(name, token=TOKENS[name], state_file=state) as first:
        seeded = snapshot(first)
        assert send_valid(first).status_code < 300
        moved = snapshot(first)
        assert moved != seeded
        assert state.exists()

    # When it starts again on the same file, it holds what it held, not its seeds
    with start_sandbox(name, token=TOKENS[name], state_file=state) as second:
        assert snapshot(second) == moved

    # and without the file it starts from its seeds
    with start_sandbox(name, token=TOKENS[name]) as fresh:
        assert snapshot(fresh) == seeded
