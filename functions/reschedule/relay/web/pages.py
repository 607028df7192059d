"""The relay's own reschedule page for signed links: `GET /v1/pages/reschedule` and its result page.

No I/O here: the door verifies the link and reads the record, then asks for HTML. Every page has a
fresh nonce; its Content-Security-Policy allows only the page's own nonce'd style and script, posts
and reads to the relay's own origin, and images from the relay or the source's logo URL. Nothing
from a third party is loaded; the link's token stays out of any Referer (`no-referrer`).

The form posts the link's fields with the new date, time and time zone to `/v1/reschedules`, as a
signed-link form does. With script, it posts by `fetch()` and shows a refusal beside the field to
fix, or opens the result page; without script, it is a plain form post.

The result page shows the relay's stored record for one reschedule id, and only when the link that
opens it is valid for that record's source and booking: the query names a record, never an outcome.
"""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import available_timezones

from relay.web.http import Response

HTML = "text/html; charset=utf-8"
NONCE_BYTES = 16
RESCHEDULES_PATH = "/v1/reschedules"
PAGE_PATH = "/v1/pages/reschedule"
RESULT_PATH = "/v1/pages/reschedule/result"
# The link's own fields, carried from the page's address into the form and the result page's address.
LINK_QUERY_FIELDS = ("source", "provider", "account", "booking_id", "expires", "token")
DEFAULT_BRAND_COLOUR = "#1f4e8c"
# WCAG 2.x AA for normal text.
MIN_CONTRAST = 4.5

# What the invitee reads for each reason code the relay answers with.
REASON_SENTENCES = {
    "link_expired": "This link has expired. Ask for a new one from the email or message that sent it.",
    "link_invalid": "This link is not valid. Open it again from your email, without changing it.",
    "validation_failed": "Please check the highlighted field.",
    "booking_not_found": "We could not find this booking. It may have been cancelled.",
    "provider_rejected": "That time could not be booked. Please pick another time.",
    "provider_rate_limited": "Too many requests just now. Please try again in a minute.",
    "provider_timeout": "The booking system did not answer in time. Please try again shortly.",
    "provider_unavailable": "The booking system is unavailable right now. Please try again later.",
    "provider_unreachable": "The booking system is unavailable right now. Please try again later.",
    "provider_error": "The booking system had a problem. Please try again later.",
    "in_progress": "Your change is still being made. Wait a moment, then reload this page.",
    "queued": "Your change is waiting for the booking system. Reload this page in a minute.",
    "origin_not_allowed": "This page may not change bookings. Use the link from your email.",
    "booking_moved_elsewhere": "This booking was already moved to another time. Check your latest email.",
    "reschedule_not_found": "We could not find this request. Open the page again from your email.",
}
DEFAULT_REASON_SENTENCE = "Something went wrong on our side. Please try again later."
# The page's fields by the request field a refusal names (a start is made of date and time).
FIELD_LABELS = {"date": "New date", "time": "New time", "timezone": "Time zone", "start": "New date"}


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zone for zone in available_timezones() if "/" in zone or zone == "UTC"))


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_on(colour: str) -> str:
    """White or near-black: whichever reads better on `colour` (one of them always reaches AA)."""
    return "#ffffff" if contrast(colour, "#ffffff") >= contrast(colour, "#111111") else "#111111"


@dataclass(frozen=True)
class Brand:
    """What the page shows of the business: from the source's registry entry."""

    name: str
    colour: str = DEFAULT_BRAND_COLOUR
    logo_url: str | None = None


@dataclass(frozen=True)
class CurrentTime:
    """The booking's start as its provider says, when the provider can be read."""

    start: datetime
    timezone: str | None = None


