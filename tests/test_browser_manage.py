"""Issue 19: the manage page in a real browser (Debian's Chromium, through Playwright), at a
phone's width, with the keyboard alone, and without JavaScript."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

from scheduler import config
from scheduler.store import db
from scheduler.store.models import Subscriber
from tests import test_browser
from tests.test_browser import PHONE, Service, screenshot

# The members' page tests' fixtures: the browser, and the real daemon with its languages.
browser, service, languages = test_browser.browser, test_browser.service, test_browser.languages


def manage_link(service: Service, email: str) -> str:
    settings = config.load(service.coalition.config)
    engine = db.open_database(settings.database_url())
    with Session(engine) as session:
        token = session.exec(select(Subscriber.token).where(Subscriber.email == email)).one()
    engine.dispose()
    return f"{service.url}/manage/{token}"


def test_a_member_turns_off_tomorrow_on_a_phone_with_the_keyboard_and_no_javascript(
        browser: Browser, service: Service) -> None:
    ran = service.coalition("subscriber", "add", "amina@example.org", "--name", "Amina",
                            "--lang", "fr", "--tz", "Asia/Jakarta")
    assert ran.exit_code == 0, ran.stderr
    context = browser.new_context(timezone_id="Asia/Jakarta", locale="fr-FR", viewport=PHONE,
                                  java_script_enabled=False)
    page = context.new_page()
    page.goto(manage_link(service, "amina@example.org"))
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "manage-page-phone-french")
    keyboard = page.keyboard

    def tab_to(selector: str) -> None:
        for _ in range(60):
            keyboard.press("Tab")
            if page.locator(selector).evaluate("e => e === document.activeElement"):
                return
        raise AssertionError(f"Tab never reaches {selector}")

    tab_to("#reminder-justice-tomorrow")
    keyboard.press("Space")
    tab_to("form.manage button[type=submit]")
    with page.expect_navigation():
        keyboard.press("Enter")
    assert page.locator("[role=status]").count() == 1
    shown = json.loads(service.coalition("subscriber", "show", "amina@example.org",
                                         "--json").stdout)
    assert "tomorrow" not in shown["reminders"]["justice"]
    assert "tomorrow" in shown["reminders"]["media"]
    assert re.fullmatch(r"Asia/Jakarta", str(shown["timezone"]))
    context.close()


def test_the_manage_page_fits_a_phone_and_keeps_the_members_zone(
        browser: Browser, service: Service) -> None:
    """With JavaScript on, in a browser elsewhere: the form shows the zone stored, not the
    browser's (the members' page's script presets sign-up's picker, never this one)."""
    service.coalition("subscriber", "add", "bea@example.org", "--lang", "en", "--tz",
                      "Asia/Jakarta")
    context = browser.new_context(locale="en-US", viewport=PHONE, timezone_id="Europe/Paris")
    page = context.new_page()
    page.goto(manage_link(service, "bea@example.org"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("#zone").input_value() == "Asia/Jakarta"
    screenshot(page, "manage-page-phone-english")
    context.close()


@pytest.mark.parametrize("languages", [["en", "fr", "es", "ar", "pt"]])
def test_the_manage_page_reads_right_to_left_in_arabic_on_a_phone(
        browser: Browser, service: Service) -> None:
    service.coalition("subscriber", "add", "nour@example.org", "--lang", "ar", "--tz",
                      "Africa/Cairo")
    context = browser.new_context(locale="ar-EG", viewport=PHONE, timezone_id="Africa/Cairo")
    page = context.new_page()
    page.goto(manage_link(service, "nour@example.org"))
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "manage-page-phone-arabic")
    context.close()


def test_a_member_says_cant_make_it_from_the_page_on_a_phone_with_the_keyboard(
        browser: Browser, service: Service) -> None:
    """The first occurrence offered, its second button, pressed with Enter: no JavaScript."""
    ran = service.coalition("subscriber", "add", "amina@example.org", "--lang", "fr", "--tz",
                            "Asia/Jakarta")
    assert ran.exit_code == 0, ran.stderr
    context = browser.new_context(timezone_id="Asia/Jakarta", locale="fr-FR", viewport=PHONE,
                                  java_script_enabled=False)
    page = context.new_page()
    page.goto(manage_link(service, "amina@example.org"))
    first = page.locator("form.answer").first
    slug, stamp = str(first.locator("input[name=occurrence]").get_attribute("value")).split("/")
    assert first.locator("legend").inner_text().strip()  # the group is named by its date
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "manage-page-answers-phone-french")
    button = first.locator("button[value=no]")
    for _ in range(80):
        page.keyboard.press("Tab")
        if button.evaluate("e => e === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reaches the first \"Can't make it\"")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "vous ne pourrez pas participer" in page.locator("[role=status]").inner_text()
    assert "Je ne pourrai pas venir" in page.locator("form.answer").first.inner_text()
    on = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
    listed = json.loads(service.coalition("rsvp", "list", slug, "--on", on, "--json").stdout)
    assert [(a["email"], a["answer"]) for a in listed["answers"]] == [
        ("amina@example.org", "no")]
    context.close()
