"""The relay's hosted reschedule page in a real browser (headless Chromium through Selenium).

The browser runs in America/Chicago (TZ), so a page that preselected anything but the browser's own
zone shows. Screenshots at phone and desktop widths are saved under .local/.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from local.seed import FORM_DEMO
from local.stack import Stack
from tests.helpers import Sandbox, future, link

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
BROWSER_ZONE = "America/Chicago"
WAIT_SECONDS = 20
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# The page's own checks, run in the page: labels, contrast of every visible text, focus order.
A11Y_SCRIPT = """
const parse = (c) => c.match(/[0-9.]+/g).slice(0, 3).map(Number);
const lum = (rgb) => {
  const [r, g, b] = rgb.map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const ratio = (a, b) => {
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (!c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return parse(c);
  }
  return [255, 255, 255];
};
const unlabelled = [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
  .filter((el) => !el.closest("[aria-hidden=true]"))
  .filter((el) => !(el.labels && el.labels.length && el.labels[0].textContent.trim()))
  .map((el) => el.name);
const low = [];
for (const el of document.querySelectorAll("h1, p, label, button, a, option, select, input")) {
  if (!el.textContent.trim() && el.tagName !== "INPUT" && el.tagName !== "SELECT") continue;
  if (el.closest("[aria-hidden=true]") || el.offsetParent === null) continue;
  const r = ratio(parse(getComputedStyle(el).color), background(el));
  if (r < 4.5) low.push([el.tagName, el.id, r]);
}
return {unlabelled, low, lang: document.documentElement.lang, h1: document.querySelectorAll("h1").length};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"browser tests need {CHROMIUM} and {CHROMEDRIVER}: make browser")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-hosted')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=subprocess.DEVNULL, env={"TZ": BROWSER_ZONE}
    )
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def api(stack: Stack) -> str:
    assert stack.api is not None
    return stack.api.url


def hosted(stack: Stack, booking: str, **kwargs: Any) -> dict[str, str]:
    return link(stack, "novacal", booking, api_url=api(stack), **kwargs)


def set_new_time(browser: WebDriver, day: str, clock: str) -> None:
    # Date and time inputs type differently per locale: set the values as the picker would.
    browser.execute_script(
        "document.getElementById('date').value = arguments[0];"
        "document.getElementById('time').value = arguments[1];",
        day,
        clock,
    )


def csp_violations(browser: WebDriver) -> list[str]:
    entries: list[dict[str, str]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [e["message"] for e in entries if "Content Security Policy" in e["message"]]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_open_a_link_pick_a_time_and_see_the_new_time(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox], width: str
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(*WIDTHS[width])
    booking = sandboxes["novacal"].bookings[list(WIDTHS).index(width)]
    # Given the invitee opens the relay's own page from the link in their email
    minted = hosted(stack, booking)
    assert minted["hosted_url"].startswith(f"{api(stack)}/v1/pages/reschedule?source={FORM_DEMO.name}")
    browser.get(minted["hosted_url"])
    # Then it shows the business, and the browser's own time zone is preselected
    assert browser.find_element(By.CLASS_NAME, "brand").text == FORM_DEMO.display_name
    assert browser.find_element(By.ID, "timezone").get_attribute("value") == BROWSER_ZONE
    assert browser.find_elements(By.ID, "current") == []  # NovaCal bookings cannot be read: no "now"
    browser.save_screenshot(str(SCREENSHOTS / f"hosted-page-{width}-form.png"))
    # When they pick a new date and time and submit
    day = future(days=150 + list(WIDTHS).index(width))[:10]
    set_new_time(browser, day, "15:30")
    browser.find_element(By.ID, "submit").click()
    # Then the result page shows the relay's stored answer: the new time, in their zone
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: "/v1/pages/reschedule/result" in d.current_url)
    assert browser.find_element(By.ID, "result").text == "Your booking was moved."
    assert "15:30" in browser.find_element(By.ID, "when").text
    assert BROWSER_ZONE in browser.find_element(By.ID, "when").text
    browser.save_screenshot(str(SCREENSHOTS / f"hosted-page-{width}-result.png"))
    # And the provider moved exactly that booking, in the browser's zone
    (call,) = sandboxes["novacal"].calls()
    assert call["path"] == f"/v1/events/{booking}"
    assert call["body"]["timezone"] == BROWSER_ZONE
    assert csp_violations(browser) == []


