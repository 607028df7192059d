"""A business's reschedule page, for the local stack and the browser tests.

- `GET /reschedule?source=..&provider=..&booking_id=..&expires=..&token=..` (a signed link): the
  README's copy-paste form, posting to the relay: the link's values become hidden fields, a
  honeypot field is hidden from humans, and the invitee picks the new date and time (the browser's
  time zone is sent along).
- `GET /rescheduled` and `GET /reschedule-failed`: where the relay sends the browser afterwards
  (303), showing `status` and `code` from the query.
- `GET /`: an empty page, a place to run `fetch()` from this origin.

It holds no secret: everything it needs comes from the link. Runs in a background thread.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

STOP_POLL_SECONDS = 0.1

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
  <input type="hidden" name="timezone">
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
  form.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone;
</script>
"""


@dataclass
class FormPage:
    """A running page server; `api_url` may be set after start (the relay's address)."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    api_url: str
    honeypot: str

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

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
            return 200, _PAGE.format(
                title="Booking moved", body="<h1 id='result'>Your booking was moved.</h1>"
            )
        if path == "/reschedule-failed":
            code = html.escape(query.get("code", "unknown"))
            body = f"<h1 id='result'>We could not move your booking</h1><p id='code'>{code}</p>"
            return 200, _PAGE.format(title="Not moved", body=body)
        if path == "/":
            return 200, _PAGE.format(title="Demo site", body="<h1>Demo site</h1>")
        return 404, _PAGE.format(title="Not found", body="<h1>Not found</h1>")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status, text = self.server.page.render(parts.path, dict(parse_qsl(parts.query)))
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    page: FormPage


def start_form_page(
    *, api_url: str = "", honeypot: str = "website", host: str = "127.0.0.1", port: int = 0
) -> FormPage:
    """Start the page server in a background thread; returns once it listens."""
    server = _Server((host, port), _Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(STOP_POLL_SECONDS,), name="form-page", daemon=True
    )
    page = FormPage(server, thread, api_url, honeypot)
    server.page = page
    thread.start()
    return page
