"""A real browser (headless Chromium driven by Selenium) against the relay behind the API emulator.

Two loopback origins: the stack's demo form page (http://127.0.0.1:<p1>, the origin the registry
allows for `form-demo`, seeded before the relay started) and a second page server reached as
http://localhost:<p2>, allowed nowhere. Origins match exactly, port included, so the second one is
foreign even though it is the same machine.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from local.form_page import FormPage, start_form_page
from local.stack import Stack
from tests.helpers import FORM, Sandbox, future, link

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WAIT_SECONDS = 20

# Resolves with what the page could see of the answer, or the error fetch() rejected with.
FETCH = """
const [url, init, done] = arguments;
fetch(url, init)
  .then(async (r) => done({status: r.status, replayed: r.headers.get("idempotent-replayed"),
                           body: await r.text()}))
  .catch((e) => done({error: String(e)}));
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(
            f"browser tests need {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # An explicit driver path: Selenium Manager is never asked to download anything.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def foreign_page() -> Iterator[FormPage]:
    page = start_form_page(host="127.0.0.1")
    try:
        yield page
    finally:
        page.stop()


def api(stack: Stack) -> str:
    assert stack.api is not None
    return stack.api.url


def fill_and_submit(browser: WebDriver, day: str, clock: str) -> None:
    browser.execute_script(
        "document.querySelector('[name=date]').value = arguments[0];"
        "document.querySelector('[name=time]').value = arguments[1];",
        day,
        clock,
    )
    browser.find_element(By.ID, "submit").click()


def test_plain_html_form_lands_on_the_success_page(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    # Given the invitee opens the link from their email: the business's page with the hidden fields
    assert stack.form_page is not None
    booking = sandboxes["novacal"].bookings[0]
    minted = link(stack, "novacal", booking)
    browser.get(minted["url"])
    assert browser.find_element(By.NAME, "token").get_attribute("value") == minted["token"]
    # When they pick a new time and submit the form (a plain POST, no script)
    day = future(days=90)[:10]
    fill_and_submit(browser, day, "15:30")
    # Then the relay answers 303 and the browser lands on the source's success page
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: "/rescheduled" in d.current_url)
    assert browser.current_url.startswith(f"{stack.form_page.url}/rescheduled?status=ok&start={day}T15%3A30")
    assert browser.find_element(By.ID, "result").text == "Your booking was moved."
    assert "15:30" in browser.find_element(By.ID, "when").text  # the new time, with its zone
    assert browser.find_element(By.ID, "back").is_displayed()
    # And the provider moved exactly that booking, in the browser's time zone
    (call,) = sandboxes["novacal"].calls()
    assert call["path"] == f"/v1/events/{booking}"
    assert call["body"]["timezone"] == browser.execute_script(
        "return Intl.DateTimeFormat().resolvedOptions().timeZone"
    )


def test_an_expired_link_lands_on_the_error_page(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    assert stack.form_page is not None
    browser.get(link(stack, "novacal", sandboxes["novacal"].bookings[1], expires_in=-1)["url"])
    fill_and_submit(browser, future(days=91)[:10], "09:00")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: "/reschedule-failed" in d.current_url)
    assert browser.current_url == f"{stack.form_page.url}/reschedule-failed?status=error&code=link_expired"
    assert browser.find_element(By.ID, "code").text == "link_expired"
    assert "expired" in browser.find_element(By.ID, "reason").text
    assert sandboxes["novacal"].calls() == []


def _json_post(fields: dict[str, Any]) -> dict[str, Any]:
    # JSON and an Idempotency-Key are not "simple": the browser must ask (preflight) first.
    body = {k: v for k, v in fields.items() if k != "url"} | {"start": future(days=92) + "Z"}
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"browser-{uuid.uuid4()}"}
    return {"method": "POST", "headers": headers, "body": json.dumps(body)}


def test_fetch_from_the_allowed_origin_is_preflighted_and_may_read_the_answer(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox], capfd: pytest.CaptureFixture[str]
) -> None:
    assert stack.form_page is not None
    browser.get(f"{stack.form_page.url}/")
    capfd.readouterr()
    booking = sandboxes["novacal"].bookings[2]
    request = _json_post(link(stack, "novacal", booking))
    # The page reads the answer only if the relay granted its origin (ACAO itself is hidden from scripts)
    seen = browser.execute_async_script(FETCH, f"{api(stack)}/v1/reschedules", request)
    assert seen.get("status") == 200, seen
    assert json.loads(seen["body"])["booking_id"] == booking
    # A double submit: the replay is visible to the page, through the exposed header
    again = browser.execute_async_script(FETCH, f"{api(stack)}/v1/reschedules", request)
    assert (again.get("status"), again["replayed"]) == (200, "true"), again
    log = capfd.readouterr().err
    assert '"OPTIONS /v1/reschedules HTTP/1.1" 204' in log
    assert '"POST /v1/reschedules HTTP/1.1" 200' in log
    assert len(sandboxes["novacal"].calls()) == 1


def test_fetch_from_another_origin_is_blocked(
    browser: WebDriver,
    stack: Stack,
    sandboxes: dict[str, Sandbox],
    foreign_page: FormPage,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a page on an origin no source allows (same machine, other host name and port)
    browser.get(f"http://localhost:{foreign_page.port}/")
    capfd.readouterr()
    fields = link(stack, "novacal", sandboxes["novacal"].bookings[3])
    # When it posts JSON: the preflight is refused, so the POST is never sent
    seen = browser.execute_async_script(FETCH, f"{api(stack)}/v1/reschedules", _json_post(fields))
    assert "error" in seen, seen
    log = capfd.readouterr().err
    assert '"OPTIONS /v1/reschedules HTTP/1.1" 403' in log
    assert "POST /v1/reschedules" not in log
    # When it posts a "simple" form body (no preflight): the relay refuses the origin itself,
    # and the page may not read the answer
    simple = {
        "method": "POST",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "body": "&".join(f"{k}={v}" for k, v in fields.items() if k != "url") + f"&start={future(days=93)}Z",
    }
    seen = browser.execute_async_script(FETCH, f"{api(stack)}/v1/reschedules", simple)
    assert "error" in seen, seen
    assert '"POST /v1/reschedules HTTP/1.1" 403' in capfd.readouterr().err
    # Then the provider was never called
    assert sandboxes["novacal"].calls() == []
    assert FORM.name in {s.name for s in stack.sources}