def test_the_page_shows_the_bookings_current_time_when_its_provider_can_be_read(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    # Given a Cal.com booking (Cal.com bookings can be read), as the sandbox holds it
    uid = sandboxes["calcom"].bookings[4]
    held = next(
        b for b in httpx.get(f"{sandboxes['calcom'].url}/_sandbox/bookings").json() if b["uid"] == uid
    )
    zone = held["attendees"][0]["timeZone"]
    start = datetime.fromisoformat(held["start"].replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    # When the invitee opens the hosted page for it
    browser.set_window_size(*WIDTHS["phone"])
    browser.get(link(stack, "calcom", uid, api_url=api(stack))["hosted_url"])
    # Then it says when the booking is now, in the booking's zone
    expected = f"{start:%A} {start.day} {start:%B %Y at %H:%M} ({zone})"
    assert browser.find_element(By.ID, "current").text == f"Your booking is now on {expected}."
    browser.save_screenshot(str(SCREENSHOTS / "hosted-page-phone-current-time.png"))
    assert [c["method"] for c in sandboxes["calcom"].calls()] == ["GET"]  # read, nothing moved


def test_a_refusal_names_the_field_to_fix_and_moves_focus_there(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    browser.set_window_size(*WIDTHS["phone"])
    browser.get(hosted(stack, sandboxes["novacal"].bookings[2])["hosted_url"])
    # A time in the past: the relay refuses it, naming the field (the time: the date alone is fine)
    set_new_time(browser, "2020-01-02", "09:00")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.find_element(By.ID, "problem").is_displayed())
    problem = browser.find_element(By.ID, "problem")
    assert problem.get_attribute("role") == "alert"
    time_field = browser.find_element(By.ID, "time")
    assert time_field.get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.ID, "time-error").text == "New time: The new start is in the past."
    assert browser.switch_to.active_element == time_field
    assert "check the highlighted field" in problem.text
    assert "/v1/pages/reschedule?" in browser.current_url  # still on the form
    assert sandboxes["novacal"].calls() == []


def test_an_expired_link_says_so_in_words(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    browser.get(hosted(stack, sandboxes["novacal"].bookings[3], expires_in=-1)["hosted_url"])
    assert "expired" in browser.find_element(By.ID, "reason").text
    assert browser.find_elements(By.ID, "reschedule") == []


def test_accessibility_labels_contrast_and_keyboard_order(
    browser: WebDriver, stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    browser.set_window_size(*WIDTHS["desktop"])
    browser.get(hosted(stack, sandboxes["novacal"].bookings[4])["hosted_url"])
    found = browser.execute_script(A11Y_SCRIPT)
    assert found["unlabelled"] == [], found
    assert found["low"] == [], found  # WCAG AA: 4.5:1 for every visible text
    assert (found["lang"], found["h1"]) == ("en", 1)
    # Tab from the top reaches every control in reading order, and never the honeypot
    browser.get(browser.current_url)  # focus at the top of a fresh page
    reached: list[str] = []
    for _ in range(12):  # a date or time input takes a Tab per part (day, month, year)
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element.get_attribute("id") or ""
        if not reached or reached[-1] != focused:
            reached.append(focused)
    assert reached[:4] == ["date", "time", "timezone", "submit"], reached
    assert "trap" not in reached


def test_the_page_has_a_strict_policy_and_a_fresh_nonce(stack: Stack, sandboxes: dict[str, Sandbox]) -> None:
    url = hosted(stack, sandboxes["novacal"].bookings[0])["hosted_url"]
    first, second = httpx.get(url, timeout=30), httpx.get(url, timeout=30)
    assert first.status_code == 200
    policy = first.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "script-src 'nonce-" in policy
    assert stack.form_page is not None  # a script-less post may be redirected to the source's own pages only
    assert f"form-action 'self' {stack.form_page.url};" in policy
    assert policy != second.headers["content-security-policy"]  # a nonce per response
    assert first.headers["referrer-policy"] == "no-referrer"  # the link's token never leaves in a Referer
    assert "http://" not in first.text.replace(api(stack), "")  # nothing from another origin
    assert "https://" not in first.text


def test_the_result_page_shows_only_the_stored_record_of_that_links_booking(
    stack: Stack, sandboxes: dict[str, Sandbox]
) -> None:
    booking, other = sandboxes["novacal"].bookings[1], sandboxes["novacal"].bookings[2]
    minted = hosted(stack, booking)
    fields = {k: v for k, v in minted.items() if k not in ("url", "hosted_url")}
    # Given a refused attempt for the link's booking (a time in the past)
    refused = httpx.post(
        f"{api(stack)}/v1/reschedules", data=fields | {"date": "2020-01-02", "time": "09:00"}, timeout=30
    )
    assert refused.status_code == 422
    reschedule_id = refused.json()["reschedule_id"]
    result = f"{api(stack)}/v1/pages/reschedule/result"
    # When the result page is asked for it with query parameters that claim success
    claimed = httpx.get(
        result,
        params=fields | {"reschedule_id": reschedule_id, "status": "succeeded", "start": future()},
        timeout=30,
    )
    # Then it says what the record says: not moved
    assert claimed.status_code == 200
    assert "We could not move your booking." in claimed.text
    assert "Your booking was moved" not in claimed.text
    # And another booking's link cannot read it, nor a link with a changed token, nor an unknown id
    other_fields = {k: v for k, v in hosted(stack, other).items() if k not in ("url", "hosted_url")}
    for params in (
        other_fields | {"reschedule_id": reschedule_id},
        fields | {"token": other_fields["token"], "reschedule_id": reschedule_id},
        fields | {"reschedule_id": str(uuid.uuid4())},
    ):
        answer = httpx.get(result, params=params, timeout=30)
        assert answer.status_code in (401, 404), answer.text
        assert "moved" not in answer.text.lower().replace("not moved", "")
    assert sandboxes["novacal"].calls() == []
