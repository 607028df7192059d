"""A business's reschedule page, for the local stack and the browser tests.

- `GET /reschedule?source=..&provider=..&booking_id=..&expires=..&token=..` (a signed link): the
  README's copy-paste form, posting to the relay: the link's values become hidden fields, a
  honeypot field is hidden from humans, and the invitee picks the new date and time (the browser's
  time zone is sent along).
- `GET /rescheduled` and `GET /reschedule-failed`: where the relay sends the browser afterwards
  (303): the new date and time with its zone (`start`, `timezone`), or a sentence for the reason
  `code`, each with a way back to the form.
- `GET /`: an empty page, a place to run `fetch()` from this origin.

It holds no secret: everything it needs comes from the link. Runs in a background thread.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from local.httpserver import LOOPBACK_HOST, LocalHTTPServer, LocalRequestHandler

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto}}</style>
</head><body>{body}</body></html>
"""

# The page's form, exactly as README.md gives it to copy (a test keeps the two the same). Static
# HTML: a small script copies the link's fields from the address into hidden fields.
README_ACTION = "https://YOUR-API-ID.execute-api.us-east-1.amazonaws.com/v1/reschedules"
README_HONEYPOT = "website"
FORM_SNIPPET = """<form id="reschedule" method="post"
      action="https://YOUR-API-ID.execute-api.us-east-1.amazonaws.com/v1/reschedules">
  <label>New date <input name="date" type="date" required></label>
  <label>New time <input name="time" type="time" required></label>
  <!-- The zone the date and time are meant in: the browser's own, shown so the person can change it. -->
  <label>Time zone <select name="timezone" required></select></label>
  <!-- The honeypot: hidden from people, so only bots fill it in. Its name is the source's "honeypot". -->
  <div style="position: absolute; left: -10000px" aria-hidden="true">
    <label>Leave this empty <input name="website" tabindex="-1" autocomplete="off"></label>
  </div>
  <button id="submit" type="submit">Move my booking</button>
</form>
<script>
  // The link's fields become hidden fields: they name the booking and prove the link is genuine.
  const form = document.getElementById("reschedule");
  const link = new URLSearchParams(location.search);
  for (const name of ["source", "provider", "account", "booking_id", "expires", "token"]) {
    if (link.has(name)) {
      const field = Object.assign(document.createElement("input"), {type: "hidden", name});
      field.value = link.get(name);
      form.append(field);
    }
  }
  const zones = form.elements.timezone;
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const zone of new Set([mine, ...(Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [])])) {
    zones.append(new Option(zone.replaceAll("_", " "), zone, zone === mine, zone === mine));
  }
</script>
"""


# What the error page tells the invitee for each reason code the relay sends back.
REASON_SENTENCES = {
    "link_expired": "This link has expired. Ask for a new one from the email or message that sent it.",
    "link_invalid": "This link is not valid. Open it again from the email, without changing it.",
    "validation_failed": "Check the date, time and time zone: the new time must be in the future.",
    "booking_not_found": "We could not find this booking. It may have been cancelled.",
    "provider_rejected": "That time could not be booked. Please pick another time.",
    "provider_rate_limited": "Too many requests just now. Please try again in a minute.",
    "provider_timeout": "The booking system did not answer in time. Please try again shortly.",
    "provider_unavailable": "The booking system is unavailable right now. Please try again later.",
    "provider_unreachable": "The booking system is unavailable right now. Please try again later.",
    "provider_error": "The booking system had a problem. Please try again later.",
    "in_progress": "Your change is still being made. Wait a moment, then check your email.",
    "origin_not_allowed": "This page may not change bookings. Use the link from your email.",
}
DEFAULT_REASON_SENTENCE = "Something went wrong on our side. Please try again later."
BACK_LINK = "<p><a id='back' href='javascript:history.back()'>Back to the form</a></p>"


def _new_time(start: str, timezone: str) -> str:
    """'Tuesday 1 December 2026 at 15:00 (America/New_York)', from the relay's ISO start."""
    try:
        when = datetime.fromisoformat(start)
    except ValueError:
        return ""
    return f"{when:%A} {when.day} {when:%B %Y at %H:%M} ({timezone or when.tzname()})"


@dataclass
class FormPage:
    """A running page server; `api_url` may be set after start (the relay's address)."""

    server: LocalHTTPServer
    api_url: str
    honeypot: str

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def render(self, path: str, query: dict[str, str]) -> tuple[int, str]:
        if path == "/reschedule":
            form = FORM_SNIPPET.replace(README_ACTION, html.escape(f"{self.api_url}/v1/reschedules")).replace(
                f'name="{README_HONEYPOT}"', f'name="{html.escape(self.honeypot)}"'
            )
            return 200, _PAGE.format(title="Move your booking", body="<h1>Move your booking</h1>\n" + form)
        if path == "/rescheduled" and query.get("status") == "queued":
            # Auto delivery queued it (the provider could not take it just now): the relay retries.
            body = "<h1 id='result'>We received your request; your booking will be moved shortly.</h1>"
            return 200, _PAGE.format(title="Request received", body=body)
        if path == "/rescheduled":
            when = _new_time(query.get("start", ""), query.get("timezone", ""))
            body = "<h1 id='result'>Your booking was moved.</h1>"
            if when:
                body += f"<p id='when'>Your new time: {html.escape(when)}.</p>"
            return 200, _PAGE.format(title="Booking moved", body=body + BACK_LINK)
        if path == "/reschedule-failed":
            code = query.get("code", "unknown")
            sentence = REASON_SENTENCES.get(code, DEFAULT_REASON_SENTENCE)
            body = (
                "<h1 id='result'>We could not move your booking</h1>"
                f"<p id='reason'>{html.escape(sentence)}</p>"
                f"<p>Reason code: <code id='code'>{html.escape(code)}</code></p>"
            )
            return 200, _PAGE.format(title="Not moved", body=body + BACK_LINK)
        if path == "/":
            return 200, _PAGE.format(title="Demo site", body="<h1>Demo site</h1>")
        return 404, _PAGE.format(title="Not found", body="<h1>Not found</h1>")


class _Handler(LocalRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, text = self.server.page.render(parts.path, dict(parse_qsl(parts.query)))
        self.send_body(status, text.encode(), "text/html; charset=utf-8")


class _Server(LocalHTTPServer):
    page: FormPage


def start_form_page(
    *, api_url: str = "", honeypot: str = "website", host: str = LOOPBACK_HOST, port: int = 0
) -> FormPage:
    """Start the page server in a background thread; returns once it listens."""
    server = _Server((host, port), _Handler)
    page = FormPage(server, api_url, honeypot)
    server.page = page
    server.start_in_thread("form-page")
    return page
