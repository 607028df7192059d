"""The demo form's pages speak to the invitee: a sentence per reason, the new time, a way back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.form_page import DEFAULT_REASON_SENTENCE, REASON_SENTENCES, FormPage, start_form_page


@pytest.fixture(scope="module")
def page() -> Iterator[FormPage]:
    running = start_form_page(api_url="http://127.0.0.1:1")
    yield running
    running.stop()


def test_success_page_says_the_new_date_and_time_with_its_zone(page: FormPage) -> None:
    status, text = page.render(
        "/rescheduled", {"status": "ok", "start": "2026-12-01T15:30:00-05:00", "timezone": "America/New_York"}
    )
    assert status == 200
    assert "Tuesday 1 December 2026 at 15:30 (America/New_York)" in text
    assert "id='back'" in text


@pytest.mark.parametrize(
    "code", ["link_expired", "validation_failed", "booking_not_found", "provider_unavailable"]
)
def test_error_page_has_a_sentence_for_the_reason_and_a_way_back(page: FormPage, code: str) -> None:
    _, text = page.render("/reschedule-failed", {"status": "error", "code": code})
    assert REASON_SENTENCES[code] in text
    assert "id='back'" in text


def test_an_unknown_reason_gets_a_kind_default_and_is_escaped(page: FormPage) -> None:
    _, text = page.render("/reschedule-failed", {"status": "error", "code": "<script>"})
    assert DEFAULT_REASON_SENTENCE in text
    assert "<script>" not in text


def test_the_form_shows_the_time_zone_it_will_use_and_lets_it_change(page: FormPage) -> None:
    _, text = page.render("/reschedule", {})
    assert '<select name="timezone"' in text
    assert "Time zone" in text