def _nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(nonce: str, brand: Brand | None, form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    """`form_targets`: where a plain (script-less) post may be redirected: the source's own pages."""
    images = "'self'" + (f" {_origin(brand.logo_url)}" if brand and brand.logo_url else "")
    targets = "".join(sorted({f" {_origin(url)}" for url in form_targets}))
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            f"img-src {images}",
            "connect-src 'self'",
            f"form-action 'self'{targets}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _style(brand: Brand) -> str:
    return f"""
:root{{--brand:{brand.colour};--on-brand:{text_on(brand.colour)}}}
*{{box-sizing:border-box}}
body{{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:#1a1a1a;background:#fff}}
main{{max-width:34rem;margin:0 auto;padding:1.25rem 1rem 3rem}}
header{{display:flex;align-items:center;gap:.75rem;margin-bottom:1rem}}
header img{{max-height:2.5rem;max-width:8rem}}
.brand{{font-weight:600;margin:0}}
h1{{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}}
.field{{margin:0 0 1.1rem}}
label{{display:block;font-weight:600;margin-bottom:.3rem}}
input,select{{width:100%;min-height:2.75rem;font:inherit;padding:.45rem .6rem;border:2px solid #595959;
  border-radius:.4rem;background:#fff;color:#1a1a1a}}
input[aria-invalid=true],select[aria-invalid=true]{{border-color:#b00020}}
:focus-visible{{outline:3px solid #1a1a1a;outline-offset:2px}}
.hint{{margin:.25rem 0 0;color:#444;font-size:.95rem}}
.error{{margin:.25rem 0 0;color:#b00020;font-weight:600}}
.error:empty{{display:none}}
button{{width:100%;min-height:3rem;font:inherit;font-weight:700;border:0;border-radius:.5rem;
  background:var(--brand);color:var(--on-brand);cursor:pointer}}
button[disabled]{{opacity:.7}}
.notice{{border-left:.35rem solid var(--brand);background:#f3f5f8;padding:.75rem 1rem;margin:0 0 1.25rem}}
.alert{{border-left:.35rem solid #b00020;background:#fdf0f2;padding:.75rem 1rem;margin:0 0 1.25rem}}
.trap{{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}}
@media (min-width:40rem){{main{{padding-top:3rem}} .row{{display:flex;gap:1rem}} .row .field{{flex:1}}}}
"""


def _document(title: str, brand: Brand, body: str, nonce: str, script: str = "") -> str:
    logo = (
        f'<img src="{html.escape(brand.logo_url)}" alt="{html.escape(brand.name)}">' if brand.logo_url else ""
    )
    scripts = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - {html.escape(brand.name)}</title>"
        f'<style nonce="{nonce}">{_style(brand)}</style></head><body><main id="main">'
        f'<header>{logo}<p class="brand">{html.escape(brand.name)}</p></header>'
        f"{body}</main>{scripts}</body></html>"
    )


def when(start: datetime, timezone: str | None) -> str:
    """'Tuesday 1 December 2026 at 15:30 (Europe/Berlin)'."""
    return f"{start:%A} {start.day} {start:%B %Y at %H:%M} ({timezone or start.tzname()})"


def _options(selected: str) -> str:
    zones = _zones()
    if selected not in zones:
        zones = (selected, *zones)
    return "".join(
        f'<option value="{z}"{" selected" if z == selected else ""}>{z.replace("_", " ")}</option>'
        for z in zones
    )


# Preselects the browser's zone, posts with fetch() and shows the answer; data comes from the page.
_FORM_SCRIPT = r"""
(() => {
  const form = document.getElementById("reschedule");
  const zones = form.elements.timezone;
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (mine) {
    if (![...zones.options].some((o) => o.value === mine)) zones.add(new Option(mine, mine), 0);
    zones.value = mine;
  }
  const sentences = JSON.parse(document.getElementById("sentences").textContent);
  const labels = JSON.parse(document.getElementById("labels").textContent);
  const status = document.getElementById("status");
  const problem = document.getElementById("problem");
  const button = document.getElementById("submit");
  const clear = () => {
    problem.hidden = true;
    problem.textContent = "";
    for (const name of ["date", "time", "timezone"]) {
      form.elements[name].removeAttribute("aria-invalid");
      document.getElementById(name + "-error").textContent = "";
    }
  };
  const refuse = (answer) => {
    const code = answer && answer.code;
    let first = null;
    for (const error of (answer && answer.errors) || []) {
      const name = error.field === "start" ? "date" : error.field;
      if (!(name in labels) || !form.elements[name]) continue;
      form.elements[name].setAttribute("aria-invalid", "true");
      document.getElementById(name + "-error").textContent = labels[name] + ": " + error.message;
      first = first || form.elements[name];
    }
    problem.textContent = sentences[code] || sentences[""];
    problem.hidden = false;
    status.textContent = "";
    (first || problem).focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    button.disabled = true;
    status.textContent = "Moving your booking\u2026";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: {Accept: "application/json"},
      });
      const answer = await response.json().catch(() => null);
      if (response.ok && answer && answer.reschedule_id) {
        location.assign(form.dataset.result + "&reschedule_id=" + encodeURIComponent(answer.reschedule_id));
        return;
      }
      refuse(answer);
    } catch {
      refuse(null);
      problem.textContent = "We could not reach the booking service. Check your connection and try again.";
    }
    button.disabled = false;
  });
})();
"""


def _json_block(element_id: str, value: Any) -> str:
    # A data block: not run, so the CSP does not apply; `<` escaped so it cannot close the element.
    text = json.dumps(value).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _field(name: str, label: str, control: str, hint: str = "") -> str:
    hint_html = f'<p id="{name}-hint" class="hint">{hint}</p>' if hint else ""
    return (
        f'<div class="field"><label for="{name}">{label}</label>{control}{hint_html}'
        f'<p id="{name}-error" class="error"></p></div>'
    )


