"""Signed form links, CORS answers, form redirects and the order of the auth checks: no I/O."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from relay.callers import links
from relay.callers.admission import Attempt, admit, identify
from relay.callers.registry import SignedLinkSource, hash_api_key, parse_registry
from relay.errors import RelayError
from relay.web import cors, forms

NOW = 1_900_000_000
OLD_SECRET = "sandbox-link-secret-unit-0000-xxxxxxxx"
NEW_SECRET = "sandbox-link-secret-unit-0001-xxxxxxxx"
BOOKING = "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000001"
FORM = {
    "kind": "signed_link",
    "link_secrets": [NEW_SECRET, OLD_SECRET],
    "providers": {"novacal": ["default", "eu"], "iclosed": ["default"]},
    "origins": ["https://www.example.test"],
    "honeypot": "website",
    "form_url": "https://www.example.test/reschedule?lang=en#form",
    "success_url": "https://www.example.test/done?lang=en",
    "error_url": "https://www.example.test/failed",
}
REGISTRY = parse_registry(
    {
        "sources": {
            "form": FORM,
            "zap": {"kind": "api_key", "api_key_sha256": [hash_api_key("sandbox-k")], "providers": {}},
        }
    }
)
_FORM_SOURCE = REGISTRY.sources["form"]
assert isinstance(_FORM_SOURCE, SignedLinkSource)
SOURCE: SignedLinkSource = _FORM_SOURCE
assert isinstance(SOURCE, SignedLinkSource)


def minted(booking: str = BOOKING, expires: int = NOW + 600, **kwargs: Any) -> dict[str, str]:
    link = links.mint(
        "form",
        SOURCE,
        provider=kwargs.pop("provider", "novacal"),
        booking_id=booking,
        expires=expires,
        now=NOW,
        **kwargs,
    )
    link.pop("url")
    return link


def posted(link: dict[str, str], **more: Any) -> dict[str, Any]:
    return link | {"start": "2030-01-01T10:00:00Z"} | more


def refused(fields: dict[str, Any], now: float = NOW) -> RelayError:
    with pytest.raises(RelayError) as caught:
        links.verify(REGISTRY, fields, now=now)
    assert caught.value.status == 401
    assert NEW_SECRET not in json.dumps(caught.value.problem())
    return caught.value


def test_a_minted_link_verifies_and_its_proof_is_removed_before_validation() -> None:
    admitted = links.verify(REGISTRY, posted(minted(), website=""), now=NOW)
    assert (admitted.caller.name, admitted.caller.kind) == ("form", "signed_link")
    assert (admitted.provider, admitted.account, admitted.booking_id) == ("novacal", "default", BOOKING)
    assert admitted.fields == {"provider": "novacal", "booking_id": BOOKING, "start": "2030-01-01T10:00:00Z"}
    assert admitted.spam is False


def test_the_link_url_is_the_form_page_with_the_fields_in_its_query() -> None:
    link = links.mint("form", SOURCE, provider="novacal", booking_id=BOOKING, expires=NOW + 60, now=NOW)
    assert link["url"].startswith("https://www.example.test/reschedule?lang=en&source=form&provider=novacal")
    assert link["url"].endswith(f"&token={link['token']}#form")
    assert set(link) == {"source", "provider", "booking_id", "expires", "token", "url"}


def test_rotation_old_secret_still_verifies_and_new_links_use_the_first() -> None:
    old = minted() | {
        "token": links.link_token(
            OLD_SECRET,
            source="form",
            provider="novacal",
            account="default",
            booking_id=BOOKING,
            expires=NOW + 600,
        )
    }
    assert links.verify(REGISTRY, posted(old), now=NOW).caller.name == "form"
    assert minted()["token"] == links.link_token(
        NEW_SECRET,
        source="form",
        provider="novacal",
        account="default",
        booking_id=BOOKING,
        expires=NOW + 600,
    )


def test_account_is_signed_too() -> None:
    link = minted(account="eu")
    assert link["account"] == "eu"
    assert links.verify(REGISTRY, posted(link), now=NOW).account == "eu"
    assert refused(posted(link, account="default")).code == "link_invalid"
    assert refused(posted(minted(), account="eu")).code == "link_invalid"


def test_json_numbers_for_an_iclosed_booking_and_expires_are_accepted() -> None:
    link = minted(booking="1001", provider="iclosed")
    fields = posted(link) | {"booking_id": 1001, "expires": int(link["expires"])}
    assert links.verify(REGISTRY, fields, now=NOW).booking_id == "1001"


def test_aliases_are_signed_as_their_canonical_field() -> None:
    link = minted(booking="1001", provider="iclosed")
    fields = {k: v for k, v in posted(link).items() if k != "booking_id"} | {"eventCallId": "1001"}
    assert links.verify(REGISTRY, fields, now=NOW).booking_id == "1001"
    assert refused(posted(link) | {"id": "1002"}).code == "link_invalid"  # a second booking id


def test_expiry_is_checked_after_the_token() -> None:
    link = minted(expires=NOW)
    assert refused(posted(link), now=NOW).code == "link_expired"
    assert links.verify(REGISTRY, posted(link), now=NOW - 0.001).caller.name == "form"
    # An expired link whose expiry was pushed out is tampered, not expired.
    assert refused(posted(link, expires=str(NOW + 3600)), now=NOW).code == "link_invalid"


@pytest.mark.parametrize(
    "change",
    [
        {"booking_id": "3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000002"},  # another booking
        {"provider": "iclosed"},
        {"source": "zap"},  # not a form source
        {"source": "nobody"},
        {"source": None},
        {"token": None},
        {"token": "x" * 43},
        {"token": "short"},
        {"token": minted()["token"] + "="},
        {"expires": None},
        {"expires": "soon"},
        {"expires": "-1"},
        {"expires": True},
        {"booking_id": None},
        {"provider": None},
        {"provider": ["novacal"]},
    ],
)
def test_tampered_or_incomplete_links_are_link_invalid(change: dict[str, Any]) -> None:
    fields = {k: v for k, v in (posted(minted()) | change).items() if v is not None}
    assert refused(fields).code == "link_invalid"


def test_a_token_for_one_booking_does_not_move_another() -> None:
    other = minted(booking="3f6c1d2a-9b7e-4c4d-8a51-5a0d0c000002")
    assert refused(posted(minted(), token=other["token"])).code == "link_invalid"


@pytest.mark.parametrize(
    ("value", "spam"), [("", False), ("   ", False), ("http://spam.test", True), (0, True)]
)
def test_honeypot(value: Any, spam: bool) -> None:
    admitted = links.verify(REGISTRY, posted(minted(), website=value), now=NOW)
    assert admitted.spam is spam
    assert "website" not in admitted.fields


# -- the order of the checks -----------------------------------------------------------------------


def form_body(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


def test_a_form_body_with_link_fields_is_a_signed_link_and_the_origin_must_be_allowed() -> None:
    body = form_body(posted(minted()))
    attempt = Attempt()
    admitted = admit(REGISTRY, URLENCODED, body, now=NOW, attempt=attempt)
    assert admitted.link is not None
    assert admitted.caller.name == "form"
    assert attempt.form_source is SOURCE
    allowed = URLENCODED | {"origin": "https://www.example.test"}
    assert admit(REGISTRY, allowed, body, now=NOW).caller.name == "form"
    with pytest.raises(RelayError) as caught:
        admit(REGISTRY, URLENCODED | {"origin": "https://evil.test"}, body, now=NOW)
    assert (caught.value.status, caught.value.code) == (403, "origin_not_allowed")


def test_the_source_is_known_for_the_error_page_even_when_the_link_fails() -> None:
    attempt = Attempt()
    with pytest.raises(RelayError):
        admit(REGISTRY, URLENCODED, form_body(posted(minted(), token="x" * 43)), now=NOW, attempt=attempt)
    assert attempt.form_source is SOURCE
    assert attempt.caller is None  # not authenticated


def test_a_caller_that_authenticated_is_known_when_its_body_then_fails() -> None:
    attempt = Attempt()
    with pytest.raises(RelayError) as caught:
        admit(
            REGISTRY,
            {"x-api-key": "sandbox-k", "content-type": "application/json"},
            b"{",
            now=NOW,
            attempt=attempt,
        )
    assert caught.value.code == "invalid_json"
    assert attempt.caller is not None
    assert attempt.caller.name == "zap"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, b"", "missing_credentials"),
        ({"content-type": "application/json"}, b'{"provider": "novacal"}', "missing_credentials"),
        ({"content-type": "application/xml"}, b"<token/>", "missing_credentials"),
        ({"content-type": "application/json"}, b'{"token": "x"}', "link_invalid"),
        # One check per request: a header proof is never retried as a link.
        (
            {"authorization": "Bearer sandbox-wrong"} | URLENCODED,
            form_body(posted(minted())),
            "invalid_api_key",
        ),
        ({"webhook-id": "msg_1"} | URLENCODED, form_body(posted(minted())), "signature_missing"),
    ],
)
def test_decision_order(headers: dict[str, str], body: bytes, code: str) -> None:
    with pytest.raises(RelayError) as caught:
        admit(REGISTRY, headers, body, now=NOW)
    assert (caught.value.status, caught.value.code) == (401, code)


def test_api_key_callers_keep_their_idempotency_key_and_reads_take_header_proofs_only() -> None:
    head = {"x-api-key": "sandbox-k", "idempotency-key": "k-1", "content-type": "application/json"}
    admitted = admit(REGISTRY, head, b'{"provider": "novacal"}', now=NOW)
    assert (admitted.caller.name, admitted.idempotency_key, admitted.fields) == (
        "zap",
        "k-1",
        {"provider": "novacal"},
    )
    assert identify(REGISTRY, {"x-api-key": "sandbox-k"}, now=NOW).name == "zap"
    with pytest.raises(RelayError):
        identify(REGISTRY, {}, now=NOW)


# -- CORS and form pages ---------------------------------------------------------------------------


def test_cors_answers_only_allowed_origins_exactly() -> None:
    assert REGISTRY.allowed_origin("https://www.example.test") == "https://www.example.test"
    for origin in (None, "", "https://www.example.test:443", "http://www.example.test", "null", "*"):
        assert REGISTRY.allowed_origin(origin) is None
    granted = cors.preflight_headers("https://www.example.test")
    assert granted["Access-Control-Allow-Origin"] == "https://www.example.test"
    assert granted["Access-Control-Allow-Methods"] == "POST"
    assert granted["Access-Control-Allow-Headers"] == "content-type, idempotency-key"
    assert granted["Vary"] == "Origin"
    assert int(granted["Access-Control-Max-Age"]) > 0
    assert cors.response_headers(None) == {"Vary": "Origin"}
    with pytest.raises(RelayError) as caught:
        cors.preflight_headers(None)
    assert (caught.value.status, caught.value.code) == (403, "origin_not_allowed")


@pytest.mark.parametrize(
    ("headers", "page"),
    [
        (
            {
                "content-type": "application/x-www-form-urlencoded",
                "accept": "text/html,application/xhtml+xml",
            },
            True,
        ),
        ({"content-type": "multipart/form-data; boundary=x", "accept": "text/html"}, True),
        ({"content-type": "application/x-www-form-urlencoded", "accept": "*/*"}, False),
        ({"content-type": "application/json", "accept": "text/html"}, False),
        ({"content-type": "application/x-www-form-urlencoded"}, False),
    ],
)
def test_only_browser_form_submissions_want_a_page(headers: dict[str, str], page: bool) -> None:
    assert forms.wants_page(headers) is page


def test_pages_come_from_the_registry_with_a_short_status() -> None:
    assert forms.success_location(SOURCE.success_url) == "https://www.example.test/done?lang=en&status=ok"
    assert forms.error_location(SOURCE.error_url, "link_expired") == (
        "https://www.example.test/failed?status=error&code=link_expired"
    )
    assert forms.success_location(None) is None
    bare = SOURCE.model_copy(update={"success_url": None})
    assert forms.success_location(bare.success_url) is None


def test_a_link_longer_lived_than_the_cap_is_refused_at_minting_and_at_use() -> None:
    # Given the cap (30 days by default) and a link that a bug or an attacker made valid for 31 days
    cap = links.DEFAULT_LINK_MAX_LIFETIME_SECONDS
    assert cap == 30 * 86400
    with pytest.raises(links.LinkLifetimeTooLong):
        minted(expires=NOW + cap + 1)
    token = links.link_token(
        SOURCE.link_secrets[0], source="form", provider="novacal", account="default", booking_id=BOOKING,
        expires=NOW + cap + 1,
    )  # fmt: skip
    fields = {"source": "form", "provider": "novacal", "booking_id": BOOKING}
    long_lived = fields | {"expires": str(NOW + cap + 1), "token": token}
    # Then it is refused at use, while one exactly at the cap works
    with pytest.raises(RelayError) as refused:
        links.verify(REGISTRY, posted(long_lived), now=NOW)
    assert refused.value.code == "link_lifetime_too_long"
    assert links.verify(REGISTRY, posted(minted(expires=NOW + cap)), now=NOW).caller.name == "form"
    # And a shorter cap (the LINK_MAX_LIFETIME_DAYS setting) refuses what the default allows
    with pytest.raises(RelayError):
        links.verify(REGISTRY, posted(minted(expires=NOW + 2 * 86400)), now=NOW, max_lifetime_seconds=86400)
