"""The members' page in a real browser: Debian's headless Chromium, driven by Playwright.

The browser's own zone and language are set per test (as a member's phone would have them);
the page must find the zone by itself, show the right local time, and take someone from the
sign-up form to a confirmed subscription and back out, by keyboard. Screenshots at desktop
and phone width are written to tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.conftest import ROOT, Coalition, read_maildir
from tests.daemon_process import start, stop

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE = os.environ.get("COALITION_REQUIRE_CHROMIUM") == "1"
ARTIFACTS = ROOT / "tests" / "artifacts"
# As the machine's own probe starts it: no sandbox (we run as root), nothing from the network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium where it "
                  "may (apt-get, as root)")
        if REQUIRE:
            pytest.fail(f"{reason} (COALITION_REQUIRE_CHROMIUM=1 requires it)")
        pytest.skip(reason)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Service:
    url: str
    coalition: Coalition
    maildir: Path

    def subscribers(self) -> dict[str, dict[str, object]]:
        found = json.loads(self.coalition("subscriber", "list", "--json").stdout)
        return {s["email"]: s for s in found}

    def confirmation_link(self) -> str:
        (mail,) = read_maildir(self.maildir)
        body = mail.get_body(("plain",))
        assert isinstance(mail, EmailMessage) and isinstance(body, EmailMessage)
        found = re.search(r"http://127\.0\.0\.1:8080(/confirm/\S+)", body.get_content())
        assert found
        return self.url + found.group(1)


@pytest.fixture
def languages() -> list[str]:
    """What the coalition offers ([calls] languages)."""
    return ["en", "fr"]


@pytest.fixture
def service(organizer: Callable[[str], Coalition], languages: list[str]) -> Iterator[Service]:
    """The real daemon, as `make run` starts it, on a port the system picks."""
    coalition = organizer("members")
    config = coalition.config
    config.write_text(config.read_text().replace(
        'languages = ["en", "fr", "es", "ar", "pt"]', f"languages = {json.dumps(languages)}"))
    process = start(config)
    ready = next(line for line in process.log if line.startswith("ready:"))
    try:
        yield Service(ready.split()[3].rstrip("/"), coalition, config.parent / "var" / "mail")
    finally:
        assert stop(process) == 0


def page_in(browser: Browser, *, zone: str, locale: str,
            viewport: ViewportSize = DESKTOP) -> Page:
    context = browser.new_context(timezone_id=zone, locale=locale, viewport=viewport)
    return context.new_page()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("zone", "time", "offset", "city"), [
    ("Asia/Jakarta", "10:00 PM", "UTC+07:00", "Jakarta"),
    ("America/Los_Angeles", "7:00 AM", "UTC\u221208:00", "Los Angeles"),
])
def test_the_page_finds_the_browsers_zone_and_shows_its_time(
        browser: Browser, service: Service, zone: str, time: str, offset: str, city: str) -> None:
    page = page_in(browser, zone=zone, locale="en-US")
    page.goto(service.url + "/")
    page.wait_for_url(re.compile(r"tz="))
    first = page.locator("li.occurrence").first.inner_text()
    assert first.startswith(f"Tuesday, November 12, 2030, {time}")
    assert offset in first and "(10:00 AM in New York)" in first
    assert city in page.locator("#zone-now").inner_text()
    assert page.locator("#tz").input_value() == zone
    slug = zone.split("/")[1].lower()
    screenshot(page, f"members-page-desktop-{slug}")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, f"members-page-phone-{slug}")


def test_issue_17_a_browser_with_an_old_zone_name_gets_its_zone(
        browser: Browser, service: Service) -> None:
    """Chromium reports Asia/Calcutta, a name the picker does not list: the page sends it to
    the server, which knows it as Asia/Kolkata."""
    page = page_in(browser, zone="Asia/Calcutta", locale="en-US")
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Asia/Calcutta"
    page.goto(service.url + "/")
    page.wait_for_url(re.compile(r"tz="))
    assert page.locator("#tz").input_value() == "Asia/Kolkata"
    first = page.locator("li.occurrence").first.inner_text()
    assert first.startswith("Tuesday, November 12, 2030, 8:30 PM") and "UTC+05:30" in first


def test_a_french_browser_reads_french_and_can_switch(browser: Browser, service: Service) -> None:
    page = page_in(browser, zone="Africa/Kinshasa", locale="fr-FR", viewport=PHONE)
    page.goto(service.url + "/")
    page.wait_for_url(re.compile(r"tz="))
    assert page.locator("html").get_attribute("lang") == "fr"
    first = page.locator("li.occurrence").first.inner_text()
    assert first.startswith("mardi 12 novembre 2030, 16:00") and "10:00 à New York" in first
    moved = page.locator('li[data-status="moved"]').first.inner_text()
    assert moved.startswith("DÉPLACÉ") or moved.startswith("Déplacé")
    screenshot(page, "members-page-phone-french")
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto(service.url + "/")
    assert page.locator("html").get_attribute("lang") == "en"  # kept in a cookie
    assert "4:00 PM" in page.locator("li.occurrence").first.inner_text()


def test_sign_up_confirm_and_unsubscribe_with_the_keyboard(
        browser: Browser, service: Service) -> None:
    page = page_in(browser, zone="Asia/Jakarta", locale="fr-FR", viewport=PHONE)
    page.goto(service.url + "/subscribe")
    assert page.locator("#zone").input_value() == "Asia/Jakarta"
    keyboard = page.keyboard

    def tab_to(selector: str) -> None:
        for _ in range(20):
            keyboard.press("Tab")
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reaches {selector}")

    tab_to("#email")
    keyboard.type("amina@example.org")
    tab_to("#name")
    keyboard.type("Amina")
    screenshot(page, "signup-form-phone-french")
    tab_to("button[type=submit]")
    with page.expect_navigation():
        keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Consultez votre boîte de réception"
    assert service.subscribers() == {}

    page.goto(service.confirmation_link())
    assert service.subscribers() == {}
    tab_to("main button")
    with page.expect_navigation():
        keyboard.press("Enter")
    assert page.locator("h1").inner_text() == "Vous êtes abonné·e"
    amina = service.subscribers()["amina@example.org"]
    assert (amina["status"], amina["timezone"], amina["language"]) == (
        "confirmed", "Asia/Jakarta", "fr")

    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("Se désabonner")).click()
    with page.expect_navigation():
        page.get_by_role("button", name="Se désabonner").click()
    assert page.locator("h1").inner_text() == "Désabonnement effectué"
    assert service.subscribers()["amina@example.org"]["status"] == "unsubscribed"


@pytest.mark.parametrize("languages", [["en", "fr", "es", "ar", "pt"]])
def test_an_arabic_browser_reads_the_page_right_to_left(
        browser: Browser, service: Service) -> None:
    """Right to left at desktop and phone width: the page mirrors itself, times and offsets
    keep their own order, and nothing spills sideways on a phone."""
    page = page_in(browser, zone="Africa/Cairo", locale="ar-EG")
    page.goto(service.url + "/")
    page.wait_for_url(re.compile(r"tz="))
    html = page.locator("html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == ("ar", "rtl")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.locator("h1").inner_text() == "اجتماعات الائتلاف"
    first = page.locator("li.occurrence").first
    text = first.inner_text()
    assert "الثلاثاء، 12 نوفمبر 2030" in text and "5:00 م" in text
    assert "UTC+02:00" in text and "(10:00 ص في نيويورك)" in text
    # the heading's words start at the right edge of the column, not at its left
    right, left, column_right, column_left = page.evaluate(
        "(() => { const r = document.createRange();"
        " r.selectNodeContents(document.querySelector('h1'));"
        " const t = r.getBoundingClientRect();"
        " const m = document.querySelector('main').getBoundingClientRect();"
        " return [t.right, t.left, m.right, m.left]; })()")
    assert abs(right - column_right) < 2 and left > column_left + 100
    screenshot(page, "members-page-desktop-arabic")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "members-page-phone-arabic")
    with page.expect_navigation():
        page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("dir") == "ltr"
    page.goto(service.url + "/subscribe?lang=ar")
    assert page.locator("#language option:checked").inner_text() == "العربية"
    screenshot(page, "signup-form-phone-arabic")