def form_page(
    link_fields: dict[str, str],
    brand: Brand,
    *,
    honeypot: str | None,
    current: CurrentTime | None,
    today: date,
    form_targets: tuple[str, ...] = (),
) -> Response:
    nonce = _nonce()
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in link_fields.items()
    )
    trap = (
        f'<div class="trap" aria-hidden="true"><label for="trap">Leave this empty</label>'
        f'<input id="trap" name="{html.escape(honeypot)}" tabindex="-1" autocomplete="off"></div>'
        if honeypot
        else ""
    )
    now_text = (
        f'<p class="notice" id="current">Your booking is now on '
        f"{html.escape(when(current.start, current.timezone))}.</p>"
        if current
        else ""
    )
    described = 'aria-describedby="{0}-error"'
    fields = (
        '<div class="row">'
        + _field(
            "date",
            "New date",
            f'<input id="date" name="date" type="date" required min="{today.isoformat()}" '
            f'autocomplete="off" {described.format("date")}>',
        )
        + _field(
            "time",
            "New time",
            f'<input id="time" name="time" type="time" required {described.format("time")}>',
        )
        + "</div>"
        + _field(
            "timezone",
            "Time zone",
            '<select id="timezone" name="timezone" required aria-describedby="timezone-hint timezone-error">'
            f"{_options('UTC')}</select>",
            "The new date and time are in this time zone. We chose your device's.",
        )
    )
    result = f"{RESULT_PATH}?{urlencode(link_fields)}"
    body = (
        "<h1>Move your booking</h1>"
        f"{now_text}"
        '<p id="status" role="status" aria-live="polite"></p>'
        '<div id="problem" class="alert" role="alert" tabindex="-1" hidden></div>'
        f'<form id="reschedule" method="post" action="{RESCHEDULES_PATH}" '
        f'data-result="{html.escape(result)}" novalidate>'
        f"{hidden}{fields}{trap}"
        '<button id="submit" type="submit">Move my booking</button></form>'
        + _json_block("sentences", REASON_SENTENCES | {"": DEFAULT_REASON_SENTENCE})
        + _json_block("labels", {k: v for k, v in FIELD_LABELS.items() if k != "start"})
    )
    return Response(
        status_code=200,
        content_type=HTML,
        body=_document("Move your booking", brand, body, nonce, _FORM_SCRIPT),
        headers=security_headers(nonce, brand, form_targets),
    )


def _record_text(record: dict[str, Any]) -> tuple[str, str]:
    """(heading, sentence) for a stored record, from its status alone."""
    status = record.get("status")
    if status == "succeeded":
        try:
            start = datetime.fromisoformat(str(record.get("start")))
        except ValueError:
            return "Your booking was moved.", ""
        return "Your booking was moved.", f"Your new time: {when(start, record.get('timezone'))}."
    if status in ("queued", "validated", "rejected_spam"):
        return "We received your request.", "Your booking will be moved shortly. Reload this page to check."
    if status == "cancelled":
        return "Your request was cancelled.", "Your booking was not moved."
    reason = str(record.get("reason") or "")
    return "We could not move your booking.", REASON_SENTENCES.get(reason, DEFAULT_REASON_SENTENCE)


def result_page(record: dict[str, Any], brand: Brand, link_fields: dict[str, str]) -> Response:
    nonce = _nonce()
    heading, sentence = _record_text(record)
    back = html.escape(f"{PAGE_PATH}?{urlencode(link_fields)}")
    body = (
        f'<h1 id="result">{html.escape(heading)}</h1>'
        + (f'<p id="when">{html.escape(sentence)}</p>' if sentence else "")
        + f'<p><a id="back" href="{back}">Choose another time</a></p>'
    )
    return Response(
        status_code=200,
        content_type=HTML,
        body=_document(heading, brand, body, nonce),
        headers=security_headers(nonce, brand),
    )


def refusal_page(status: int, code: str, brand: Brand | None) -> Response:
    """A link that does not open the page: said in words, with what to do."""
    nonce = _nonce()
    brand = brand or Brand(name="Reschedule")
    sentence = REASON_SENTENCES.get(code, DEFAULT_REASON_SENTENCE)
    body = (
        '<h1 id="result">We cannot open this page</h1>'
        f'<p id="reason" class="alert">{html.escape(sentence)}</p>'
    )
    return Response(
        status_code=status,
        content_type=HTML,
        body=_document("We cannot open this page", brand, body, nonce),
        headers=security_headers(nonce, brand),
    )
